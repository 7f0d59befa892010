"""Training-step benchmark: iterations per second and peak memory, printed as JSON.

One iteration = one `Trainer.train_step` on a fixed random batch (B clips of T frames, K references):
per frame one D step and one G step, EMA update included. Data loading is not measured.

    python benchmarks/train.py --preset tiny --device cpu --steps 10
    python benchmarks/train.py --preset pose --device cuda --precision bf16 --batch-size 1 --clip-len 2 \
        --perceptual vgg-random --steps 10
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import tempfile
import time


def make_batch(config, batch: int, clip_len: int, k: int):
    """Random tensors with the shapes and ranges of `data.dataset.TrainingDataset` samples (collated)."""
    import torch

    h, w, c = config.height, config.width, config.label_nc
    g = torch.Generator().manual_seed(0)
    face = torch.tensor([w * 0.35, h * 0.05, w * 0.65, h * 0.05 + w * 0.3])  # a face box near the top
    return {
        "ref_images": torch.rand(batch, k, 3, h, w, generator=g) * 2 - 1,
        "ref_labels": torch.rand(batch, k, c, h, w, generator=g),
        "ref_face_boxes": face.expand(batch, k, 4).clone(),
        "images": torch.rand(batch, clip_len, 3, h, w, generator=g) * 2 - 1,
        "labels": torch.rand(batch, clip_len, c, h, w, generator=g),
        "face_boxes": face.expand(batch, clip_len, 4).clone(),
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"])
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--clip-len", type=int, default=1, help="frames per clip (1 = single-frame stage)")
    parser.add_argument("--k", type=int, default=1, help="references per sample")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (torch.set_num_threads)")
    parser.add_argument(
        "--perceptual", default="none", choices=["none", "vgg-random"],
        help="vgg-random: VGG19 with random weights (same cost as the real one, no download)",
    )  # fmt: skip
    args = parser.parse_args(argv)

    import torch

    from fewshotv2v.config import ModelConfig
    from fewshotv2v.losses import PerceptualLoss
    from fewshotv2v.models.vgg import VGG19
    from fewshotv2v.training.config import TrainConfig
    from fewshotv2v.training.trainer import Trainer

    torch.set_num_threads(args.threads)
    config = ModelConfig.preset(args.preset)
    if args.device == "cuda" and not torch.cuda.is_available():
        print(json.dumps({"error": "CUDA not available"}))
        sys.exit(1)
    device = torch.device(args.device)
    tcfg = TrainConfig(
        steps=args.warmup + args.steps, batch_size=args.batch_size, k_max=args.k, perceptual="none",
        precision=args.precision, single_frame_steps=0 if args.clip_len > 1 else 10**9, workers=0,
    )  # fmt: skip
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = Trainer(config, tcfg, lambda *a: {}, 1, run_dir, device=device)
        if args.perceptual == "vgg-random":
            trainer.perceptual = PerceptualLoss(VGG19().to(device))
        trainer._draw_k = lambda step: args.k  # fixed K (the loop draws it from 1..k_max)
        batch = make_batch(config, args.batch_size, args.clip_len, args.k)
        times = []
        for i in range(args.warmup + args.steps):
            if i == args.warmup and device.type == "cuda":
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
            t0 = time.perf_counter()
            trainer.train_step(batch)
            if device.type == "cuda":
                torch.cuda.synchronize()
            if i >= args.warmup:
                times.append(time.perf_counter() - t0)
    result = {
        "preset": args.preset,
        "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
        "threads": args.threads,
        "precision": args.precision,
        "amp_dtype": str(trainer.amp_dtype).replace("torch.", "") if trainer.amp_dtype else "fp32",
        "batch_size": args.batch_size,
        "clip_len": args.clip_len,
        "k": args.k,
        "perceptual": args.perceptual,
        "size": [config.height, config.width],
        "g_params_m": round(sum(p.numel() for p in trainer.generator.parameters()) / 1e6, 2),
        "d_params_m": round(sum(p.numel() for p in trainer.discriminators.parameters()) / 1e6, 2),
        "sec_per_iter_median": round(statistics.median(times), 4),
        "iters_per_sec": round(1.0 / statistics.median(times), 3),
        "frames_per_sec": round(args.batch_size * args.clip_len / statistics.median(times), 3),
        "nonfinite": trainer.nonfinite,
    }
    if device.type == "cuda":
        result["peak_memory_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    else:  # peak resident set size of the process (Linux reports KiB)
        result["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
