"""`Pipeline`: few-shot video-to-video synthesis from references and a driving video (SPEC §5).

```python
from fewshotv2v import Pipeline

pipe = Pipeline.from_pretrained("keypoint-warp", device="auto")
result = pipe.synthesize(ref=["me1.jpg", "me2.jpg"], drive="dance.mp4", output="me_dancing.mp4")
print(result.summary())
```

Per driving frame the pipeline streams decode -> keypoints (detector + tracker, or given) -> One-Euro
smoothing -> retargeting onto the first reference's proportions -> label map -> generator -> encode: one
frame at a time, so memory stays flat with the video's length. The generator works in a crop at the
model's size. Models with the warp composite (SPEC §7) write the reference photo at its own resolution
(capped by `size`), the crop following the retargeted body on it (`inference.framing`); older models write
their crop at the model's size. Either way the video keeps the driving video's frame count, fps and audio.
`stream()` is the same loop as a generator of uint8 frames, for library use.

The stages overlap (`inference.overlap`): decode .. label map run in a producer (`inference.producer`: a
thread, or a process of its own where both stages would otherwise take turns on one interpreter), the
generator on the caller's thread, and `synthesize` encodes in a writer thread, through bounded queues
(`prefetch` frames each), so the frame rate approaches the slowest stage's rather than their sum.

The keypoint source is pluggable: `backend` is a registered detector name (`semantics.backends`), any object
with `.detect(image) -> list[Detection]`, or `"none"` when keypoints are passed alongside the frames
(tests, synthetic data with exact keypoints).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from fewshotv2v.errors import CheckpointError, ConfigError, InputError, NoPersonError
from fewshotv2v.inference.driving import DriveStats, LabelMaker, drive_source
from fewshotv2v.inference.producer import FrameInput, InputPlan, close_detector, open_detector
from fewshotv2v.inference.references import Reference, largest, pick_reference_frames, prepare_reference
from fewshotv2v.modes import MODES, keypoint_modes

ImageLike = str | Path | np.ndarray
PLATES = ("patches", "smooth")  # how the full-resolution pose plate is filled (`inference.plate`)

if TYPE_CHECKING:  # framing imports torch; the pipeline module itself does not
    from fewshotv2v.inference.framing import Composer


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
    person_changes: int = 0  # times the driving person was lost and someone else followed
    jumps_ignored: int = 0  # detections ignored because the person's height jumped (a detector glitch)
    new_shots: int = 0  # cuts in the driving video after which the driver was taken afresh

    def summary(self) -> str:
        """One line: frames, seconds, frames/s, output path, frames without a person."""
        line = f"{self.frames} frames in {self.seconds:.1f} s ({self.fps:.2f} frames/s) -> {self.output}"
        if self.frames_without_person:
            line += (
                f"; {self.frames_without_person} frames without a person "
                f"({self.frames_held} held, {self.frames_empty} empty)"
            )
        if self.person_changes:
            times = "once" if self.person_changes == 1 else f"{self.person_changes} times"
            line += f"; the driving person was lost and someone else followed {times}"
        if self.jumps_ignored:
            detections = "1 detection" if self.jumps_ignored == 1 else f"{self.jumps_ignored} detections"
            line += (
                f"; {detections} ignored as glitches (a sudden jump in size or place), last keypoints kept"
            )
        if self.new_shots:
            cuts = "1 cut" if self.new_shots == 1 else f"{self.new_shots} cuts"
            line += f"; {cuts} in the driving video, each new shot started at the reference's place"
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
        size: long side of the output (models with the warp composite: the reference photo's own framing,
            never upscaled; default 1024). Other models output their crop at the model's size.
        keep_centered: pose: the body stays where the reference stands (no global motion of the driver).
        plate: pose at full resolution, how the background behind the reference person is filled where
            the driven person leaves it: "patches" (the photo's own texture, `inference.plate`; about 2 s
            once per reference) or "smooth" (a blurred fill of the surroundings, instant).
        hold_frames: driving frames without a person reuse the last keypoints for up to this many frames,
            then an empty label map is rendered (both counted in the result).
        smoothing: One-Euro smoothing of the driving keypoints.
        prefetch: frames made ahead by the producer and queued for the encoder thread; 0 runs the
            stages in series on the caller's thread (no threads).
        producer: where the producer stage runs: "thread", "process" (a process of its own; a thread
            where the job cannot be redone there, e.g. frames passed as arrays) or "auto"
            (`inference.producer.choose_producer`).
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
        size: int | None = None,
        keep_centered: bool = False,
        prefetch: int = 2,
        producer: str = "auto",
        plate: str = "patches",
    ):
        from fewshotv2v.inference.placement import DEFAULT_SIZE, MAX_SIZE
        from fewshotv2v.inference.producer import check_producer
        from fewshotv2v.settings import resolve_device, resolve_dtype

        self.device = resolve_device(device) if isinstance(device, str) else device
        self.dtype = resolve_dtype(dtype, self.device)
        self.generator = generator.to(self.device).eval()
        self.config = generator.config
        if not getattr(MODES.get(self.config.mode), "keypoint_driven", False):
            raise ConfigError(
                f"synthesis from keypoints needs a pose or face model; this is a {self.config.mode} model"
            )
        self.model_dir = Path(model_dir) if model_dir is not None else None
        self.hold_frames = hold_frames
        self.smoothing = smoothing
        size = DEFAULT_SIZE if size is None else int(size)
        if not 16 <= size <= MAX_SIZE:
            raise InputError(
                f"--size must be within 16..{MAX_SIZE} pixels (the output's long side), got {size}"
            )
        # Full-resolution output (SPEC §7) for models with the warp composite; the others output their crop.
        self.size = size if self.config.composite == "warp" else None
        self.keep_centered = keep_centered
        if plate not in PLATES:
            raise ConfigError(f"plate must be one of {', '.join(PLATES)}, got {plate!r}")
        self.plate = plate
        self._composer: Composer | None = None  # made by set_references
        self.prefetch = prefetch
        self.producer = check_producer(producer)
        self.last_producer: str | None = None  # "thread", "process" or "serial": what the last stream used
        self._backend_spec = backend
        self.references: list[Reference] = []
        self._state = None  # ReferenceState, computed by set_references
        self.tuned_generator = None  # finetune()'s copy for the current references
        self.last_stats = DriveStats()

    # ---- construction ----------------------------------------------------------------------------
    @classmethod
    def from_pretrained(
        cls,
        name_or_dir: str | Path = "keypoint-warp",
        *,
        device: Any = "auto",
        dtype: str = "fp32",
        backend: Any = "mediapipe",
        settings=None,
        **kwargs: Any,
    ) -> Pipeline:
        """Load a model folder, a packaged model (`keypoint-warp`, `keypoint-warp-face`, `demo`) or a
        downloaded one (`fewshotv2v.hub`)."""
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
        if mode not in keypoint_modes():
            raise ConfigError(f"unknown mode {mode!r}; use {' or '.join(keypoint_modes())}")
        if mode != self.mode:
            raise ConfigError(f"--mode {mode} needs a {mode} model; this model is a {self.mode} model")

    @property
    def uses_detector(self) -> bool:
        return self._backend_spec not in (None, "none")

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
            detector = open_detector(self._backend_spec, static=True)
        try:
            refs = self._prepare_references(items, kps_list, mask_list, detector, ref_frames)
        finally:
            close_detector(detector, self._backend_spec)
        if len(refs) > self.config.k_max:
            raise InputError(f"{len(refs)} references given; this model takes at most {self.config.k_max}")
        self.references = refs
        self.tuned_generator = None  # tuned for the previous references: start again from the weights
        if self.mode == "pose":
            _warn_partial_bodies(refs)
        self._encode_references()
        if self.size is not None:
            from fewshotv2v.inference.framing import Composer

            self._composer = Composer(
                self.config, refs, self.device, keep_centered=self.keep_centered, plate=self.plate
            )
        return refs

    @property
    def output_size(self) -> tuple[int, int]:
        """(height, width) of the synthesized frames: the canvas (full resolution) or the model's size."""
        return self._composer.output_hw if self._composer is not None else self.config.size

    def _prepare_references(self, items, kps_list, mask_list, detector, ref_frames) -> list[Reference]:
        def detect(image: np.ndarray):
            return largest(detector.detect(image))

        single = items[0] if len(items) == 1 else None
        if kps_list is None and isinstance(single, str | Path) and _is_video(single):
            picked = pick_reference_frames(single, ref_frames or 1, detect, self.mode, max_size=self.size)
            return [
                prepare_reference(im, d.keypoints, self.config, mask=d.mask, name=n, size=self.size)
                for im, d, n in picked
            ]
        refs = []
        for i, item in enumerate(items):
            image, name = _load_image(item, f"reference {i}")
            if kps_list is not None:
                kps, mask = kps_list[i], mask_list[i]
            else:
                det = detect(image)
                if det is None:
                    raise NoPersonError(f"no {MODES[self.mode].subject} detected in {name}")
                kps, mask = det.keypoints, det.mask
            refs.append(prepare_reference(image, kps, self.config, mask=mask, name=name, size=self.size))
        return refs

    def _reference_tensors(self):
        import torch

        from fewshotv2v.inference.compose import image_to_tensor

        images = torch.stack([image_to_tensor(r.image) for r in self.references])[None]  # (1, K, 3, H, W)
        labels = torch.stack([torch.from_numpy(r.label) for r in self.references])[None]  # (1, K, C, H, W)
        kps = torch.stack([torch.from_numpy(r.keypoints) for r in self.references])[None]  # (1, K, 137, 3)
        return images.to(self.device), labels.to(self.device), kps.to(self.device)

    def _encode_references(self) -> None:
        import torch

        images, labels, kps = self._reference_tensors()
        with torch.inference_mode(), self._autocast():
            self._state = self._active_generator().encode_references(images, labels, kps)

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
        images, labels, kps = self._reference_tensors()
        tuned = copy.deepcopy(self.generator)
        stats = finetune(
            tuned, discriminators, images, labels, steps, on_step=on_step, seed=seed, ref_keypoints=kps
        )
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

    def _producer_for(self, source) -> str:
        """Where this job's inputs are made: "serial", "thread" or "process" (`inference.producer`)."""
        from fewshotv2v.inference.producer import choose_producer

        return "serial" if self.prefetch <= 0 else choose_producer(self.producer, source, self._backend_spec)

    def _start_producer(self, source):
        """A context holding a started `overlap.ProducerProcess` when this job's inputs will be made in a
        process (else None), stopped on leaving unless the stream has used it up first."""
        import contextlib

        if self._producer_for(source) != "process":
            return contextlib.nullcontext()
        from fewshotv2v.inference.overlap import ProducerProcess
        from fewshotv2v.inference.producer import preload

        return ProducerProcess(preload(source, self._backend_spec))

    def _stream(self, source, side_by_side: bool, started=None) -> Iterator[np.ndarray]:
        """The frames of one job. `started`: a `ProducerProcess` from `_start_producer`, or None."""
        from fewshotv2v.inference import overlap
        from fewshotv2v.inference.producer import detects, frame_inputs, process_inputs
        from fewshotv2v.threads import detector_threads

        stats = self.last_stats = DriveStats()
        plan = self._input_plan(labels=side_by_side or None, keep_images=side_by_side)
        where = self._producer_for(source)
        self.last_producer, detector = where, None
        if where == "process":  # it reopens the video and makes its own detector
            plan.source = source.reopen
            plan.backend = self._backend_spec if detects(source, self._backend_spec) else None
            plan.detector_threads = detector_threads()  # the share it would have in this process
            inputs = overlap.prefetch_process(
                process_inputs, (plan,), self.prefetch, name="fsv2v-inputs", started=started
            )
        else:
            detector = (
                open_detector(self._backend_spec, static=False)
                if detects(source, self._backend_spec)
                else None
            )
            inputs = frame_inputs(plan, source, detector)
            if where == "thread":  # decode .. label map in a producer thread, ahead of the model
                inputs = overlap.prefetch(inputs, self.prefetch, name="fsv2v-inputs")
        try:
            yield from self._frames(inputs, stats, side_by_side)
        finally:  # also when the consumer stops early (generator closed)
            inputs.close()  # stops (and joins) the producer before its detector is closed
            close_detector(detector, self._backend_spec)
        if stats.frames and stats.frames == stats.frames_empty:
            raise NoPersonError(f"no {MODES[self.mode].subject} detected in any frame of the driving video")

    def _input_plan(self, *, labels: bool | None = None, keep_images: bool = False) -> InputPlan:
        """The producer's work for the current references (`inference.producer`). `labels`: draw the label
        maps (None: when the generator reads them; `keypoint-warp` only needs the keypoints, so at full
        resolution it gets blank maps and the skeleton is not drawn)."""
        if labels is None:
            labels = getattr(self._active_generator(), "reads_label", True)
        composer = self._composer
        frames = (
            composer.placement
            if composer is not None
            else LabelMaker(self.config, self.references[0].keypoints)
        )
        return InputPlan(
            frames=frames,
            labels=labels,
            keep_images=keep_images,
            hold_frames=self.hold_frames,
            smoothing=self.smoothing,
        )

    def _frames(self, inputs: Iterable[FrameInput], stats: DriveStats, side_by_side: bool):
        """The model stage, on the caller's thread: label map -> generator -> uint8 frame (at full
        resolution: the generator's flow, mask and H output composited on the reference photo,
        `inference.framing`)."""
        import torch

        from fewshotv2v.inference.compose import label_to_image, tensor_to_image
        from fewshotv2v.inference.compose import side_by_side as compose

        generator, composer = self._active_generator(), self._composer
        prev_image = prev_label = None
        for item in inputs:
            if item.label is None:  # full resolution, nobody to draw: the plate (pose) or the photo (face)
                frame, prev_image, prev_label = composer.empty_frame(), None, None
                label = np.zeros((1, *self.config.size), np.float32)
            else:
                label = item.label
                label_t = torch.from_numpy(label)[None].to(self.device)  # (1, C, H, W)
                extra = {}
                if item.target is not None:
                    extra["keypoints"] = torch.from_numpy(item.target.keypoints)[None].to(self.device)
                    if item.target.transforms is not None:  # (1, K, 3) target crop -> reference crops
                        extra["ref_transform"] = torch.from_numpy(item.target.transforms)[None].to(
                            self.device
                        )
                with torch.inference_mode(), self._autocast():
                    out = generator(label_t, self._state, prev_image, prev_label, **extra)
                    frame = composer.compose(out, item.target) if item.target is not None else out.image
                # Frame t-1 for the next step (SPEC §5: frame 0 warps the reference only).
                prev_image, prev_label = out.image.float(), label_t
            result = tensor_to_image(frame)
            # The counts of the frames delivered so far (the producer may be a few frames ahead).
            stats.frames_without_person = item.counts.frames_without_person
            stats.frames_held, stats.frames_empty = item.counts.frames_held, item.counts.frames_empty
            stats.person_changes = item.counts.person_changes
            stats.jumps_ignored = item.counts.jumps_ignored
            stats.new_shots = item.counts.new_shots
            stats.frames += 1
            yield compose(item.image, label_to_image(label), result) if side_by_side else result

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
        if not source.keypoints_given and not self.uses_detector:
            raise InputError('backend "none" needs driving keypoints (drive_keypoints=...)')
        if ref is None and self._state is None:
            raise InputError("synthesize() needs ref= (or set_references() before it)")
        # One stack for the job: on an error or Ctrl-C the encoders stop first, then the videos remove their
        # temp files, then the producer process (if any) is stopped.
        with contextlib.ExitStack() as job:
            # A producer process starts now: its interpreter and imports overlap the references' setup.
            started = job.enter_context(self._start_producer(source))
            if ref is not None:
                self.set_references(ref, keypoints=ref_keypoints, ref_frames=ref_frames)
            if finetune:
                cb = (lambda s, g, d: on_finetune(s, finetune, g, d)) if on_finetune else None
                self.finetune(finetune, on_step=cb)
            audio = source.path if source.has_audio else None
            frames = 0
            t0 = time.perf_counter()

            def encoder(path: Path):
                """A writer; with `prefetch`, behind a thread of its own (its errors come back at write())."""
                video = job.enter_context(
                    VideoWriter(path, source.fps, crf=crf, audio_from=audio, audio_offset=start or 0.0,
                                overwrite=overwrite)
                )  # fmt: skip
                if self.prefetch <= 0:
                    return video
                from fewshotv2v.inference.overlap import BackgroundWriter

                # Entered after the video: on an error it stops first, then the video removes its temp file.
                return job.enter_context(BackgroundWriter(video, self.prefetch, name="fsv2v-encode"))

            width = self.output_size[1]  # the result is the right-most panel of a side-by-side frame
            writer = encoder(output)
            composite = encoder(composite_path) if composite_path else None
            for frame in self._stream(source, side_by_side or composite is not None, started):
                if composite is not None:
                    composite.write(frame)
                    frame = frame if side_by_side else np.ascontiguousarray(frame[:, -width:])
                writer.write(frame)
                frames += 1
                if on_frame is not None:
                    on_frame(frames, source.num_frames, frames / max(time.perf_counter() - t0, 1e-9))
            if frames == 0:  # raised inside the writers: they remove their temp files
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
            person_changes=s.person_changes,
            jumps_ignored=s.jumps_ignored,
            new_shots=s.new_shots,
        )


def _warn_partial_bodies(refs: list[Reference]) -> None:
    """Pose models are trained on whole bodies: a reference without visible ankles (an upper-body photo)
    gives a crop of the upper body, so a full-body driver is scaled up and can leave the frame."""
    import warnings

    from fewshotv2v.errors import FewShotV2VWarning
    from fewshotv2v.semantics import keypoints as kp

    ankles = [kp.BODY.start + 11, kp.BODY.start + 14]  # BODY_25 RAnkle, LAnkle
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
