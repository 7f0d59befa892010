"""`fsv2v synthetic`: write a dataset of synthetic people (no video, no detector needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fewshotv2v.commands import _common


def parse_size(text: str) -> tuple[int, int]:
    """'256x192' -> (256, 192) as (height, width); a single number means a square."""
    parts = text.lower().replace(" ", "").split("x")
    try:
        values = [int(p) for p in parts]
    except ValueError:
        raise typer.BadParameter(f"expected HxW such as 256x256, got {text!r}") from None
    if len(values) == 1:
        values = values * 2
    from fewshotv2v.data.synthetic import MAX_SIDE

    if len(values) != 2 or min(values) < 16 or max(values) > MAX_SIDE:
        raise typer.BadParameter(f"expected HxW with both sides within 16..{MAX_SIDE}, got {text!r}")
    return values[0], values[1]


def synthetic(
    output: Annotated[
        Path, typer.Option("-o", "--output", help="Dataset folder to write.", show_default=False)
    ],
    identities: Annotated[
        int | None, typer.Option("--identities", "-n", help="Number of people (default 8).")
    ] = None,
    frames: Annotated[
        int | None, typer.Option("--frames", "-f", help="Frames per clip (default 48).")
    ] = None,
    clips: Annotated[int | None, typer.Option("--clips", help="Clips per identity (default 1).")] = None,
    mode: Annotated[
        str | None, typer.Option("--mode", help="pose (whole body) or face (default pose).")
    ] = None,
    size: Annotated[str | None, typer.Option("--size", help="Frame size HxW (default 256x256).")] = None,
    fps: Annotated[
        float | None, typer.Option("--fps", help="Frame rate written to the dataset (default 25).")
    ] = None,
    seed: Annotated[
        int | None, typer.Option("--seed", help="Random seed (same seed, same data) (default 0).")
    ] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Write into a non-empty folder.")] = False,
) -> None:
    """Render synthetic people with exact keypoints and masks, as a training dataset.

    Each identity has its own skin, hair, clothes, proportions and background, and moves procedurally
    (idle, walking, waving, dancing); the output uses the dataset layout of `fsv2v preprocess`.
    """
    from fewshotv2v.data.synthetic import generate_dataset

    def given(value, default):  # None = flag not given (0 is passed on, and rejected by the library)
        return default if value is None else value

    n, f, c = given(identities, 8), given(frames, 48), given(clips, 1)
    hw = parse_size(size) if size else (256, 256)
    with _common.progress() as bar:
        task = bar.add_task("rendering", total=n * f * c, status="")
        dataset = generate_dataset(
            output,
            identities=n,
            frames=f,
            mode=mode or "pose",
            size=hw,
            seed=given(seed, 0),
            fps=given(fps, 25.0),
            clips_per_identity=c,
            overwrite=overwrite,
            progress=lambda k: bar.advance(task, k),
        )
    _common.info(f"wrote {len(dataset.clips)} clips, {dataset.num_frames} frames ({hw[0]}x{hw[1]})")
    typer.echo(str(dataset.root))
