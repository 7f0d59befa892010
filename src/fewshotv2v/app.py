"""`fsv2v app`: a Gradio page and API over the same `Pipeline` as `fsv2v synth` (needs the `[app]` extra).

```python
from fewshotv2v.app import build_app, launch, write_demo_inputs

examples = write_demo_inputs("/tmp/fsv2v-examples")
blocks = build_app(settings, workdir="/tmp/fsv2v-app", examples=examples)
url = launch(blocks, host="127.0.0.1", port=7860, workdir="/tmp/fsv2v-app")
```

`build_app` only builds the page (no server, no network): reference images (or one reference video), a
driving video (or a webcam clip), mode, model and the `fsv2v synth` options that matter -> the result, the
side-by-side video and the summary line. Each job goes through `load_pipeline` + `Pipeline.synthesize`,
like the CLI; a `gr.Progress` bar is fed by the pipeline's `on_finetune` / `on_frame` callbacks. Two
endpoints: the page's `/run` (every option) and `/synthesize` (reference image, driving video, mode ->
video) for scripts using `gradio_client`. Both share one queue slot: jobs run one at a time, so two users
never compete for one GPU.

Library errors (`FewShotV2VError`) reach the page as the CLI's one-line message (`gr.Error`), with the
server's upload paths shortened to the file names the user chose; warnings become `gr.Warning` toasts.
"""

from __future__ import annotations

import shutil
import threading
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import gradio as gr

from fewshotv2v.errors import FewShotV2VError, FewShotV2VWarning, InputError

# Jobs share one queue slot (both endpoints): synthesis is the heavy part and a GPU runs one at a time.
CONCURRENCY_ID = "synthesis"
DEMO_INPUT_FRAMES = 24  # the examples' driving clip: one second at the demo's 24 fps
KEEP_JOBS = 4  # result folders kept; gradio serves its own copies, ours are only needed until then
CACHE_SECONDS = 3600  # gradio's copies of uploads and results are deleted after an hour


def write_demo_inputs(
    folder: str | Path, *, frames: int = DEMO_INPUT_FRAMES, seed: int = 0
) -> tuple[Path, Path]:
    """The `fsv2v demo` inputs as files in `folder`: a synthetic reference photo (`reference.png`) and a
    driving clip of another synthetic person dancing, with a tone (`driving.mp4`). Offline, in a second."""
    from fewshotv2v.data.synthetic import demo_pair
    from fewshotv2v.demo import DEMO_FPS, DEMO_SOURCE_SIZE, DEMO_TONE_HZ
    from fewshotv2v.video import write_image, write_test_video

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    pair = demo_pair(0, 1, "dance", frames, size=DEMO_SOURCE_SIZE, seed=seed)
    ref = write_image(folder / "reference.png", pair.ref_image)
    drive = write_test_video(folder / "driving.mp4", iter(pair.drive_images), DEMO_FPS, tone_hz=DEMO_TONE_HZ)
    return Path(ref), Path(drive)


def _short_paths(message: str, paths: Iterable[str | Path]) -> str:
    """The message with each upload's server path (`<upload dir>/<hash>/name.png`) cut to its name: the
    CLI shows the path the user typed, the page shows the file the user picked."""
    for path in sorted({str(p) for p in paths}, key=len, reverse=True):  # longest first: no partial cuts
        message = message.replace(path, Path(path).name)
    return " ".join(message.split())  # one line, as the CLI prints it


