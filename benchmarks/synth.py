"""Synthesis benchmark (`Pipeline`, random weights): each stage alone, end to end in series and
overlapped, and peak RSS against the driving video's length. Prints JSON.

Stages (milliseconds per frame, each timed alone on the same frames):
- `decode`: reading the driving MP4 (PyAV);
- `inputs`: the producer stage, `inference.producer.frame_inputs` = decode + keypoints (given with the
  synthetic frames, or detected with `--detector mediapipe`) + smoothing + retargeting + label map;
- `model`: the model stage, `Pipeline._frames` on those inputs = generator + conversion to uint8;
- `encode`: H.264 of the output frames (`VideoWriter`).
End to end: `Pipeline.synthesize` in series (`prefetch=0`), overlapped with a producer thread
(`producer="thread"`) and with a producer process (`producer="process"`), the model on the caller's
thread and an encoder thread in both; the order rotated over `--repeats` runs; medians. Each call sets
the references, as `fsv2v synth` does, and its frames/s count from then on (`SynthesisResult.fps`), so a
producer process starts while the references are prepared; `process-cold` sets them before the call, so
the process's start (about 0.45 s) is in its figure. `steady_fps`: from the first frame to the last;
`first_frame_ms`: from the stream's start to the first frame. Issue 12's goal is
`overlapped_fps >= 0.8 x slowest_stage_fps` (`goal_ratio_*` below; `goal_ratio`: the better one).

Keypoints come with the frames (synthetic people with exact keypoints, `data.synthetic`) unless
`--detector mediapipe`. The peak RSS part runs a fresh process per driving video (10 s, 60 s): streaming
means the two peaks are about the same.

    python benchmarks/synth.py --presets tiny --frames 48 --rss-seconds          # stages + end to end
    python benchmarks/synth.py --presets tiny --frames 24 --detector mediapipe --rss-seconds
    python benchmarks/synth.py --presets tiny --rss-seconds 10 60 --rss-fps 5    # + flat memory
    python benchmarks/synth.py --device cuda --dtype bf16 --presets pose --frames 30 --rss-seconds
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DRIVE_HW = (256, 192)  # driving video size (H, W)


def _drive_video(path: Path, seconds: float, fps: float) -> Path:
    """A synthetic dancer (identity 1) as an MP4 with a tone, and its exact keypoints in `<path>.npy`."""
    import numpy as np

    from fewshotv2v.data.synthetic import make_identity, motion, render_person
    from fewshotv2v.video import write_test_video

    n = max(1, int(round(seconds * fps)))
    who = make_identity(1)
    kps = np.zeros((n, 137, 3), np.float32)

    def frames():
        for i, pose in enumerate(motion("dance", n, fps=fps)):
            image, kps[i], _ = render_person(who, pose, DRIVE_HW)
            yield image

    write_test_video(path, frames(), fps, tone_hz=440)
    np.save(path.with_suffix(".npy"), kps)
    return path


def _reference():
    from fewshotv2v.data.synthetic import Pose, make_identity, render_person

    image, kps, mask = render_person(make_identity(0), Pose(), DRIVE_HW)
    return image, kps, mask


def _pipeline(preset: str, folder: Path, device: str, dtype: str, backend="none"):
    import torch

    from fewshotv2v.config import ModelConfig
    from fewshotv2v.models.io import build_model, save_pretrained
    from fewshotv2v.pipeline import Pipeline

    torch.manual_seed(0)
    model_dir = folder / preset
    if not model_dir.exists():
        save_pretrained(model_dir, build_model(ModelConfig.preset(preset)))
    pipe = Pipeline.from_pretrained(model_dir, device=device, dtype=dtype, backend=backend)
    image, kps, mask = _reference()
    pipe.set_references([image], keypoints=[kps], masks=[mask])
    return pipe


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def _median(values: list[float]) -> float:
    import statistics

    return statistics.median(values)


def _ms(seconds: float, frames: int) -> float:
    return round(1000 * seconds / max(1, frames), 2)


def stage_times(pipe, drive: Path, kps, frames: int, detector, folder: Path, device: str) -> dict:
    """Milliseconds per frame of each stage alone (see the module docstring)."""
    from fewshotv2v.inference.driving import DriveStats, drive_source
    from fewshotv2v.inference.producer import frame_inputs
    from fewshotv2v.video import VideoWriter, read_frames

    given = None if detector is not None else iter(kps)
    t0 = time.perf_counter()
    for _ in read_frames(drive, max_frames=frames):
        pass
    decode = time.perf_counter() - t0

    t0 = time.perf_counter()
    source = drive_source(drive, keypoints=given, max_frames=frames)
    inputs = list(frame_inputs(pipe._input_plan(), source, detector))
    produce = time.perf_counter() - t0

    _sync(device)
    t0 = time.perf_counter()
    outputs = list(pipe._frames(iter(inputs), DriveStats(), False))
    _sync(device)
    model = time.perf_counter() - t0

    t0 = time.perf_counter()
    with VideoWriter(folder / "encode.mp4", 10.0, overwrite=True) as writer:
        for image in outputs:
            writer.write(image)
    encode = time.perf_counter() - t0
    n = len(inputs)
    return {
        "decode": _ms(decode, n),
        "inputs": _ms(produce, n),
        "model": _ms(model, n),
        "encode": _ms(encode, n),
    }


def bench_preset(
    preset: str,
    frames: int,
    folder: Path,
    drive: Path,
    device: str,
    dtype: str,
    *,
    repeats: int = 3,
    detector: str = "none",
) -> dict:
    """Stages alone, then end to end in series and overlapped, alternated `repeats` times."""
    import numpy as np

    from fewshotv2v.errors import NoPersonError

    det = None
    if detector != "none":
        from fewshotv2v.semantics.backends import get_backend

        det = get_backend(detector)  # for the stage timing (the pipeline opens its own, by name)
    pipe = _pipeline(preset, folder, device, dtype, backend=detector)
    kps = np.load(drive.with_suffix(".npy"))

    image, ref_kps, _ = _reference()

    def run(mode: str, n: int) -> tuple[float, float, float]:
        """(frames/s, steady frames/s, ms to the first frame) of one `synthesize` call, as `fsv2v synth`
        makes it: the references are set in the call, so a producer process starts while they are
        prepared. "process-cold": the references set before, so nothing hides the process's start."""
        producer = mode.removesuffix("-cold")
        pipe.prefetch, pipe.producer = (0, "thread") if producer == "serial" else (2, producer)
        given = None if det is not None else kps  # an array: a producer process can take it along
        refs = {} if mode.endswith("-cold") else {"ref": image, "ref_keypoints": [ref_kps]}
        times: list[float] = []
        first_ms = []  # on_frame's rate at frame 1 = 1 / (time from the stream's start to it)

        def on_frame(done: int, total, rate: float) -> None:
            times.append(time.perf_counter())
            if done == 1:
                first_ms.append(1000 / rate)

        try:
            result = pipe.synthesize(
                drive=drive, output=folder / f"{preset}.mp4", drive_keypoints=given, max_frames=n,
                overwrite=True, on_frame=on_frame, **refs,
            )  # fmt: skip
        except NoPersonError:  # the detector found nobody: the timing still stands
            return float("nan"), float("nan"), float("nan")
        assert pipe.last_producer == producer, (pipe.last_producer, producer)
        steady = (len(times) - 1) / max(times[-1] - times[0], 1e-9)
        return result.fps, steady, first_ms[0]

    run("thread", 2)  # warm-up (first frames, allocator, detector graph)
    order = ["serial", "thread", "process", "process-cold"]
    stages_runs, fps = [], {k: [] for k in order}
    steady, first = {k: [] for k in order}, {k: [] for k in order}
    for i in range(repeats):
        stages_runs.append(stage_times(pipe, drive, kps, frames, det, folder, device))
        k = i % len(order)
        for mode in order[k:] + order[:k]:  # rotate the order: the machine drifts
            rate, rate_steady, first_ms = run(mode, frames)
            fps[mode].append(rate)
            steady[mode].append(rate_steady)
            first[mode].append(first_ms)
    if det is not None:
        det.close()
    start = bench_process_start(pipe, drive, kps) if det is None else None
    stages = {k: _median([r[k] for r in stages_runs]) for k in stages_runs[0]}
    slowest = max(stages["inputs"], stages["model"], stages["encode"])  # decode is inside `inputs`
    slowest_fps = 1000 / slowest
    medians = {k: round(_median(v), 2) for k, v in fps.items()}
    best = max(medians["thread"], medians["process"])
    config = pipe.config
    return {
        "preset": preset,
        "size": [config.height, config.width],
        "detector": detector,
        "frames": frames,
        "repeats": repeats,
        "stage_ms_per_frame": stages,
        "sum_of_stages_fps": round(1000 / (stages["inputs"] + stages["model"] + stages["encode"]), 2),
        "slowest_stage": max(("inputs", "model", "encode"), key=stages.get),
        "slowest_stage_fps": round(slowest_fps, 2),
        "end_to_end_fps": medians,
        "end_to_end_fps_runs": {k: [round(x, 2) for x in v] for k, v in fps.items()},
        "steady_fps": {k: round(_median(v), 2) for k, v in steady.items()},  # first frame .. last
        "first_frame_ms": {k: round(_median(v), 1) for k, v in first.items()},
        "speedup_thread_vs_serial": round(medians["thread"] / medians["serial"], 3),
        "speedup_process_vs_serial": round(medians["process"] / medians["serial"], 3),
        "goal_ratio_process_cold": round(medians["process-cold"] / slowest_fps, 3),
        "goal_ratio_thread": round(medians["thread"] / slowest_fps, 3),  # issue 12: >= 0.8
        "goal_ratio_process": round(medians["process"] / slowest_fps, 3),
        "goal_ratio": round(best / slowest_fps, 3),
        "model_only_fps": round(1000 / stages["model"], 2),
        "process_first_item_ms": start,
    }


