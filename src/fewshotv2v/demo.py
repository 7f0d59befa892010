"""`fsv2v demo`: the whole synthesis pipeline with the models shipped in the package, no download.

Two demos, both through `Pipeline.synthesize` exactly as `fsv2v synth` runs it (streaming decode ->
keypoints -> retarget -> label map -> generator -> full-resolution composite -> encode, fps and audio kept),
each written with a side-by-side version (driving frame | label map | result):

- **body**: a reference photo of one synthetic person and a driving clip of another (with an audio tone),
  from `fewshotv2v.data.synthetic`, whose keypoints are exact (no detector needed);
- **face**: a real photo shipped in the package (the NASA astronaut portrait, public domain, as
  scikit-image ships it) with its landmarks detected once by mediapipe and stored beside it, animated by
  a landmark-driven motion (`semantics.face_motion`: talking, nodding, blinking). The driving clip shows
  the face edge maps.
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
PHOTO = Path(__file__).with_name("assets") / "photos" / "astronaut.jpg"  # NASA, public domain
PHOTO_KEYPOINTS = PHOTO.with_name("astronaut_keypoints.json")  # mediapipe, detected on PHOTO


@dataclass
class DemoResult:
    """Where the demo wrote its files, and what the synthesis did."""

    output: Path
    side_by_side: Path
    reference: Path
    face_output: Path
    face_side_by_side: Path
    frames: int
    fps: float  # video frame rate (the driving clip's)
    seconds: float  # wall time of the synthesis

    def summary(self) -> str:
        return (
            f"{self.frames} frames at {self.fps:g} fps in {self.seconds:.1f} s -> {self.output} "
            f"(side by side: {self.side_by_side}; reference: {self.reference}); face: {self.face_output}"
        )


def side_by_side_path(output: Path) -> Path:
    return output.with_name(f"{output.stem}_side_by_side{output.suffix}")


def reference_path(output: Path) -> Path:
    return output.with_name(f"{output.stem}_reference.png")


def face_path(output: Path) -> Path:
    return output.with_name(f"{output.stem}_face{output.suffix}")


def run_demo(
    output: str | Path = "demo.mp4",
    *,
    model: str | Path = "",
    face_model: str | Path = "",
    device: str = "cpu",
    dtype: str = "fp32",
    frames: int = DEMO_FRAMES,
    motion: str = "dance",
    seed: int = 0,
    overwrite: bool = False,
    settings=None,
    on_frame=None,
) -> DemoResult:
    """Run both demos: `output` (+ side by side, reference) for the body, `NAME_face.mp4` (+ side by side)
    for the photo. `model` / `face_model`: empty = the models shipped for pose / face.

    `on_frame(done, total, frames_per_second)` is called after each synthesized frame (progress bars).
    """
    import time

    from fewshotv2v.data.synthetic import MOTIONS, demo_pair
    from fewshotv2v.pipeline import Pipeline
    from fewshotv2v.registry import model_for_mode
    from fewshotv2v.video import write_image, write_test_video

    output = Path(output)
    if output.suffix.lower() not in (".mp4", ".mov", ".mkv"):
        raise InputError(f"output must be a video file (.mp4, .mov or .mkv): {output}")
    if motion not in MOTIONS:
        raise InputError(f"unknown motion {motion!r}; choose one of {', '.join(MOTIONS)}")
    if frames < 2:
        raise InputError("the demo needs at least 2 frames")
    face_out = face_path(output)
    targets = [
        output,
        side_by_side_path(output),
        reference_path(output),
        face_out,
        side_by_side_path(face_out),
    ]
    check_output_folder(output)
    if not overwrite:
        for path in targets:
            if path.exists():
                raise OutputExistsError(f"{path} exists; pass --overwrite to replace it")

    pipe = Pipeline.from_pretrained(
        model_for_mode(str(model), "pose"), device=device, dtype=dtype, backend="none", settings=settings
    )
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
        face_pipe = Pipeline.from_pretrained(
            model_for_mode(str(face_model), "face"),
            device=device,
            dtype=dtype,
            backend="none",
            settings=settings,
        )
        _face_demo(face_pipe, Path(tmp) / "face_driving.mp4", face_out, frames, overwrite, on_frame)
    return DemoResult(
        output=output,
        side_by_side=side_by_side_path(output),
        reference=reference_path(output),
        face_output=face_out,
        face_side_by_side=side_by_side_path(face_out),
        frames=result.frames,
        fps=result.video_fps,
        seconds=time.perf_counter() - t0,
    )


def _face_demo(pipe, drive: Path, output: Path, frames: int, overwrite: bool, on_frame) -> None:
    """The packaged photo, animated by `semantics.face_motion`; the driving clip shows the edge maps."""
    from fewshotv2v.inference.compose import label_to_image
    from fewshotv2v.semantics.face_motion import animate_face
    from fewshotv2v.semantics.keypoints import read_keypoints_json
    from fewshotv2v.semantics.label_maps import build_label_map
    from fewshotv2v.video import read_image, write_test_video

    photo = read_image(PHOTO)
    kps = read_keypoints_json(PHOTO_KEYPOINTS)[0]
    pipe.set_references([photo], keypoints=[kps])
    motion = animate_face(kps, frames, DEMO_FPS)
    hw = photo.shape[:2]
    edges = (label_to_image(build_label_map("face", k, hw, config=pipe.config)) for k in motion)
    write_test_video(drive, edges, DEMO_FPS, tone_hz=DEMO_TONE_HZ)
    pipe.synthesize(
        drive=drive,
        output=output,
        side_by_side_output=side_by_side_path(output),
        drive_keypoints=iter(motion),
        overwrite=overwrite,
        on_frame=on_frame,
    )