class Synthesizer:
    """Runs the page's jobs. The last model's `Pipeline` is kept for the next job (loading costs more than
    a short clip; one model at a time, so GPU memory holds one), except after finetuning, which changes
    the weights: such a job gets a fresh pipeline of its own."""

    def __init__(self, settings, workdir: str | Path):
        self.settings = settings
        self.results = Path(workdir) / "results"
        self._loaded: tuple[tuple, Any] | None = None  # ((model name, size), Pipeline)
        self._jobs = 0
        # The queue already runs one job at a time; the lock keeps that true for any caller.
        self._lock = threading.Lock()

    def _pipeline(self, model: str | None, mode: str, *, fresh: bool, size: int | None = None):
        from fewshotv2v.inference.loading import load_pipeline
        from fewshotv2v.registry import model_for_mode

        name = model_for_mode(model or self.settings.model, mode)  # empty: the model shipped for the mode
        if fresh:
            return load_pipeline(self.settings, model=name, mode=mode, size=size)
        key = (name, size)
        if self._loaded is None or self._loaded[0] != key:
            self._loaded = None  # free the previous model before loading the next
            self._loaded = (key, load_pipeline(self.settings, model=name, size=size))
        pipe = self._loaded[1]
        pipe.check_mode(mode)
        return pipe

    def _job_dir(self) -> Path:
        import tempfile

        self._jobs += 1
        self.results.mkdir(parents=True, exist_ok=True)
        # Unique even in a reused workdir; the counter keeps the names in the order of the jobs.
        job = Path(tempfile.mkdtemp(prefix=f"job-{self._jobs:05d}-", dir=self.results))
        stale = sorted(self.results.glob("job-*"))[:-KEEP_JOBS]
        for old in stale:
            shutil.rmtree(old, ignore_errors=True)
        return job

    def run(
        self,
        refs: Sequence[str | Path],
        drive: str | Path | None,
        *,
        mode: str = "pose",
        model: str | None = None,
        finetune: int = 0,
        side_by_side: bool = False,
        start: float | None = None,
        end: float | None = None,
        ref_frames: int = 1,
        size: int | None = None,
        progress=None,
    ) -> tuple[Path, Path | None, str]:
        """One job -> (result video, side-by-side video or None, summary line); raises `gr.Error`."""
        uploads = [*refs, *([drive] if drive else [])]
        try:
            with self._lock, warnings.catch_warnings(record=True) as caught:
                # catch_warnings is process-wide: safe here because jobs run one at a time.
                warnings.simplefilter("always", FewShotV2VWarning)
                result, composite = self._synthesize(
                    refs, drive, mode, model, finetune, side_by_side, start, end, ref_frames, size, progress
                )
        except FewShotV2VError as exc:
            # The CLI's one line, not a traceback; a user error, so none in the server log either.
            raise gr.Error(_short_paths(str(exc), uploads), duration=None, print_exception=False) from None
        notes = []
        for w in caught:
            if issubclass(w.category, FewShotV2VWarning):  # meant for the user: a notice in the page
                notes.append(_short_paths(str(w.message), uploads))
                gr.Warning(notes[-1])
            else:  # anything else still goes to the server's log, as without the app
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno, source=w.source)
        summary = "; ".join([_short_paths(result.summary(), [result.output]), *notes])
        return Path(result.output), composite, summary

    def _synthesize(
        self, refs, drive, mode, model, finetune, side_by_side, start, end, ref_frames, size, progress
    ):
        if not refs:
            raise InputError("no reference: upload one or more images of the person (or one video)")
        if not drive:
            raise InputError("no driving video: upload one or record a clip with the webcam")
        report = progress if progress is not None else (lambda *a, **k: None)
        report(0.0, desc="loading the model")
        finetune = int(finetune or 0)
        size = int(size) if size else None
        pipe = self._pipeline(model, mode, fresh=finetune > 0, size=size)
        job = self._job_dir()
        output = job / f"{Path(drive).stem}_fsv2v.mp4"
        composite = job / f"{Path(drive).stem}_fsv2v_side_by_side.mp4" if side_by_side else None
        report(0.0, desc="references")

        def on_finetune(step: int, total: int, g_loss: float, d_loss: float) -> None:
            report((step, total), desc=f"finetuning (G {g_loss:.3f})", unit="steps")

        def on_frame(done: int, total: int | None, fps: float) -> None:
            report((done, total), desc=f"synthesizing ({fps:.1f} frames/s)", unit="frames")

        result = pipe.synthesize(
            ref=[str(r) for r in refs] if len(refs) > 1 else str(refs[0]),
            drive=str(drive),
            output=output,
            side_by_side_output=composite,
            ref_frames=int(ref_frames or 1),
            finetune=finetune,
            start=start,
            end=end,
            on_frame=on_frame,
            on_finetune=on_finetune,
        )
        return result, composite


def _model_choices(settings) -> list[str]:
    """Models that can run now (packaged or downloaded), the default first; a folder can be typed in."""
    from fewshotv2v.hub import list_models
    from fewshotv2v.modes import keypoint_modes
    from fewshotv2v.registry import model_for_mode

    names = [settings.model] if settings.model else [model_for_mode(None, m) for m in keypoint_modes()]
    names += [m.name for m in list_models(settings) if m.local_path and m.name not in names]
    return names


def _file_paths(files) -> list[str]:
    """gr.File(file_count="multiple", type="filepath") gives a list of paths (or None when empty)."""
    if not files:
        return []
    return [str(f) for f in (files if isinstance(files, list | tuple) else [files])]


