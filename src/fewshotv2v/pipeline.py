"""`Pipeline`: few-shot video-to-video synthesis from references and a driving video (SPEC §5).

```python
from fewshotv2v import Pipeline

pipe = Pipeline.from_pretrained("demo", device="auto")
result = pipe.synthesize(ref=["me1.jpg", "me2.jpg"], drive="dance.mp4", output="me_dancing.mp4")
print(result.summary())
```

Per driving frame the pipeline streams decode -> keypoints (detector + tracker, or given) -> One-Euro
smoothing -> retargeting onto the first reference's proportions -> label map -> generator -> encode: one
frame at a time, so memory stays flat with the video's length. The generator works in the reference crop
(the model's size, e.g. 512 x 256 for pose): the output video has the model's size and the driving video's
fps and audio. `stream()` is the same loop as a generator of uint8 frames, for library use.

The keypoint source is pluggable: `backend` is a registered detector name (`semantics.backends`), any object
with `.detect(image) -> list[Detection]`, or `"none"` when keypoints are passed alongside the frames
(tests, synthetic data with exact keypoints).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fewshotv2v.errors import CheckpointError, ConfigError, InputError, NoPersonError
from fewshotv2v.inference.driving import DriveStats, DrivingKeypoints, LabelMaker, drive_source
from fewshotv2v.inference.references import Reference, largest, pick_reference_frames, prepare_reference

ImageLike = str | Path | np.ndarray
NO_PERSON_SECONDS = 2.0  # a driving video with nobody in its first 2 s fails then, not after the whole video


@dataclass
class SynthesisResult:
    """What `Pipeline.synthesize` did."""

    output: Path | None
    frames: int
    seconds: float  # wall time of the synthesis loop (decode .. encode)
    fps: float  # frames synthesized per second
    video_fps: float  # fps of the written video (= the driving video's)
    frames_without_person: int  # driving frames where no person was detected (held or left empty)
    frames_held: int  # ... of which rendered with the last good keypoints
    frames_empty: int  # ... of which rendered as an empty label map
    finetune_steps: int = 0

    def summary(self) -> str:
        """One line: frames, seconds, frames/s, output path, frames without a person."""
        line = f"{self.frames} frames in {self.seconds:.1f} s ({self.fps:.2f} frames/s) -> {self.output}"
        if self.frames_without_person:
            line += (
                f"; {self.frames_without_person} frames without a person "
                f"({self.frames_held} held, {self.frames_empty} empty)"
            )
        return line


def _load_image(item: ImageLike, what: str) -> tuple[np.ndarray, str]:
    if isinstance(item, np.ndarray):
        if item.dtype != np.uint8 or item.ndim != 3 or item.shape[2] != 3:
            raise InputError(f"{what} must be uint8 (H, W, 3), got {item.dtype} {item.shape}")
        return item, what
    from fewshotv2v.video import read_image

    return read_image(item), str(item)


class Pipeline:
    """References -> streaming synthesis with a loaded `Generator` (see the module docstring).

    Args:
        generator: a `fewshotv2v.models.generator.Generator`.
        device, dtype: "auto"/"cpu"/"cuda"/torch.device; "fp32" | "bf16" | "fp16" (autocast on the
            accelerator; weights stay fp32).
        backend: detector name, an object with `.detect`, or "none" (keypoints given by the caller).
        model_dir: the model folder (needed for `finetune`, which loads `discriminator.safetensors`).
            `finetune` tunes a copy (`tuned_generator`, used until the next `set_references`); `generator`
            itself is never changed.
        hold_frames: driving frames without a person reuse the last keypoints for up to this many frames,
            then an empty label map is rendered (both counted in the result).
        smoothing: One-Euro smoothing of the driving keypoints.
    """

    def __init__(
        self,
        generator,
        *,
        device: Any = "auto",
        dtype: str = "fp32",
        backend: Any = "mediapipe",
        model_dir: str | Path | None = None,
        hold_frames: int = 5,
        smoothing: bool = True,
    ):
        from fewshotv2v.settings import resolve_device, resolve_dtype

        self.device = resolve_device(device) if isinstance(device, str) else device
        self.dtype = resolve_dtype(dtype, self.device)
        self.generator = generator.to(self.device).eval()
        self.config = generator.config
        if self.config.mode not in ("pose", "face"):
            raise ConfigError(
                f"synthesis from keypoints needs a pose or face model; this is a {self.config.mode} model"
            )
        self.model_dir = Path(model_dir) if model_dir is not None else None
        self.hold_frames = hold_frames
        self.smoothing = smoothing
        self._backend_spec = backend
        self.references: list[Reference] = []
        self._state = None  # ReferenceState, computed by set_references
        self.tuned_generator = None  # finetune()'s copy for the current references
        self.last_stats = DriveStats()

    # ---- construction ----------------------------------------------------------------------------
    @classmethod
    def from_pretrained(
        cls,
        name_or_dir: str | Path = "demo",
        *,
        device: Any = "auto",
        dtype: str = "fp32",
        backend: Any = "mediapipe",
        settings=None,
        **kwargs: Any,
    ) -> Pipeline:
        """Load a model folder, a packaged model (`demo`) or a downloaded one (`fewshotv2v.hub`)."""
        from fewshotv2v.hub import resolve_model
        from fewshotv2v.models.io import load_pretrained

        directory = resolve_model(name_or_dir, settings)
        generator, _ = load_pretrained(directory)
        return cls(generator, device=device, dtype=dtype, backend=backend, model_dir=directory, **kwargs)

    @property
    def mode(self) -> str:
        return self.config.mode

    def check_mode(self, mode: str) -> None:
        """Raise `ConfigError` when `mode` is not the model's (a pose model cannot drive a face)."""
        if mode not in ("pose", "face"):
            raise ConfigError(f"unknown mode {mode!r}; use pose or face")
        if mode != self.mode:
            raise ConfigError(f"--mode {mode} needs a {mode} model; this model is a {self.mode} model")

    @property
    def uses_detector(self) -> bool:
        return self._backend_spec not in (None, "none")

    def _open_detector(self, *, static: bool):
        """A detector for one job: a fresh one per video for a backend name (mediapipe's video mode tracks
        across frames; `static` = unrelated images), the caller's object as it is, None for "none"."""
        spec = self._backend_spec
        if not self.uses_detector:
            return None
        if not isinstance(spec, str):
            return spec
        from fewshotv2v.semantics.backends import get_backend

        return (
            get_backend(spec, static_image_mode=True) if static and spec == "mediapipe" else get_backend(spec)
        )

    def _close_detector(self, detector) -> None:
        if detector is not None and detector is not self._backend_spec and hasattr(detector, "close"):
            detector.close()

    def _autocast(self):
        import contextlib

        import torch

        if self.dtype == torch.float32:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    # ---- references --------------------------------------------------------------------------------
    def set_references(
        self,
        images: ImageLike | Iterable[ImageLike],
        *,
        keypoints: Iterable[np.ndarray] | None = None,
        masks: Iterable[np.ndarray | None] | None = None,
        ref_frames: int | None = None,
    ) -> list[Reference]:
        """Prepare the K references and encode them (E_F, and E_P for K = 1) once.

        images: one or more image paths / uint8 `(H, W, 3)` arrays, or one video path (then `ref_frames`
        frames are picked, spread over the video, confident detections first). keypoints: optional
        `(137, 3)` per image (no detection then); masks: optional person masks (pose).
        """
        items = [images] if isinstance(images, str | Path | np.ndarray) else list(images)
        if not items:
            raise InputError("at least one reference image is needed")
        kps_list = list(keypoints) if keypoints is not None else None
        mask_list = list(masks) if masks is not None else [None] * len(items)
        if kps_list is not None and len(kps_list) != len(items):
            raise InputError(f"{len(items)} reference images but {len(kps_list)} keypoint arrays")
        detector = None
        if kps_list is None:
            if not self.uses_detector:
                raise InputError('backend "none" needs reference keypoints (keypoints=...)')
            detector = self._open_detector(static=True)
        try:
            refs = self._prepare_references(items, kps_list, mask_list, detector, ref_frames)
        finally:
            self._close_detector(detector)
        if len(refs) > self.config.k_max:
            raise InputError(f"{len(refs)} references given; this model takes at most {self.config.k_max}")
        self.references = refs
        self.tuned_generator = None  # tuned for the previous references: start again from the weights
        if self.mode == "pose":
            _warn_partial_bodies(refs)
        self._encode_references()
        return refs

    def _prepare_references(self, items, kps_list, mask_list, detector, ref_frames) -> list[Reference]:
        def detect(image: np.ndarray):
            return largest(detector.detect(image))

        single = items[0] if len(items) == 1 else None
        if kps_list is None and isinstance(single, str | Path) and _is_video(single):
            picked = pick_reference_frames(single, ref_frames or 1, detect, self.mode)
            return [
                prepare_reference(im, d.keypoints, self.config, mask=d.mask, name=n) for im, d, n in picked
            ]
        refs = []
        for i, item in enumerate(items):
            image, name = _load_image(item, f"reference {i}")
            if kps_list is not None:
                kps, mask = kps_list[i], mask_list[i]
            else:
                det = detect(image)
                if det is None:
                    raise NoPersonError(
                        f"no {'face' if self.mode == 'face' else 'person'} detected in {name}"
                    )
                kps, mask = det.keypoints, det.mask
            refs.append(prepare_reference(image, kps, self.config, mask=mask, name=name))
        return refs

    def _reference_tensors(self):
        import torch

        from fewshotv2v.inference.compose import image_to_tensor

        images = torch.stack([image_to_tensor(r.image) for r in self.references])[None]  # (1, K, 3, H, W)
        labels = torch.stack([torch.from_numpy(r.label) for r in self.references])[None]  # (1, K, C, H, W)
        return images.to(self.device), labels.to(self.device)

    def _encode_references(self) -> None:
        import torch

        images, labels = self._reference_tensors()
        with torch.inference_mode(), self._autocast():
            self._state = self._active_generator().encode_references(images, labels)

    def _active_generator(self):
        return self.tuned_generator if self.tuned_generator is not None else self.generator

    # ---- test-time finetuning ------------------------------------------------------------------------
    def finetune(
        self, steps: int, *, on_step: Callable[[int, float, float], None] | None = None, seed: int = 0
    ):
        """Test-time finetuning of E_P and H on the references (SPEC §5); needs discriminator weights.

        Tunes a copy of `generator` (kept as `tuned_generator` until the next `set_references`)."""
        import copy

        from fewshotv2v.inference.finetune import finetune
        from fewshotv2v.models.io import D_WEIGHTS_NAME, load_weights

        if not self.references:
            raise InputError("set_references() before finetune()")
        path = self.model_dir / D_WEIGHTS_NAME if self.model_dir is not None else None
        if path is None or not path.is_file():
            where = self.model_dir if self.model_dir is not None else "this model"
            raise CheckpointError(
                f"test-time finetuning (--finetune) needs {D_WEIGHTS_NAME} in the model folder; "
                f"{where} has none"
            )
        from fewshotv2v.models.discriminators import Discriminators

        discriminators = Discriminators(self.config)
        load_weights(discriminators, path)
        discriminators.to(self.device)
        images, labels = self._reference_tensors()
        tuned = copy.deepcopy(self.generator)
        stats = finetune(tuned, discriminators, images, labels, steps, on_step=on_step, seed=seed)
        self.tuned_generator = tuned.eval()
        self._encode_references()
        return stats

    # ---- streaming synthesis ---------------------------------------------------------------------------
    def stream(
        self,
        drive,
        *,
        keypoints: Iterable[np.ndarray | None] | None = None,
        start: float | None = None,
        end: float | None = None,
        max_frames: int | None = None,
        side_by_side: bool = False,
    ) -> Iterator[np.ndarray]:
        """Yield one `uint8 (H, W, 3)` output frame per driving frame (model size; wider with
        `side_by_side`: driving frame | skeleton | result).

        drive: a video / image / frame-folder path, a preprocessed clip folder, or an iterable of uint8
        frames (or `video.Frame`s). keypoints: optional iterable of `(137, 3)` driving keypoints (None =
        no person) in lockstep with the frames; required with backend "none". Counts (frames without a
        person) are in `self.last_stats` as the stream goes.
        """
        if self._state is None:
            raise InputError("set_references() before synthesizing")
        source = drive_source(drive, keypoints=keypoints, start=start, end=end, max_frames=max_frames)
        if not source.keypoints_given and not self.uses_detector:
            raise InputError('backend "none" needs driving keypoints (keypoints=...)')
        return self._stream(source, side_by_side)

    def _stream(self, source, side_by_side: bool) -> Iterator[np.ndarray]:
        stats = self.last_stats = DriveStats()
        detector = self._open_detector(static=False) if not source.keypoints_given else None
        try:
            yield from self._frames(source, detector, stats, side_by_side)
        finally:  # also when the consumer stops early (generator closed)
            self._close_detector(detector)
        if stats.frames and stats.frames == stats.frames_empty:
            raise NoPersonError("no person detected in any frame of the driving video")

    def _frames(self, source, detector, stats: DriveStats, side_by_side: bool) -> Iterator[np.ndarray]:
        import torch

        from fewshotv2v.inference.compose import label_to_image, tensor_to_image
        from fewshotv2v.inference.compose import side_by_side as compose

        keypoints = DrivingKeypoints(
            detector,
            mode=self.mode,
            hold_frames=self.hold_frames,
            smoothing=self.smoothing,
            fps=source.fps,
            stats=stats,
        )
        labeler = LabelMaker(self.config, self.references[0].keypoints)
        prev_image = prev_label = None
        give_up = max(1, round(NO_PERSON_SECONDS * source.fps))  # frames
        for image, given, t in source:
            kps, mask = keypoints(image, given, t)
            if stats.frames_without_person == stats.frames + 1 >= give_up:  # nobody in any frame so far
                what = "face" if self.mode == "face" else "person"
                raise NoPersonError(
                    f"no {what} detected in the first {give_up} frames ({NO_PERSON_SECONDS:g} s) of the "
                    "driving video"
                )
            label = labeler(kps, mask)  # (C, H, W) float32
            label_t = torch.from_numpy(label)[None].to(self.device)  # (1, C, H, W)
            with torch.inference_mode(), self._autocast():
                out = self._active_generator()(label_t, self._state, prev_image, prev_label)
            # Frame t-1 for the next step (SPEC §5: frame 0 warps the reference only).
            prev_image, prev_label = out.image.float(), label_t
            result = tensor_to_image(out.image)
            stats.frames += 1
            yield compose(image, label_to_image(label), result) if side_by_side else result

    def synthesize(
        self,
        ref: ImageLike | Iterable[ImageLike] | None = None,
        drive=None,
        output: str | Path | None = None,
        *,
        ref_keypoints: Iterable[np.ndarray] | None = None,
        drive_keypoints: Iterable[np.ndarray | None] | None = None,
        ref_frames: int | None = None,
        finetune: int = 0,
        start: float | None = None,
        end: float | None = None,
        max_frames: int | None = None,
        side_by_side: bool = False,
        side_by_side_output: str | Path | None = None,
        overwrite: bool = False,
        crf: int = 18,
        on_frame: Callable[[int, int | None, float], None] | None = None,
        on_finetune: Callable[[int, int, float, float], None] | None = None,
    ) -> SynthesisResult:
        """The whole job: references (unless already set), optional finetuning, then stream the driving
        video into `output` (H.264 at the driving video's fps, its audio copied from `start`).

        The output is written to a temp file and renamed at the end: an error or Ctrl-C leaves nothing at
        `output`. An existing `output` is refused unless `overwrite`. `side_by_side_output`: also write the
        `driving | skeleton | result` video there, from the same pass (each frame is synthesized once).
        """
        import contextlib

        from fewshotv2v.video import VideoWriter

        if drive is None or output is None:
            raise InputError("synthesize() needs drive= and output=")
        output = Path(output)
        composite_path = Path(side_by_side_output) if side_by_side_output is not None else None
        for path in (output, composite_path) if composite_path is not None else (output,):
            _check_output(path, overwrite)
        refs = [] if ref is None else [ref] if isinstance(ref, str | Path | np.ndarray) else list(ref)
        _refuse_inputs_as_outputs([output, composite_path], [drive, *refs])
        source = drive_source(drive, keypoints=drive_keypoints, start=start, end=end, max_frames=max_frames)
        if ref is not None:
            self.set_references(ref, keypoints=ref_keypoints, ref_frames=ref_frames)
        if finetune:
            cb = (lambda s, g, d: on_finetune(s, finetune, g, d)) if on_finetune else None
            self.finetune(finetune, on_step=cb)
        if not source.keypoints_given and not self.uses_detector:
            raise InputError('backend "none" needs driving keypoints (drive_keypoints=...)')
        audio = source.path if source.has_audio else None
        frames = 0
        t0 = time.perf_counter()

        def open_writer(path: Path) -> VideoWriter:
            return VideoWriter(
                path, source.fps, crf=crf, audio_from=audio, audio_offset=start or 0.0, overwrite=overwrite
            )

        width = self.config.width  # the result is the right-most panel of a side-by-side frame
        with contextlib.ExitStack() as writers:
            writer = writers.enter_context(open_writer(output))
            composite = writers.enter_context(open_writer(composite_path)) if composite_path else None
            for frame in self._stream(source, side_by_side or composite is not None):
                if composite is not None:
                    composite.write(frame)
                    frame = frame if side_by_side else np.ascontiguousarray(frame[:, -width:])
                writer.write(frame)
                frames += 1
                if on_frame is not None:
                    on_frame(frames, source.num_frames, frames / max(time.perf_counter() - t0, 1e-9))
            if frames == 0:  # raised inside the writer: it removes its temp file
                raise InputError(f"no driving frames to synthesize in {drive} (check --start/--end)")
        seconds = time.perf_counter() - t0
        s = self.last_stats
        return SynthesisResult(
            output=output,
            frames=frames,
            seconds=seconds,
            fps=frames / max(seconds, 1e-9),
            video_fps=source.fps,
            frames_without_person=s.frames_without_person,
            frames_held=s.frames_held,
            frames_empty=s.frames_empty,
            finetune_steps=finetune,
        )


