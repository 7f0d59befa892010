"""`fsv2v demo`: run the full synthesis pipeline on synthetic inputs with the packaged demo model."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fewshotv2v.commands import _common


def demo(
    output: Annotated[
        Path,
        typer.Option("-o", "--output", help="Output video; a side-by-side version is written beside it."),
    ] = Path("demo.mp4"),
    model: Annotated[
        str, typer.Option("--model", help="Pose model name or folder (default: the shipped pose model).")
    ] = "",
    face_model: Annotated[
        str,
        typer.Option("--face-model", help="Face model name or folder (default: the shipped face model)."),
    ] = "",
    device: Annotated[
        str | None, typer.Option("--device", help="auto, cpu, cuda (default: settings.device)")
    ] = None,
    frames: Annotated[int, typer.Option("--frames", min=2, help="Number of driving frames.")] = 72,
    motion: Annotated[str, typer.Option("--motion", help="idle, walk, wave or dance.")] = "dance",
    seed: Annotated[int, typer.Option("--seed", help="Seed of the synthetic people and motion.")] = 0,
    threads: _common.ThreadsOption = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace existing output files.")] = False,
) -> None:
    """Run the whole pipeline with the models shipped in the package (no download).

    Body: a synthetic reference person driven by a synthetic clip with audio (video, side by side,
    reference image). Face: the packaged NASA astronaut photo animated by a talking, nodding, blinking
    landmark motion (NAME_face.mp4 and its side by side).
    """
    from fewshotv2v.demo import run_demo

    settings = _common.settings(device=device, threads=threads)
    _common.apply_threads(settings)  # exact keypoints: no detector
    with _common.progress(total_known=True) as bar:
        task = bar.add_task("synth", total=None, status="")

        def on_frame(done: int, total: int | None, fps: float) -> None:
            bar.update(task, completed=done, total=total, status=f"{fps:.1f} frames/s")

        result = run_demo(
            output,
            model=model,
            face_model=face_model,
            device=settings.device,
            dtype=settings.dtype,
            frames=frames,
            motion=motion,
            seed=seed,
            overwrite=overwrite,
            settings=settings,
            on_frame=on_frame,
        )
    typer.echo(f"video:        {result.output}")
    typer.echo(f"side by side: {result.side_by_side}")
    typer.echo(f"reference:    {result.reference}")
    typer.echo(f"face:         {result.face_output}")
    typer.echo(f"face, side by side: {result.face_side_by_side}")
    _common.info(f"{result.frames} frames at {result.fps:g} fps, {result.seconds:.1f} s")
