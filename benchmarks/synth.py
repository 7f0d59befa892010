"""Synthesis benchmark (`Pipeline`, random weights): frames/s end to end and model only, and peak RSS
against the driving video's length. Prints JSON.

- end to end = decode the driving MP4 + keypoints + retarget + render + generator + H.264 encode, through
  `Pipeline.synthesize`. Keypoints come with the frames (synthetic people with exact keypoints,
  `data.synthetic`), so the detector's cost is measured separately (`mediapipe_ms_per_frame`, on the same
  frames, when mediapipe is installed).
- model only = `Generator.forward` per frame (K = 1, previous frame fed back), after one warm-up frame.
- peak RSS: a fresh process synthesizes a 10 s and a 60 s driving video with the tiny model; streaming
  means the two peaks are about the same.

    python benchmarks/synth.py                       # CPU: tiny + a short pose run, RSS 10 s vs 60 s
    python benchmarks/synth.py --presets tiny --rss-seconds 10 60 --rss-fps 5
    python benchmarks/synth.py --device cuda --dtype bf16 --presets pose --frames 30 --rss-seconds
"""

from __future__ import annotations

import argparse
import json
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


def _pipeline(preset: str, folder: Path, device: str, dtype: str):
    import torch

    from fewshotv2v.config import ModelConfig
    from fewshotv2v.models.generator import Generator
    from fewshotv2v.models.io import save_pretrained
    from fewshotv2v.pipeline import Pipeline

    torch.manual_seed(0)
    model_dir = folder / preset
    if not model_dir.exists():
        save_pretrained(model_dir, Generator(ModelConfig.preset(preset)))
    pipe = Pipeline.from_pretrained(model_dir, device=device, dtype=dtype, backend="none")
    image, kps, mask = _reference()
    pipe.set_references([image], keypoints=[kps], masks=[mask])
    return pipe


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def bench_preset(preset: str, frames: int, folder: Path, drive: Path, device: str, dtype: str) -> dict:
    import numpy as np
    import torch

    pipe = _pipeline(preset, folder, device, dtype)
    kps = np.load(drive.with_suffix(".npy"))
    # end to end (the first frame includes warm-up: run one frame first)
    pipe.synthesize(
        drive=drive, output=folder / "warm.mp4", drive_keypoints=iter(kps), max_frames=1, overwrite=True
    )
    result = pipe.synthesize(
        drive=drive,
        output=folder / f"{preset}.mp4",
        drive_keypoints=iter(kps),
        max_frames=frames,
        overwrite=True,
    )
    # model only: the generator on fixed label maps, previous frame fed back
    config = pipe.config
    label = torch.rand(1, config.label_nc, config.height, config.width, device=pipe.device)
    prev = None
    times = []
    with torch.inference_mode(), pipe._autocast():
        for i in range(frames + 1):
            _sync(device)
            t0 = time.perf_counter()
            out = pipe.generator(label, pipe._state, *((prev, label) if prev is not None else (None, None)))
            prev = out.image.float()
            _sync(device)
            if i:  # frame 0 is the warm-up
                times.append(time.perf_counter() - t0)
    return {
        "preset": preset,
        "size": [config.height, config.width],
        "frames": result.frames,
        "end_to_end_fps": round(result.fps, 3),
        "model_only_fps": round(len(times) / sum(times), 3),
        "model_ms_per_frame": round(1000 * sum(times) / len(times), 2),
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
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        drive = _drive_video(folder / "drive.mp4", 4.0, 10.0)
        for preset in args.presets:
            n = args.frames if preset.startswith("tiny") or args.device != "cpu" else args.pose_frames
            report["presets"].append(bench_preset(preset, n, folder, drive, args.device, args.dtype))
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
    print(json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    main()
