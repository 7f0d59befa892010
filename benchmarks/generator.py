"""Steady-state generator benchmark: time per frame and peak memory, printed as JSON.

A steady-state frame = K = 1 references encoded once (cached generated weights), previous frame given
(both warps), batch 1, under torch.inference_mode. Time = median over `--frames` frames after warm-up.

    python benchmarks/generator.py --preset tiny --device cpu --frames 20
    python benchmarks/generator.py --preset pose --device cuda --dtype bf16 --frames 50 \
        --compile --channels-last
    python benchmarks/generator.py --preset pose --device cuda --dtype bf16 --frames 50 --cuda-graph
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--dtype", default="fp32", choices=["fp32", "bf16", "fp16"])
    parser.add_argument("--frames", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (torch.set_num_threads)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the generator")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument(
        "--cuda-graph", action="store_true", help="replay the frame as a CUDA graph (inference.cuda_graph)"
    )
    args = parser.parse_args(argv)

    import torch

    from fewshotv2v.config import ModelConfig
    from fewshotv2v.models.generator import Generator
    from fewshotv2v.models.profile import count_parameters

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device(args.device)
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[args.dtype]
    memory_format = torch.channels_last if args.channels_last else torch.contiguous_format
    config = ModelConfig.preset(args.preset)
    generator = Generator(config).eval().to(device=device, dtype=dtype, memory_format=memory_format)
    model = torch.compile(generator) if args.compile else generator
    b, h, w, c = args.batch, config.height, config.width, config.label_nc

    def rand(*shape):
        x = torch.rand(*shape, device=device, dtype=dtype)
        return x.contiguous(memory_format=memory_format) if x.ndim == 4 else x

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times = []
    with torch.inference_mode():
        refs = generator.encode_references(rand(b, 1, 3, h, w) * 2 - 1, rand(b, 1, c, h, w))
        labels = [rand(b, c, h, w) for _ in range(2)]
        prev = model(labels[0], refs).image  # frame 0: reference warp only
        step = lambda label, prev_image, prev_label: model(label, refs, prev_image, prev_label).image  # noqa: E731
        if args.cuda_graph:
            from fewshotv2v.inference.cuda_graph import GraphedFrame

            step = GraphedFrame(model, refs)  # captured at the first warm-up frame; eager without CUDA
        for i in range(args.warmup + args.frames):
            sync()
            start = time.perf_counter()
            prev = step(labels[i % 2], prev, labels[(i + 1) % 2])
            sync()
            if i >= args.warmup:
                times.append(time.perf_counter() - start)
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated() / 2**20
        peak_kind = "cuda_max_memory_allocated_mib"
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux -> MiB
        peak_kind = "peak_rss_mib"
    result = {
        "preset": args.preset,
        "resolution": [h, w],
        "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
        "dtype": args.dtype,
        "batch": b,
        "threads": args.threads if device.type == "cpu" else None,
        "compile": args.compile,
        "channels_last": args.channels_last,
        "cuda_graph": bool(args.cuda_graph and getattr(step, "graph", None) is not None),
        "parameters_m": round(count_parameters(generator) / 1e6, 3),
        "frames": args.frames,
        "ms_per_frame_median": round(statistics.median(times) * 1e3, 3),
        "ms_per_frame_min": round(min(times) * 1e3, 3),
        "fps": round(b / statistics.median(times), 2),
        peak_kind: round(peak, 1),
        "torch": torch.__version__,
    }
    json.dump(result, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return result


if __name__ == "__main__":
    main()