def build_app(
    settings=None,
    *,
    workdir: str | Path,
    examples: tuple[Path, Path] | None = None,
    max_finetune: int = 1000,
) -> gr.Blocks:
    """The page (see the module docstring). settings: `fewshotv2v.settings.Settings` (model, device, dtype,
    backend; default: `load_settings()`); workdir: where results go; examples: (reference image, driving
    video) shown as a clickable example, e.g. from `write_demo_inputs`."""
    from fewshotv2v.registry import model_for_mode
    from fewshotv2v.settings import load_settings

    settings = settings if settings is not None else load_settings()
    synth = Synthesizer(settings, workdir)
    queue = {"concurrency_limit": 1, "concurrency_id": CONCURRENCY_ID}

    def run(
        refs, drive, mode, model, finetune, side_by_side, start, end, ref_frames, size, progress=gr.Progress()
    ):
        video, composite, summary = synth.run(
            _file_paths(refs),
            drive,
            mode=mode,
            model=model,
            finetune=finetune,
            side_by_side=side_by_side,
            start=start,
            end=end,
            ref_frames=ref_frames,
            size=size,
            progress=progress,
        )
        return str(video), str(composite) if composite else None, summary

    def synthesize(reference, driving_video, mode, progress=gr.Progress()):
        """Reference image + driving video + mode ("pose" / "face") -> the synthesized video."""
        video, _, _ = synth.run(_file_paths(reference), driving_video, mode=mode, progress=progress)
        return str(video)

    with gr.Blocks(
        title="fewshotv2v", analytics_enabled=False, delete_cache=(CACHE_SECONDS, CACHE_SECONDS)
    ) as blocks:
        gr.Markdown(
            "# fewshotv2v\nFew-shot video-to-video synthesis: the person in the reference photos performs "
            "the motion of the driving video. The same pipeline as `fsv2v synth`."
        )
        with gr.Row():
            with gr.Column():
                # No file_types: the library checks the files, so a bad one gets the CLI's message.
                refs = gr.File(
                    label="Reference images of the person (1 to K), or one reference video",
                    file_count="multiple",
                    type="filepath",
                    elem_id="refs",
                )
                drive = gr.Video(
                    label="Driving video", sources=["upload", "webcam"], height=300, elem_id="drive"
                )
                with gr.Row():
                    mode = gr.Radio(["pose", "face"], value="pose", label="Mode", elem_id="mode")
                    model = gr.Dropdown(
                        _model_choices(settings),
                        # the model shipped for pose; a name for another mode resolves per mode
                        value=model_for_mode(settings.model, "pose"),
                        allow_custom_value=True,  # a model folder or a downloaded OWNER/NAME
                        label="Model (name or folder)",
                        elem_id="model",
                    )
                with gr.Accordion("Options", open=False):
                    side_by_side = gr.Checkbox(
                        value=True, label="Side by side (driving | skeleton | result)", elem_id="sbs-opt"
                    )
                    finetune = gr.Number(
                        value=0, precision=0, minimum=0, maximum=max_finetune,
                        label="Test-time finetuning steps (needs discriminator weights)",
                    )  # fmt: skip
                    with gr.Row():
                        start = gr.Number(value=None, minimum=0, label="Start (s)")
                        end = gr.Number(value=None, minimum=0, label="End (s)")
                    ref_frames = gr.Number(
                        value=1, precision=0, minimum=1, label="Frames picked from a reference video"
                    )
                    size = gr.Number(
                        value=1024, precision=0, minimum=16, maximum=4096,
                        label="Output size: long side in pixels (the photo is never upscaled)",
                    )  # fmt: skip
                button = gr.Button("Synthesize", variant="primary", elem_id="run")
            with gr.Column():
                video = gr.Video(label="Result", interactive=False, height=300, elem_id="result")
                composite = gr.Video(
                    label="Side by side", interactive=False, height=240, elem_id="side-by-side"
                )
                summary = gr.Textbox(label="Summary", interactive=False, elem_id="summary")
        if examples is not None:
            ref_example, drive_example = examples
            gr.Examples(
                [[[str(ref_example)], str(drive_example), "pose"]],
                inputs=[refs, drive, mode],
                label="Demo inputs (synthetic person, synthetic dance clip)",
            )
        button.click(
            run,
            [refs, drive, mode, model, finetune, side_by_side, start, end, ref_frames, size],
            [video, composite, summary],
            api_name="run",
            **queue,
        )
        # `/synthesize` for scripts: its own (hidden) components, the same job runner and queue slot.
        with gr.Row(visible=False):
            api_ref = gr.File(label="reference", type="filepath")
            api_drive = gr.Video(label="driving_video")
            api_mode = gr.Radio(["pose", "face"], value="pose", label="mode")
            api_video = gr.Video(label="video")
            api_button = gr.Button("synthesize")
        api_inputs = [api_ref, api_drive, api_mode]
        api_button.click(synthesize, api_inputs, api_video, api_name="synthesize", **queue)
    blocks.queue(default_concurrency_limit=1)
    return blocks


def launch(
    blocks: gr.Blocks,
    *,
    workdir: str | Path,
    host: str = "127.0.0.1",
    port: int | None = None,
    share: bool = False,
    max_upload_mb: float = 200.0,
) -> str:
    """Start serving `blocks` in the background and return its local URL (`blocks.block_thread()` waits
    until Ctrl-C, then closes the server; `blocks.close()` stops it at once).

    Loopback and no public share link unless asked; uploads above `max_upload_mb` are refused by gradio.
    """
    _, url, _ = blocks.launch(
        server_name=host,
        server_port=port,
        share=share,
        max_file_size=int(max_upload_mb * 2**20),
        allowed_paths=[str(workdir)],  # results are written there
        prevent_thread_lock=True,
        quiet=True,  # the command prints the URL itself (stdout), like any other result
        footer_links=["api"],
    )
    return url


__all__ = ["Synthesizer", "build_app", "launch", "write_demo_inputs"]
