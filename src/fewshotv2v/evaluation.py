"""Self-reconstruction evaluation (`fsv2v eval`): how well a model re-synthesizes held-out clips.

For each clip, K reference frames and the driving label maps come from the *same* clip, so the ground truth
of every output frame is known. The model runs as at inference time (streaming: references encoded once,
each output fed back as the previous frame). Metrics, on images in [0, 1]:

- L1: mean absolute error;
- PSNR: 10 log10(1 / MSE), averaged over frames;
- SSIM: Wang et al. 2004 with an 11 x 11 gaussian window (sigma 1.5), channel-wise, averaged;
- flicker: mean |x_t - x_{t-1}| of the output minus that of the ground truth (0 = as steady as the real
  video; positive = flickers more).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from fewshotv2v.errors import InputError

METRICS = ("l1", "psnr", "ssim", "flicker")


# ---- metrics -----------------------------------------------------------------------------------------


def _gaussian_window(size: int, sigma: float, channels: int, device, dtype) -> torch.Tensor:
    coords = torch.arange(size, device=device, dtype=dtype) - (size - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    g = g / g.sum()
    window = g[:, None] * g[None, :]  # (size, size), separable gaussian
    return window.expand(channels, 1, size, size).contiguous()


def ssim(x: torch.Tensor, y: torch.Tensor, *, window: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Structural similarity per image: x, y `(B, C, H, W)` in [0, 1] -> `(B,)`.

    Gaussian-weighted local statistics (valid convolution, as in the reference implementation); images
    smaller than the window use a window of their size.
    """
    c = x.shape[1]
    size = min(window, x.shape[-2], x.shape[-1])
    w = _gaussian_window(size, sigma, c, x.device, x.dtype)
    c1, c2 = 0.01**2, 0.03**2  # (K1 L)^2, (K2 L)^2 with data range L = 1

    def blur(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(t, w, groups=c)

    mu_x, mu_y = blur(x), blur(y)
    sxx = blur(x * x) - mu_x**2
    syy = blur(y * y) - mu_y**2
    sxy = blur(x * y) - mu_x * mu_y
    num = (2 * mu_x * mu_y + c1) * (2 * sxy + c2)
    den = (mu_x**2 + mu_y**2 + c1) * (sxx + syy + c2)
    return (num / den).mean(dim=(1, 2, 3))


def psnr(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """PSNR in dB per image (data range 1): `(B, C, H, W)` -> `(B,)`; identical images give 100."""
    mse = ((x - y) ** 2).mean(dim=(1, 2, 3))
    return torch.where(mse > 0, 10 * torch.log10(1.0 / mse.clamp_min(1e-20)), torch.full_like(mse, 100.0))


class ClipMetrics:
    """Accumulates per-frame metrics of one output sequence against its ground truth.

    L1 / PSNR / SSIM count only the frames passed with `score=True` (the reference frames themselves are
    trivially reconstructed and are left out); flicker uses every consecutive pair.
    """

    def __init__(self) -> None:
        self.sums = {"l1": 0.0, "psnr": 0.0, "ssim": 0.0}
        self.frames = 0
        self.change_out = 0.0
        self.change_gt = 0.0
        self.pairs = 0
        self._prev: tuple[torch.Tensor, torch.Tensor] | None = None

    def add(self, output: torch.Tensor, target: torch.Tensor, *, score: bool = True) -> None:
        """output, target: `(1, 3, H, W)` in [0, 1]."""
        output, target = output.float(), target.float()
        if score:
            self.sums["l1"] += float((output - target).abs().mean())
            self.sums["psnr"] += float(psnr(output, target).mean())
            self.sums["ssim"] += float(ssim(output, target).mean())
            self.frames += 1
        if self._prev is not None:
            self.change_out += float((output - self._prev[0]).abs().mean())
            self.change_gt += float((target - self._prev[1]).abs().mean())
            self.pairs += 1
        self._prev = (output, target)

    def result(self) -> dict[str, float]:
        out = {k: (v / self.frames if self.frames else math.nan) for k, v in self.sums.items()}
        out["flicker"] = (self.change_out - self.change_gt) / self.pairs if self.pairs else math.nan
        out["frames"] = self.frames
        return out


# ---- evaluation on a dataset ----------------------------------------------------------------------------


@dataclass
class EvalResult:
    """Per K: the metrics averaged over clips (and each clip's own numbers)."""

    model: str
    data: str
    per_k: dict[int, dict[str, float]] = field(default_factory=dict)
    per_clip: dict[int, dict[str, dict[str, float]]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "data": self.data,
            "results": [{"k": k, **v} for k, v in sorted(self.per_k.items())],
            "clips": {str(k): v for k, v in sorted(self.per_clip.items())},
        }


@torch.no_grad()
def evaluate_clip(generator, clip, *, device=None) -> dict[str, float]:
    """Self-reconstruction of one `data.dataset.EvalClip`: references encoded once (K = 1: the generated
    weights are cached for the clip), every frame synthesized in order with the previous output fed back.
    """
    from fewshotv2v.models.io import module_device

    device = device or module_device(generator)
    ref_kps = clip.ref_keypoints[None].to(device) if clip.ref_keypoints is not None else None
    refs = generator.encode_references(
        clip.ref_images[None].to(device), clip.ref_labels[None].to(device), ref_kps
    )
    metrics = ClipMetrics()
    prev_image = prev_label = None
    ref_set = set(clip.ref_indices)
    for frame in clip.frames():
        label = frame["label"][None].to(device)  # (1, C, H, W)
        kps = frame["keypoints"][None].to(device)  # (1, 137, 3), same crop box as the references
        out = generator(label, refs, prev_image, prev_label, keypoints=kps).image  # (1, 3, H, W), [-1, 1]
        real = frame["image"][None].to(device)
        metrics.add((out.clamp(-1, 1) + 1) / 2, (real + 1) / 2, score=frame["index"] not in ref_set)
        prev_image, prev_label = out, label
    return metrics.result()


def evaluate(
    generator,
    data: str | Path,
    ks: Sequence[int] = (1,),
    *,
    clips: Sequence[str] | None = None,
    held_out: float | Sequence[str] | None = None,
    seed: int = 0,
    max_frames: int | None = None,
    model_name: str = "",
    on_clip: Callable[[int, str], None] | None = None,
) -> EvalResult:
    """Evaluate `generator` (eval mode, on its device) on the clips of dataset `data`, for each K in `ks`.

    `clips` picks clips by name; `held_out` (with `seed`) picks the held-out identities exactly as
    `fsv2v train --held-out` left them out; `max_frames` limits frames per clip.
    """
    from fewshotv2v.data.dataset import EvalDataset

    k_max = generator.config.k_max
    for k in ks:
        if not 1 <= k <= k_max:
            raise InputError(f"K={k} is outside 1..{k_max} (the model's k_max)")
    if max_frames is not None and max_frames < 2:
        raise InputError("--max-frames must be at least 2")
    result = EvalResult(model=model_name, data=str(data))
    for k in ks:
        dataset = EvalDataset(
            data, generator.config, k=k, clips=clips, held_out=held_out, seed=seed, max_frames=max_frames
        )
        per_clip = {}
        for clip in dataset:
            per_clip[clip.name] = evaluate_clip(generator, clip)
            if on_clip is not None:
                on_clip(k, clip.name)
        result.per_clip[k] = per_clip
        result.per_k[k] = {
            m: float(np.nanmean([c[m] for c in per_clip.values()])) if per_clip else math.nan for m in METRICS
        }
        result.per_k[k]["clips"] = len(per_clip)
    return result


def format_table(result: EvalResult) -> str:
    """A plain-text table: one row per K."""
    header = f"{'K':>3}  {'clips':>5}  {'L1':>8}  {'PSNR':>8}  {'SSIM':>8}  {'flicker':>9}"
    rows = [header]
    for k, m in sorted(result.per_k.items()):
        quality = f"{m['l1']:>8.4f}  {m['psnr']:>8.2f}  {m['ssim']:>8.4f}"
        rows.append(f"{k:>3}  {m['clips']:>5}  {quality}  {m['flicker']:>+9.4f}")
    return "\n".join(rows)