def bench_process_start(pipe, drive: Path, kps, lead_s: float = 0.6, repeats: int = 3) -> dict:
    """Milliseconds from handing a producer process its job to its first item: started cold at the job,
    and started `lead_s` ahead with its imports preloaded (as `synthesize` does while the references are
    prepared; for a photo that takes seconds: its keypoints, the plate)."""
    from fewshotv2v.inference import overlap
    from fewshotv2v.inference.driving import drive_source
    from fewshotv2v.inference.producer import preload, process_inputs

    source = drive_source(drive, keypoints=kps)
    plan = pipe._input_plan()
    plan.source = source.reopen
    times: dict[str, list[float]] = {"cold": [], "started_ahead": []}
    for _ in range(repeats):
        for kind in times:
            started = None
            if kind == "started_ahead":
                started = overlap.ProducerProcess(preload(source, "none"))
                time.sleep(lead_s)
            t0 = time.perf_counter()
            items = overlap.prefetch_process(process_inputs, (plan,), 2, started=started)
            next(items)
            times[kind].append(time.perf_counter() - t0)
            items.close()
    return {"lead_s": lead_s, **{k: round(1000 * _median(v), 1) for k, v in times.items()}}


def bench_mediapipe(drive: Path, frames: int) -> float | None:
    """Milliseconds per frame of the mediapipe backend on the driving frames (None if not installed)."""
    try:
        from fewshotv2v.semantics.backends import get_backend

        backend = get_backend("mediapipe")
    except Exception:
        return None
    from fewshotv2v.video import read_frames

    images = [f.image for f in read_frames(drive, max_frames=frames + 1)]
    backend.detect(images[0])  # warm-up
    t0 = time.perf_counter()
    for image in images[1:]:
        backend.detect(image)
    backend.close()
    return round(1000 * (time.perf_counter() - t0) / max(1, len(images) - 1), 2)


