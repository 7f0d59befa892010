"""`fsv2v demo`: the whole synthesis pipeline on synthetic inputs, with the model shipped in the package.

A fresh install has no pose weights and often no camera footage at hand, so the demo makes its own inputs:
a reference photo of one synthetic person and a driving clip of another (with an audio tone), both from
`fewshotv2v.data.synthetic`, whose keypoints are exact (no detector needed). It then runs
`Pipeline.synthesize` exactly as `fsv2v synth` does — streaming decode -> keypoints -> retarget -> label
map -> generator -> encode, fps and audio kept — and writes the result plus a side-by-side version
(driving frame | skeleton | result).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from fewshotv2v.errors import InputError, OutputExistsError, check_output_folder

# The driving clip: long enough to show motion, short enough for < 1 min on 2 CPU cores.
DEMO_FRAMES = 72
DEMO_FPS = 24.0
DEMO_TONE_HZ = 440.0
DEMO_SOURCE_SIZE = (256, 256)  # (H, W) of the synthetic source frames; the model crops the person


@dataclass
class DemoResult:
    """Where the demo wrote its files, and what the synthesis did."""

    output: Path
    side_by_side: Path
    reference: Path
    frames: int
    fps: float  # video frame rate (the driving clip's)
    seconds: float  # wall time of the synthesis

    def summary(self) -> str:
        return (
            f"{self.frames} frames at {self.fps:g} fps in {self.seconds:.1f} s -> {self.output} "
            f"(side by side: {self.side_by_side}; reference: {self.reference})"
        )


def side_by_side_path(output: Path) -> Path:
    return output.with_name(f"{output.stem}_side_by_side{output.suffix}")


def reference_path(output: Path) -> Path:
    return output.with_name(f"{output.stem}_reference.png")


def run_demo(
    output: str | Path = "demo.mp4",
    *,
    model: str | Path = "demo",
    device: str = "cpu",
    dtype: str = "fp32",
    frames: int = DEMO_FRAMES,
    motion: str = "dance",
    seed: int = 0,
    overwrite: bool = False,
    settings=None,
    on_frame=None,
) -> DemoResult:
    """Make synthetic inputs, synthesize `output` and its side-by-side version, return a `DemoResult`.

    `on_frame(done, total, frames_per_second)` is called after each synthesized frame (progress bars).
    """
    import time

    from fewshotv2v.data.synthetic import MOTIONS, demo_pair
    from fewshotv2v.pipeline import Pipeline
    from fewshotv2v.video import write_image, write_test_video

    output = Path(output)
    if output.suffix.lower() not in (".mp4", ".mov", ".mkv"):
        raise InputError(f"output must be a video file (.mp4, .mov or .mkv): {output}")
    if motion not in MOTIONS:
        raise InputError(f"unknown motion {motion!r}; choose one of {', '.join(MOTIONS)}")
    if frames < 2:
        raise InputError("the demo needs at least 2 frames")
    targets = [output, side_by_side_path(output), reference_path(output)]
    check_output_folder(output)
    if not overwrite:
        for path in targets:
            if path.exists():
                raise OutputExistsError(f"{path} exists; pass --overwrite to replace it")

    pipe = Pipeline.from_pretrained(model, device=device, dtype=dtype, backend="none", settings=settings)
    # Reference: identity 0 standing; driving: identity 1 performing `motion` (another body and clothes,
    # so the result shows the reference's appearance with the driver's motion).
    pair = demo_pair(0, 1, motion, frames, size=DEMO_SOURCE_SIZE, seed=seed)
    pipe.set_references([pair.ref_image], keypoints=[pair.ref_keypoints], masks=[None])

    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="fsv2v-demo-") as tmp:
        drive = Path(tmp) / "driving.mp4"
        write_test_video(drive, iter(pair.drive_images), DEMO_FPS, tone_hz=DEMO_TONE_HZ)
        # One pass writes both videos: each frame is synthesized once.
        result = pipe.synthesize(
            drive=drive,
            output=output,
            side_by_side_output=side_by_side_path(output),
            drive_keypoints=iter(pair.drive_keypoints),
            overwrite=overwrite,
            on_frame=on_frame,
        )
    write_image(reference_path(output), pair.ref_image)
    return DemoResult(
        output=output,
        side_by_side=side_by_side_path(output),
        reference=reference_path(output),
        frames=result.frames,
        fps=result.video_fps,
        seconds=time.perf_counter() - t0,
    )
