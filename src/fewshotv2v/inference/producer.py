"""The producer stage of synthesis: driving frames -> generator inputs, in a thread or in a process.

Per driving frame: decode -> keypoints (detect + track, or given; `driving.DrivingKeypoints`) -> smoothing
-> retargeting -> label map, and at full resolution the frame's place on the canvas (`placement`). All of
it is numpy: this module does not import torch, so a producer process starts in well under a second and
stays small.

Where it runs (`Pipeline(producer=...)`, `inference.overlap`):
- **thread**: beside the model on the caller's thread. Enough when the stages' heavy parts release the GIL.
- **process**: a spawned process with its own interpreter. It reopens the driving video and creates its own
  detector from an `InputPlan` (everything it needs, picklable: small arrays, the retargeter, names). Only
  what the model needs crosses back: the label map, the canvas target and the counts (the driving image
  only for side-by-side output). It needs a driving *file* (or clip folder), keypoints that are detected
  or given as an array / list, and a built-in detector name (a detector object or a plug-in registered in
  this process does not exist in the child).
- **auto** (the default): a process when the keypoints come with the frames (a clip folder, keypoints
  given), there are at least `PROCESS_MIN_CORES` cores and the video is long enough to pay for starting
  it (`PROCESS_MIN_FRAMES`); otherwise a thread. Measured on 2 cores (`benchmarks/synth.py`): drawing the
  skeleton beside a small model, a process ran 42 frames/s against 28 for a thread (the model alone: 57).
  With mediapipe detecting, both stages need the cores (mediapipe uses about 1.4 of them): a process was
  no faster in the steady state and took 1.5 s longer to start, so detection stays in a thread unless
  `producer="process"` is asked for (worth trying on a machine with many cores).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from fewshotv2v.errors import ConfigError
from fewshotv2v.inference.driving import DriveSource, DriveStats, DrivingKeypoints, LabelMaker, drive_source
from fewshotv2v.inference.placement import FrameTarget, Placement

PRODUCERS = ("auto", "thread", "process")
PROCESS_MIN_CORES = 2  # on one core a second interpreter only takes turns with the first
# Starting a process (a fresh interpreter, numpy, PyAV) costs about 0.45 s on 2 cores, a few dozen small
# frames; below this many frames a thread is as fast.
PROCESS_MIN_FRAMES = 48


@dataclass
class FrameInput:
    """One driving frame, ready for the model stage."""

    image: np.ndarray | None  # uint8 (H, W, 3) driving frame; kept only for side-by-side output
    label: np.ndarray | None  # (C, h, w) float32 label map; None = nobody (an empty frame)
    counts: DriveStats  # the producer's counts up to this frame
    target: FrameTarget | None = None  # full resolution: where the frame goes on the canvas


@dataclass
class InputPlan:
    """What the producer needs besides the source and the detector; picklable (see the module docstring).

    frames: keypoints -> label map (`LabelMaker`, crop-sized output) or -> `FrameTarget` (`Placement`,
    full resolution). labels: draw the label maps (False: blank maps, for a generator that reads only the
    keypoints; `Placement` only). source / backend / detector_threads: for a producer process, the
    `drive_source` arguments, the detector's name (None: keypoints given) and the thread plan's share.
    """

    frames: LabelMaker | Placement
    labels: bool = True
    keep_images: bool = False
    hold_frames: int = 5
    smoothing: bool = True
    source: dict[str, Any] | None = None
    backend: str | None = None
    detector_threads: int | None = None


def open_detector(spec: Any, *, static: bool):
    """A detector for one job: a fresh one per video for a backend name (mediapipe's video mode tracks
    across frames; `static` = unrelated images), the caller's object as it is, None for "none"."""
    if spec in (None, "none"):
        return None
    if not isinstance(spec, str):
        return spec
    from fewshotv2v.semantics.backends import get_backend

    return get_backend(spec, static_image_mode=True) if static and spec == "mediapipe" else get_backend(spec)


def close_detector(detector, spec: Any) -> None:
    """Close a detector `open_detector` made (never the caller's own object)."""
    if detector is not None and detector is not spec and hasattr(detector, "close"):
        detector.close()


