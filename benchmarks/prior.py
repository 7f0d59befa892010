"""Keypoint flow prior benchmark (SPEC §7): ms per call for face and pose, printed as JSON beside the time
of one steady-state generator frame (measured by `benchmarks/generator.py`), so the prior's share of a
frame can be stated.

Keypoints are a synthetic person (`data.synthetic`) scaled to each size, reference and driving poses
differ; B = 1; time = median over `--repeats` calls after warm-up.

    python benchmarks/prior.py                       # CPU, 1 thread, about a minute
    python benchmarks/prior.py --device cuda --generator-frames 20
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import statistics
import sys
import time
from pathlib import Path

SIZES = ((256, 256), (512, 256), (1024, 512))


def _generator_frame(preset: str, args) -> dict:
    """One steady-state frame of a preset, through benchmarks/generator.py (its JSON, not printed)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import generator  # benchmarks/generator.py

    argv = ["--preset", preset, "--device", args.device, "--threads", str(args.threads)]
    argv += ["--frames", str(args.generator_frames), "--warmup", str(args.generator_warmup)]
    with contextlib.redirect_stdout(io.StringIO()):
        result = generator.main(argv)
    return {k: result[k] for k in ("resolution", "parameters_m", "ms_per_frame_median")}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (torch.set_num_threads)")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--generator-frames", type=int, default=1)
    parser.add_argument("--generator-warmup", type=int, default=0)
    parser.add_argument("--no-generator", action="store_true", help="time the prior only")
    args = parser.parse_args(argv)

    import torch

    from fewshotv2v.data import synthetic
    from fewshotv2v.models.prior import face_prior_flow, pose_prior_flow

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    identity = synthetic.make_identity(0)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    def timed(fn) -> float:
        times = []
        for i in range(args.warmup + args.repeats):
            sync()
            start = time.perf_counter()
            fn()
            sync()
            if i >= args.warmup:
                times.append(time.perf_counter() - start)
        return round(statistics.median(times) * 1e3, 3)

    prior = {}
    for h, w in SIZES:
        _, ref, mask = synthetic.render_person(identity, synthetic.Pose(), (h, w))
        _, drive, _ = synthetic.render_person(
            identity, synthetic.Pose(r_arm=1.0, r_elbow=0.8, lean=0.1), (h, w)
        )
        _, face_ref, _ = synthetic.render_person(identity, synthetic.Pose(), (h, w), framing="face")
        _, face_drive, _ = synthetic.render_person(
            identity, synthetic.Pose(head_tilt=0.2, dx=0.05), (h, w), framing="face"
        )
        ref, drive = torch.from_numpy(ref).to(device), torch.from_numpy(drive).to(device)
        face_ref, face_drive = torch.from_numpy(face_ref).to(device), torch.from_numpy(face_drive).to(device)
        mask = torch.from_numpy(mask)[None, None].to(device)
        with torch.inference_mode():
            prior[f"{h}x{w}"] = {
                "face_ms": timed(lambda: face_prior_flow(face_ref, face_drive, (h, w))),  # noqa: B023
                "pose_ms": timed(lambda: pose_prior_flow(ref, drive, (h, w))),  # noqa: B023
                "pose_with_mask_ms": timed(lambda: pose_prior_flow(ref, drive, (h, w), ref_mask=mask)),  # noqa: B023
            }

    result = {
        "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
        "threads": args.threads if device.type == "cpu" else None,
        "batch": 1,
        "repeats": args.repeats,
        "prior": prior,
        "torch": torch.__version__,
    }
    if not args.no_generator:
        generators = {preset: _generator_frame(preset, args) for preset in ("tiny", "pose")}
        result["generator_frame"] = generators
        # the prior at the pose generator's own size, as a share of its frame
        ph, pw = generators["pose"]["resolution"]
        if f"{ph}x{pw}" in prior:
            frame = generators["pose"]["ms_per_frame_median"]
            result["pose_prior_share_of_pose_frame"] = round(prior[f"{ph}x{pw}"]["pose_ms"] / frame, 4)
    json.dump(result, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return result


if __name__ == "__main__":
    main()