def _peak_rss_mib() -> float:
    """This process's peak RSS. VmHWM (Linux) belongs to this program alone; ru_maxrss would also count
    the parent's memory at fork time (the kernel keeps the old high-water mark across exec)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB -> MiB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB (macOS: bytes)


def rss_child(preset: str, folder: str, drive: str, device: str) -> None:
    """Run in a fresh process: synthesize the whole driving video, print the peak RSS in MiB."""
    import numpy as np

    pipe = _pipeline(preset, Path(folder), device, "fp32")
    kps = np.load(Path(drive).with_suffix(".npy"), mmap_mode="r")
    result = pipe.synthesize(
        drive=drive, output=Path(folder) / "rss.mp4", drive_keypoints=iter(kps), overwrite=True
    )
    peak = _peak_rss_mib()
    print(
        json.dumps(
            {"frames": result.frames, "peak_rss_mib": round(peak, 1), "synth_fps": round(result.fps, 2)}
        )
    )


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--presets", nargs="*", default=["tiny", "pose"])
    parser.add_argument("--frames", type=int, default=8, help="frames per preset (tiny)")
    parser.add_argument("--pose-frames", type=int, default=2, help="frames for full-size presets on CPU")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="fp32", choices=["fp32", "bf16", "fp16"])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3, help="serial / overlapped alternations")
    parser.add_argument("--detector", default="none", help="none (keypoints given) or mediapipe")
    parser.add_argument("--rss-seconds", type=float, nargs="*", default=[10.0, 60.0])
    parser.add_argument("--rss-fps", type=float, default=5.0, help="fps of the RSS driving videos")
    parser.add_argument("--rss-child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    if args.rss_child:
        rss_child(*args.rss_child)
        return {}
    report: dict = {"device": args.device, "dtype": args.dtype, "threads": args.threads, "presets": []}
    report["loadavg_1min_before"] = round(os.getloadavg()[0], 2)  # a shared machine: how busy it was
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        longest = max(args.frames, args.pose_frames)
        drive = _drive_video(folder / "drive.mp4", max(4.0, (longest + 1) / 10.0), 10.0)
        for preset in args.presets:
            n = args.frames if preset.startswith("tiny") or args.device != "cpu" else args.pose_frames
            report["presets"].append(
                bench_preset(
                    preset,
                    n,
                    folder,
                    drive,
                    args.device,
                    args.dtype,
                    repeats=args.repeats,
                    detector=args.detector,
                )  # fmt: skip
            )
        if args.detector == "none":
            report["mediapipe_ms_per_frame"] = bench_mediapipe(drive, 5)
        rss = []
        for seconds in args.rss_seconds:
            video = _drive_video(folder / f"drive_{int(seconds)}s.mp4", seconds, args.rss_fps)
            cmd = [sys.executable, __file__, "--threads", str(args.threads)]
            cmd += ["--rss-child", "tiny", tmp, str(video), args.device]
            out = (
                subprocess.run(cmd, capture_output=True, text=True, check=True)
                .stdout.strip()
                .splitlines()[-1]
            )
            rss.append({"seconds": seconds, "video_fps": args.rss_fps, **json.loads(out)})
        report["peak_rss"] = rss
    report["loadavg_1min_after"] = round(os.getloadavg()[0], 2)
    print(json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    main()