def _warn_partial_bodies(refs: list[Reference]) -> None:
    """Pose models are trained on whole bodies: a reference without visible ankles (an upper-body photo)
    gives a crop of the upper body, so a full-body driver is scaled up and can leave the frame."""
    import warnings

    from fewshotv2v.errors import FewShotV2VWarning
    from fewshotv2v.semantics import keypoints as K

    ankles = [K.BODY.start + 11, K.BODY.start + 14]  # BODY_25 RAnkle, LAnkle
    partial = [
        r.name or f"reference {i}" for i, r in enumerate(refs) if (r.keypoints[ankles, 2] < 0.05).all()
    ]
    if partial and len(partial) == len(refs):
        warnings.warn(
            f"no legs visible in {', '.join(partial)}: pose models expect full-body references; the "
            "driving body will be scaled to the visible part and may leave the frame",
            FewShotV2VWarning,
            stacklevel=3,
        )


def _is_video(item: str | Path) -> bool:
    from fewshotv2v.video import VIDEO_SUFFIXES

    return Path(item).suffix.lower() in VIDEO_SUFFIXES


def _refuse_inputs_as_outputs(outputs: list[Path | None], inputs: list[Any]) -> None:
    """Never write over an input, even with --overwrite: an output that is the same file as the driving
    video or a reference (the same path, a symlink or a hard link: `os.path.samefile`) is refused, and
    so are two outputs that are the same file."""
    import os

    outs = [p for p in outputs if p is not None]
    if len(outs) == 2 and Path(outs[0]).absolute() == Path(outs[1]).absolute():
        raise InputError(f"the output and the side-by-side output are the same file: {outs[0]}")
    paths = [Path(p) for p in inputs if isinstance(p, str | Path)]
    for out in outs:
        if not out.exists():
            continue  # a file that does not exist yet is no input
        for path in paths:
            try:
                same = os.path.samefile(out, path)
            except OSError:  # the input does not exist (reported where it is read)
                same = False
            if same:
                raise InputError(f"output {out} is the input {path}; choose another output file")


def _check_output(output: Path, overwrite: bool) -> None:
    """Fail early (before any work) on an existing output or a missing output folder."""
    from fewshotv2v.errors import OutputExistsError

    if output.exists() and not overwrite:
        raise OutputExistsError(f"{output} exists (use --overwrite to replace it)")
    if output.is_dir():
        raise InputError(f"output {output} is a folder; give a file name such as out.mp4")
    from fewshotv2v.errors import check_output_folder

    check_output_folder(output)


__all__ = ["Pipeline", "SynthesisResult"]
