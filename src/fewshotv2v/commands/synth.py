"""`fsv2v synth`: make the reference person (or face) move like the person in a driving video.

Thin layer over `fewshotv2v.pipeline.Pipeline`; every option defaults to None so that an unset flag never
overrides the settings (env / TOML).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fewshotv2v.commands import _common


def synth(
    ref: Annotated[
        list[Path],
        typer.Option(
            "--ref",
            help="Reference image of the target person/face (repeat for K references), or one video "
            "from which --ref-frames frames are picked.",
            show_default=False,
        ),
    ],
    drive: Annotated[
        Path,
        typer.Option("--drive", help="Driving video (or a preprocessed clip folder).", show_default=False),
    ],
    output: Annotated[Path, typer.Option("-o", "--output", help="Output video (.mp4).", show_default=False)],
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            help="Model name or folder (default: settings.model, else the one shipped for --mode: "
            "keypoint-warp / keypoint-warp-face, no weights; pose-lite / face-lite are the trained ones)",
        ),
    ] = None,
    mode: Annotated[
        str | None, typer.Option("--mode", help="pose or face (default: the model's mode)")
    ] = None,
    device: Annotated[
        str | None, typer.Option("--device", help="auto, cpu, cuda (default: settings.device)")
    ] = None,
    dtype: Annotated[
        str | None, typer.Option("--dtype", help="fp32, bf16 or fp16 autocast (default: settings.dtype)")
    ] = None,
    backend: Annotated[
        str | None,
        typer.Option(
            "--backend", help="Keypoint detector (default: settings.backend; any registered backend name)"
        ),
    ] = None,
    ref_frames: Annotated[
        int | None,
        typer.Option(
            "--ref-frames", min=1, help="With a reference video: how many frames to pick (default: 1)"
        ),
    ] = None,
    finetune: Annotated[
        int | None,
        typer.Option("--finetune", min=0, help="Test-time finetuning steps on the references (default: 0)"),
    ] = None,
    start: Annotated[
        float | None, typer.Option("--start", min=0.0, help="Start of the driving video (seconds)")
    ] = None,
    end: Annotated[
        float | None, typer.Option("--end", min=0.0, help="End of the driving video (seconds)")
    ] = None,
    max_frames: Annotated[
        int | None, typer.Option("--max-frames", min=1, help="Synthesize at most this many frames")
    ] = None,
    side_by_side: Annotated[
        bool | None,
        typer.Option("--side-by-side", help="Write driving frame | skeleton | result side by side."),
    ] = None,
    size: Annotated[
        int | None,
        typer.Option(
            "--size",
            min=16,
            help="Long side of the output in pixels; the reference photo is never upscaled (default: 1024)",
        ),
    ] = None,
    keep_centered: Annotated[
        bool | None,
        typer.Option(
            "--keep-centered",
            help="Keep the person where the reference stands instead of following the driver's "
            "global motion (pose).",
        ),
    ] = None,
    plate: Annotated[
        str | None,
        typer.Option(
            "--plate",
            help="Pose: fill the background where the person moves away from the photo's own texture "
            "(patches, about 2 s once) or with a smooth blur of it (smooth, instant) (default: patches)",
        ),
    ] = None,
    threads: _common.ThreadsOption = None,
    overwrite: Annotated[
        bool | None, typer.Option("--overwrite", help="Replace an existing output file.")
    ] = None,
) -> None:
    """Synthesize a video of the reference person/face driven by a video (few-shot vid2vid)."""
    from fewshotv2v.inference.loading import load_pipeline

    settings = _common.settings(device=device, dtype=dtype, model=model, threads=threads)
    _common.apply_threads(settings, detector=True)  # the detector runs beside the model
    # the same loader as `fsv2v app`
    options = {"plate": plate} if plate is not None else {}
    pipe = load_pipeline(
        settings, backend=backend, mode=mode, size=size, keep_centered=bool(keep_centered), **options
    )
    with _common.progress(total_known=False) as bar:
        task = bar.add_task("references", total=None, status="")

        def on_finetune(step: int, total: int, g_loss: float, d_loss: float) -> None:
            bar.update(task, description="finetune", completed=step, total=total, status=f"G {g_loss:.3f}")

        def on_frame(done: int, total: int | None, fps: float) -> None:
            bar.update(task, description="synth", completed=done, total=total, status=f"{fps:.1f} frames/s")

        result = pipe.synthesize(
            ref=[str(p) for p in ref] if len(ref) > 1 else str(ref[0]),
            drive=drive,
            output=output,
            ref_frames=ref_frames,
            finetune=finetune or 0,
            start=start,
            end=end,
            max_frames=max_frames,
            side_by_side=bool(side_by_side),
            overwrite=bool(overwrite),
            on_frame=on_frame,
            on_finetune=on_finetune,
        )
    typer.echo(result.summary())  # the result: one line on stdout
