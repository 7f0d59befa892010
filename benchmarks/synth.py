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
thread and an encoder thread in both; the order rotated over `--repeats` runs; medians. Issue 12's goal
is `overlapped_fps >= 0.8 x slowest_stage_fps` (`goal_ratio_*` below; `goal_ratio`: the better one).

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

    def run(producer: str, n: int) -> float:
        pipe.prefetch, pipe.producer = (0, "thread") if producer == "serial" else (2, producer)
        given = None if det is not None else kps  # an array: a producer process can take it along
        try:
            result = pipe.synthesize(
                drive=drive, output=folder / f"{preset}.mp4", drive_keypoints=given, max_frames=n,
                overwrite=True,
            )  # fmt: skip
        except NoPersonError:  # the detector found nobody: the timing still stands
            return float("nan")
        assert pipe.last_producer == producer, (pipe.last_producer, producer)
        return result.fps

    run("thread", 2)  # warm-up (first frames, allocator, detector graph)
    order = ["serial", "thread", "process"]
    stages_runs, fps = [], {k: [] for k in order}
    for i in range(repeats):
        stages_runs.append(stage_times(pipe, drive, kps, frames, det, folder, device))
        for producer in order[i % 3 :] + order[: i % 3]:  # rotate the order: the machine drifts
            fps[producer].append(run(producer, frames))
    if det is not None:
        det.close()
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
        "speedup_thread_vs_serial": round(medians["thread"] / medians["serial"], 3),
        "speedup_process_vs_serial": round(medians["process"] / medians["serial"], 3),
        "goal_ratio_thread": round(medians["thread"] / slowest_fps, 3),  # issue 12: >= 0.8
        "goal_ratio_process": round(medians["process"] / slowest_fps, 3),
        "goal_ratio": round(best / slowest_fps, 3),
        "model_only_fps": round(1000 / stages["model"], 2),
    }


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