def frame_inputs(plan: InputPlan, source: DriveSource, detector) -> Iterator[FrameInput]:
    """The producer loop: one `FrameInput` per driving frame, in order."""
    counts = DriveStats()  # the producer's own counts, handed over with each frame
    keypoints = DrivingKeypoints(
        detector,
        mode=plan.frames.mode,
        hold_frames=plan.hold_frames,
        smoothing=plan.smoothing,
        fps=source.fps,
        stats=counts,
    )
    frames = plan.frames
    frames.reset()  # a new driving video: its frame 0 fixes the driving statistics
    for image, given, t in source:
        kps, mask = keypoints(image, given, t)
        if keypoints.restart:  # someone else, or a new shot: this frame fixes the driving statistics again
            frames.reset()
        kept = image if plan.keep_images else None
        if isinstance(frames, Placement):
            target = frames(kps, mask, label=plan.labels) if kps is not None else None
            label = target.label if target is not None else None
            yield FrameInput(kept, label, replace(counts), target)
        else:
            yield FrameInput(kept, frames(kps, mask), replace(counts))  # label (C, H, W) float32


def process_inputs(plan: InputPlan) -> Iterator[FrameInput]:
    """A producer process's work (`overlap.prefetch_process`): open the source and the detector here."""
    if plan.source is None:
        raise ConfigError("a producer process needs the driving video's drive_source() arguments")
    if plan.detector_threads is not None:
        from fewshotv2v.threads import use_detector_threads

        use_detector_threads(plan.detector_threads)
    source = drive_source(**plan.source)
    detector = open_detector(plan.backend, static=False) if not source.keypoints_given else None
    try:
        yield from frame_inputs(plan, source, detector)
    finally:
        close_detector(detector, plan.backend)


def detects(source: DriveSource, backend: Any) -> bool:
    """Whether this job runs a detector (the keypoints do not come with the frames)."""
    return not (source.keypoints_given or backend in (None, "none"))


def can_use_process(source: DriveSource, backend: Any) -> bool:
    """Whether a producer process could redo this job: a reopenable source, no detector or a built-in one
    by name, and a Python executable to start (`sys.executable` is empty or not Python where Python is
    embedded in another program)."""
    if source.reopen is None or not os.path.isfile(sys.executable or ""):  # an embedded interpreter
        return False
    if not detects(source, backend):
        return True
    from fewshotv2v.semantics.backends import is_builtin

    return isinstance(backend, str) and is_builtin(backend)


def preload(source: DriveSource, backend: Any) -> tuple[str, ...]:
    """The modules a producer process for this job imports while its caller gets the job ready
    (`overlap.ProducerProcess`): this module, the video reader (PyAV) and the detector's backend."""
    modules = [__name__, "fewshotv2v.video"]
    if detects(source, backend):
        modules.append("fewshotv2v.semantics.backends")
    return tuple(modules)


def check_producer(choice: str) -> str:
    """`choice` if it is one of `PRODUCERS`, else a `ConfigError`."""
    if choice not in PRODUCERS:
        raise ConfigError(f"producer must be one of {', '.join(PRODUCERS)}, got {choice!r}")
    return choice


def choose_producer(choice: str, source: DriveSource, backend: Any, *, cores: int | None = None) -> str:
    """ "thread" or "process" for `choice` ("auto", "thread", "process"; see the module docstring).
    "process" where none is possible falls back to a thread (the results are the same)."""
    if check_producer(choice) == "thread" or not can_use_process(source, backend):
        return "thread"
    if choice == "process":
        return "process"
    if detects(source, backend):
        return "thread"  # see the module docstring
    from fewshotv2v.threads import available_cores

    cores = available_cores() if cores is None else cores
    long_enough = source.num_frames is None or source.num_frames >= PROCESS_MIN_FRAMES
    return "process" if cores >= PROCESS_MIN_CORES and long_enough else "thread"


__all__ = [
    "PRODUCERS",
    "FrameInput",
    "InputPlan",
    "check_producer",
    "choose_producer",
    "close_detector",
    "detects",
    "frame_inputs",
    "open_detector",
    "preload",
    "process_inputs",
]
