"""Size and cost of a generator: parameters per component and MACs per steady-state frame.

A steady-state frame is what a video costs per frame after the first: K = 1 references already encoded
(cached generated weights), with a previous frame, so both warps run. MACs come from
`torch.utils.flop_counter.FlopCounterMode` (FLOPs = 2 x MAC; counts convs, grouped convs, matmuls, SDPA).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def parameter_counts(generator: nn.Module, discriminators: nn.Module | None = None) -> dict[str, int]:
    """{component: parameters} for E_F, E_P, E_A, label_embedder, H, W, combine_unets (+ D), and total."""
    counts = {name: count_parameters(m) for name, m in generator.components().items()}
    counts["generator_total"] = count_parameters(generator)
    if discriminators is not None:
        counts["D"] = count_parameters(discriminators)
    return counts


def generated_numbers(generator: nn.Module) -> int:
    """How many weights + biases E_P generates per sample."""
    return sum(
        co * ci * k * k + co
        for layers in generator.generated_shapes.values()
        for co, ci, k in layers.values()
    )


def example_keypoints(config, frame: int = 0) -> torch.Tensor:
    """`(1, 137, 3)` keypoints of a synthetic person (or face) dancing, frame `frame`, at the config's size:
    realistic input for the keypoint flow prior when timing or counting a frame."""
    from fewshotv2v.data.synthetic import make_identity, motion, place
    from fewshotv2v.modes import get_mode

    poses = motion("dance", frame + 1, seed=0)
    xy = place(make_identity(0), poses[frame], config.size, get_mode(config.mode).framing or "body")["kps"]
    return torch.cat([torch.from_numpy(xy).float(), torch.ones(len(xy), 1)], dim=1)[None]


@torch.no_grad()  # FlopCounterMode's module tracker does not work under inference_mode
def steady_state_macs(
    generator: nn.Module, *, device: Any = None, dtype: torch.dtype = torch.float32
) -> dict:
    """MACs of one steady-state frame at the config's resolution (batch 1).

    Returns {"total": MACs, "per_component": {name: MACs}}. Runs a real forward pass (random inputs).
    """
    from torch.utils.flop_counter import FlopCounterMode

    from fewshotv2v.models.io import module_device

    cfg = generator.config
    device = device or module_device(generator)
    h, w, c = cfg.height, cfg.width, cfg.label_nc
    gen = torch.Generator(device="cpu").manual_seed(0)

    def rand(*shape):
        return torch.rand(*shape, generator=gen).to(device=device, dtype=dtype)

    was_training = generator.training
    generator.eval()
    try:
        ref_kps, kps = (example_keypoints(cfg, i).to(device) for i in (0, 1))
        refs = generator.encode_references(rand(1, 1, 3, h, w) * 2 - 1, rand(1, 1, c, h, w), ref_kps[:, None])
        label = rand(1, c, h, w)
        counter = FlopCounterMode(display=False)
        with counter:
            generator(
                label, refs, prev_image=rand(1, 3, h, w) * 2 - 1, prev_label=rand(1, c, h, w), keypoints=kps
            )
    finally:
        generator.train(was_training)
    counts = counter.get_flop_counts()
    top = type(generator).__name__
    per_component = {}
    for name, module in generator.components().items():
        attrs = [a for a, m in generator.named_children() if m is module]
        keys = [f"{top}.{a}" for a in attrs] or [
            f"{top}.{a}" for a, m in generator.named_children() if any(m is s for s in module.children())
        ]
        per_component[name] = sum(sum(counts.get(k, {}).values()) for k in keys) // 2
    return {"total": counter.get_total_flops() // 2, "per_component": per_component}


def model_summary(
    generator: nn.Module, discriminators: nn.Module | None = None, *, with_macs: bool = True
) -> dict[str, Any]:
    """JSON-ready description of a model: config, parameters per component, MACs per steady-state frame."""
    cfg = generator.config
    summary: dict[str, Any] = {
        "config": cfg.to_dict(),
        "label_nc": cfg.label_nc,
        "parameters": parameter_counts(generator, discriminators),
        "generated_numbers_per_sample": generated_numbers(generator),
    }
    if with_macs:
        macs = steady_state_macs(generator)
        summary["gmac_per_frame"] = round(macs["total"] / 1e9, 3)
        summary["gmac_per_component"] = {k: round(v / 1e9, 3) for k, v in macs["per_component"].items()}
        summary["gmac_resolution"] = [cfg.height, cfg.width]
    return summary
