"""`fsv2v preprocess`: videos / frame folders -> a training dataset (thin wrapper over `data.preprocess`)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from fewshotv2v.commands import _common


class Mode(StrEnum):
    pose = "pose"
    face = "face"
    street = "street"


class BackendName(StrEnum):
    mediapipe = "mediapipe"
    dwpose = "dwpose"


def preprocess(
    inputs: Annotated[
        list[Path],
        typer.Argument(help="Video files, folders of videos, or folders of frames.", show_default=False),
    ],
    output: Annotated[
        Path, typer.Option("-o", "--output", help="Dataset folder to create or extend.", show_default=False)
    ],
    mode: Annotated[Mode, typer.Option("--mode", help="What the dataset is for.")] = Mode.pose,
    backend: Annotated[
        BackendName | None,
        typer.Option(
            "--backend", help="Keypoint detector (default: settings, i.e. mediapipe).", show_default=False
        ),
    ] = None,
    fps: Annotated[
        float | None,
        typer.Option(
            "--fps", help="Resample to this frame rate (default: keep the source's).", show_default=False
        ),
    ] = None,
    max_size: Annotated[
        int | None,
        typer.Option(
            "--max-size", help="Downscale frames so the longer side is at most N px.", show_default=False
        ),
    ] = None,
    person: Annotated[
        int | None,
        typer.Option("--person", help="Follow the N-th person from the left (default: the largest).", min=0),
    ] = None,
    min_gap: Annotated[
        float | None,
        typer.Option("--min-gap", help="Split a clip where the person is missing this many seconds [1.0]."),
    ] = None,
    labels: Annotated[
        Path | None,
        typer.Option(
            "--labels", help="Street mode: folder of label PNGs named like the frames.", show_default=False
        ),
    ] = None,
    threads: _common.ThreadsOption = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Redo clips that are already complete (default: skip them).")
    ] = False,
) -> None:
    """Detect, track and smooth keypoints, and store frames, keypoints, crops and masks as a dataset.

    Resumable: run it again after an interruption and finished clips are skipped. A source that fails
    (not a video, no person) does not stop the others: it is listed and the exit code is non-zero.
    """
    from fewshotv2v.data.preprocess import preprocess as run

    settings = _common.settings(backend=backend.value if backend is not None else None, threads=threads)
    _common.apply_threads(settings)  # the detector runs alone: the whole budget is its
    with _common.progress() as bar:
        tasks: dict[str, int] = {}

        def on_source(source, status: str) -> None:
            if status == "skip":
                _common.info(f"skip {source.name} (already complete)")
            elif status == "start":
                tasks[source.name] = bar.add_task(source.name, total=None, status="")

        def on_frame(name: str, total: int | None, done: int) -> None:
            task = tasks.get(name)
            if task is not None:
                bar.update(task, total=total if total and total >= done else None, completed=done)

        summary = run(
            inputs,
            output,
            mode=mode.value,
            backend=settings.backend,
            fps=fps,
            max_size=max_size,
            person=person,
            min_gap=1.0 if min_gap is None else min_gap,
            labels=labels,
            overwrite=overwrite,
            progress=on_frame,
            on_source=on_source,
        )
    out = _common.out_console()
    out.print(f"dataset: {output}")
    ignored = f"{summary.jumps_ignored} detection{'' if summary.jumps_ignored == 1 else 's'}"
    out.print(
        f"clips written: {len(summary.clips)}, skipped (complete): {len(summary.skipped_sources)}, "
        f"frames: {summary.frames}, frames without person: {summary.frames_without_person}"
        + (f" ({ignored} ignored as glitches)" if summary.jumps_ignored else "")
        + (f", cuts to another shot (a new clip each): {summary.cuts}" if summary.cuts else "")
        + f", undecodable frames skipped: {summary.undecodable_frames}"
        + (f", failed: {len(summary.failed)}" if summary.failed else "")
    )
    for failure in summary.failed:
        _common.print_error(f"{failure.path}: {failure.message}", None)
    if summary.failed:
        codes = {f.exit_code for f in summary.failed}
        raise typer.Exit(codes.pop() if len(codes) == 1 else 1)
