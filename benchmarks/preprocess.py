"""Benchmark `fsv2v preprocess` on CPU: frames/s at 720p per keypoint backend, and peak memory (RSS) for a
short and a long video (preprocessing streams, so the peak must not grow with the video's length).

    python benchmarks/preprocess.py                       # mediapipe, 720p, 24 / 96 frames
    python benchmarks/preprocess.py --frames 48 --long 480
    python benchmarks/preprocess.py --dwpose-det det.onnx --dwpose-pose pose.onnx   # also DWPose

The test video shows a synthetic person (`data.synthetic`) rendered at 360p and upscaled to 1280x720,
so the detectors have someone to find. DWPose runs only when its two ONNX files are given (nothing is
downloaded). Each RSS measurement runs in a fresh subprocess.
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


def make_video(path: Path, frames: int, size=(720, 1280), fps: float = 25.0) -> Path:
    """A synthetic person walking, 720p H.264, written frame by frame."""
    from fewshotv2v.data import synthetic
    from fewshotv2v.video import resize_image, write_test_video

    identity = synthetic.make_identity(0)
    poses = synthetic.motion("walk", frames, fps=fps)

    def gen():
        for pose in poses:
            image, _, _ = synthetic.render_person(identity, pose, (size[0] // 2, size[1] // 2))
            yield resize_image(image, size[1], size[0])

    return write_test_video(path, gen(), fps=fps)


def run_once(video: Path, out: Path, backend: str, backend_kw: dict) -> dict:
    """Preprocess one video; returns frames, seconds and this process's peak RSS (MiB)."""
    from fewshotv2v.data.preprocess import get_backend, preprocess

    detector = get_backend(backend, **backend_kw)
    detector.detect(__import__("numpy").zeros((720, 1280, 3), "uint8"))  # warm-up (model load)
    start = time.perf_counter()
    summary = preprocess([video], out, mode="pose", backend=detector)
    seconds = time.perf_counter() - start
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    return {
        "frames": summary.frames,
        "seconds": seconds,
        "fps": summary.frames / seconds,
        "peak_rss_mib": rss,
    }


def child(args) -> None:
    kw = json.loads(args.backend_kw)
    print(json.dumps(run_once(Path(args.video), Path(args.out), args.backend, kw)))


def in_subprocess(video: Path, out: Path, backend: str, kw: dict) -> dict:
    cmd = [sys.executable, __file__, "--child", "--video", str(video), "--out", str(out)]
    cmd += ["--backend", backend, "--backend-kw", json.dumps(kw)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--frames", type=int, default=24, help="frames of the short video")
    parser.add_argument("--long", type=int, default=96, help="frames of the long video")
    parser.add_argument("--dwpose-det", type=Path, help="DWPose detector ONNX (yolox_l.onnx)")
    parser.add_argument("--dwpose-pose", type=Path, help="DWPose pose ONNX (dw-ll_ucoco_384.onnx)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--video", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--backend", default="mediapipe", help=argparse.SUPPRESS)
    parser.add_argument("--backend-kw", default="{}", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return

    backends: list[tuple[str, dict]] = [("mediapipe", {})]
    if args.dwpose_det and args.dwpose_pose and args.dwpose_det.is_file() and args.dwpose_pose.is_file():
        backends.append(("dwpose", {"det_model": str(args.dwpose_det), "pose_model": str(args.dwpose_pose)}))
    else:
        print("dwpose: skipped (weights not present; pass --dwpose-det and --dwpose-pose)")

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        short = make_video(tmp / "short.mp4", args.frames)
        long = make_video(tmp / "long.mp4", args.long)
        print(f"videos: 1280x720, {args.frames} and {args.long} frames; CPU, 1 thread for numpy/OpenMP")
        for name, kw in backends:
            s = in_subprocess(short, tmp / f"ds-{name}-short", name, kw)
            lg = in_subprocess(long, tmp / f"ds-{name}-long", name, kw)
            print(
                f"{name}: {lg['fps']:.1f} frames/s at 720p ({lg['frames']} frames in {lg['seconds']:.1f} s); "
                f"peak RSS short {s['peak_rss_mib']:.0f} MiB ({s['frames']} frames), "
                f"long {lg['peak_rss_mib']:.0f} MiB ({lg['frames']} frames)"
            )


if __name__ == "__main__":
    main()
