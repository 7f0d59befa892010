"""Training losses of few-shot vid2vid (SPEC §3). Small functions; `training.steps` turns each into one
weighted term of the G step.

| loss | function | default weight (`LossWeights`) |
|---|---|---|
| hinge GAN, image D (and face D) | `hinge_d_loss`, `hinge_g_loss` | gan 1, face 10 |
| hinge GAN, temporal D (optional) | `temporal_hinge_d_loss`, `temporal_hinge_g_loss` | temporal 1 |
| feature matching on D activations | `feature_matching_loss` | feature_matching 10 |
| perceptual VGG19 (relu1_1 .. relu5_1) | `PerceptualLoss` | perceptual 10 |
| warped ref / prev vs real frame | `warp_loss` | warp 10 |
| occlusion mask vs warp confidence | `occlusion_mask_loss` | mask 10 |

Every loss takes an optional `valid` mask: `(B,)` per sample (e.g. "this frame has a face") or any shape
broadcastable to the compared tensors (e.g. a per-pixel `(B, 1, H, W)` mask). Masked-out entries do not
count, and a loss with nothing valid is an exact 0 that is still part of the autograd graph, so the loop
can always call `backward()` on the sum. Losses return scalars; the weights are applied by the trainer.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from fewshotv2v.models.vgg import VGG19
from fewshotv2v.training.config import LossWeights as LossWeights  # re-export: these losses' weights

# A D output is either logits `(B, 1, h, w)` or a feature list with logits last; several scales in a list.
DOutput = torch.Tensor | Sequence[torch.Tensor]


# ---- masking helpers ---------------------------------------------------------------------------------


def _weights(valid: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor | None:
    """`valid` as a float weight broadcast to `like.shape`; `(B,)` masks are per sample."""
    if valid is None:
        return None
    valid = valid.to(device=like.device)
    if valid.dim() == 1 and like.dim() > 1:  # per-sample mask (B,) -> (B, 1, 1, ...)
        valid = valid.view(-1, *([1] * (like.dim() - 1)))
    # float32 weights: counts of millions of pixels are not representable in bf16 / fp16
    return valid.to(torch.float32).expand_as(like)


def masked_mean(x: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """Mean of `x` over the entries where `valid` is true (all if None); exact 0 with a graph if none are.

    Invalid entries are removed with `torch.where`, so a NaN or inf there cannot leak into the result.
    """
    w = _weights(valid, x)
    if w is None:
        return x.mean()
    total = torch.where(w > 0, x * w, torch.zeros_like(x)).sum()  # soft masks in [0, 1] weight entries
    count = w.sum()
    # Nothing valid: total is an exact 0 (with a graph); dividing by 1 instead of 0 keeps gradients finite
    # (a `where` over total / 0 would back-propagate 0 * inf = NaN). No host sync on GPU.
    return total / torch.where(count > 0, count, torch.ones_like(count))


def masked_l1(a: torch.Tensor, b: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """Mean absolute difference over the valid entries."""
    return masked_mean((a - b).abs(), valid)


def _logits(output: DOutput) -> torch.Tensor:
    """The logits of one D scale: the tensor itself, or the last entry of a feature list."""
    return output if isinstance(output, torch.Tensor) else output[-1]


def _as_scales(outputs: DOutput | Sequence[DOutput]) -> list[DOutput]:
    """Accept one scale (tensor) or a list of scales."""
    return [outputs] if isinstance(outputs, torch.Tensor) else list(outputs)


# ---- adversarial losses -----------------------------------------------------------------------------


def hinge_d_loss(
    real_logits_list: DOutput | Sequence[DOutput],
    fake_logits_list: DOutput | Sequence[DOutput],
    valid: torch.Tensor | None = None,
) -> torch.Tensor:
    """Hinge loss of the discriminator, averaged over scales:
    ``mean_s [ mean(relu(1 - D(real)_s)) + mean(relu(1 + D(fake)_s)) ]``.

    Each list holds one entry per scale: logits `(B, 1, h, w)`, or a D feature list (logits last).
    Pass the fake outputs of a D run on the detached generator output.
    """
    real_scales, fake_scales = _as_scales(real_logits_list), _as_scales(fake_logits_list)
    if len(real_scales) != len(fake_scales):
        raise ValueError(f"real and fake D outputs have {len(real_scales)} and {len(fake_scales)} scales")
    losses = [
        masked_mean(F.relu(1.0 - _logits(r)), valid) + masked_mean(F.relu(1.0 + _logits(f)), valid)
        for r, f in zip(real_scales, fake_scales, strict=True)
    ]
    return torch.stack(losses).mean()


def hinge_g_loss(
    fake_logits_list: DOutput | Sequence[DOutput], valid: torch.Tensor | None = None
) -> torch.Tensor:
    """Hinge loss of the generator, averaged over scales: ``mean_s [ -mean(D(fake)_s) ]``."""
    losses = [-masked_mean(_logits(f), valid) for f in _as_scales(fake_logits_list)]
    return torch.stack(losses).mean()


def feature_matching_loss(
    real_feats: Sequence[Sequence[torch.Tensor]],
    fake_feats: Sequence[Sequence[torch.Tensor]],
    valid: torch.Tensor | None = None,
) -> torch.Tensor:
    """Discriminator feature matching (pix2pixHD): L1 between D activations on real and generated frames,
    **summed over the layers of a scale and averaged over scales**, as both references compute it
    (FSV's `GAN_matching_loss` with feature weight 1, IMG's `FeatureMatchingLoss`). With the image D's
    5 matched layers this is 5x the layer mean, so the SPEC weight of 10 means what it means there.
    The logits (last entry of each scale) are not matched; the real activations are detached (targets).

    Args:
        real_feats, fake_feats: per scale, the feature lists returned by a discriminator.
    """
    if len(real_feats) != len(fake_feats):
        raise ValueError(f"real and fake features have {len(real_feats)} and {len(fake_feats)} scales")
    per_scale = []
    for real_scale, fake_scale in zip(real_feats, fake_feats, strict=True):
        layers = [
            masked_l1(fake, real.detach(), valid)
            for real, fake in zip(real_scale[:-1], fake_scale[:-1], strict=True)
        ]
        if layers:
            per_scale.append(torch.stack(layers).sum())
    if not per_scale:  # a D with only a logits layer: nothing to match
        return fake_feats[0][-1].sum() * 0.0
    return torch.stack(per_scale).mean()


# ---- perceptual loss --------------------------------------------------------------------------------


class PerceptualLoss(nn.Module):
    """VGG19 perceptual loss: ``sum_l w_l * L1(phi_l(fake), phi_l(real))`` over relu1_1 .. relu5_1 with
    ``w = 1/32, 1/16, 1/8, 1/4, 1`` (pix2pixHD / FSV).

    Args:
        vgg: a loaded `VGG19`, a path to its safetensors weights (``fewshotv2v.hub.download("vgg19")``), or
            None to switch the loss off (then it returns an exact 0 with a graph; training must run
            without the VGG19 download).
    """

    layer_weights: dict[str, float] = {
        "relu1_1": 1 / 32,
        "relu2_1": 1 / 16,
        "relu3_1": 1 / 8,
        "relu4_1": 1 / 4,
        "relu5_1": 1.0,
    }

    def __init__(self, vgg: VGG19 | str | os.PathLike[str] | None = None) -> None:
        super().__init__()
        if vgg is not None and not isinstance(vgg, VGG19):
            vgg = VGG19.from_file(vgg)
        self.vgg = vgg

    @property
    def enabled(self) -> bool:
        return self.vgg is not None

    def forward(
        self, fake: torch.Tensor, real: torch.Tensor, valid: torch.Tensor | None = None
    ) -> torch.Tensor:
        """fake, real: `(B, 3, H, W)` in [-1, 1]; gradients flow to `fake` only."""
        if self.vgg is None:
            return fake.sum() * 0.0
        b = fake.shape[0]
        # One VGG pass over fake and real together (B, 3, H, W) x 2 -> (2B, 3, H, W).
        feats = self.vgg(torch.cat([fake, real.detach()], dim=0))
        loss = fake.new_zeros(())
        for name, weight in self.layer_weights.items():
            f, r = feats[name][:b], feats[name][b:]
            loss = loss + weight * masked_l1(f, r.detach(), valid)
        return loss


# ---- warping and occlusion mask losses ----------------------------------------------------------


def warp_loss(
    warped: torch.Tensor | None, real: torch.Tensor, valid: torch.Tensor | None = None
) -> torch.Tensor:
    """L1 between a warped image (warped reference or warped previous frame) and the real frame.

    `warped=None` (no previous frame yet) gives 0.
    """
    if warped is None:
        return real.new_zeros(())
    return masked_l1(warped, real.detach(), valid)


def warp_confidence(warped: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """Per-pixel confidence of a warp, `(B, 1, H, W)`: ``clamp(1 - sum_c |warped - real|, 0, 1)``,
    detached (a target, not something to optimise)."""
    diff = (warped.detach() - real.detach()).abs().sum(dim=1, keepdim=True)
    return (1.0 - diff).clamp(0.0, 1.0)


def occlusion_mask_loss(
    mask: torch.Tensor | None,
    warped: torch.Tensor | None,
    real: torch.Tensor,
    valid: torch.Tensor | None = None,
) -> torch.Tensor:
    """Occlusion-mask loss: L1 between the mask `(B, 1, H, W)` and ``1 - conf`` (see `warp_confidence`).

    The mask is the weight of the hallucinated image (``x = h * m + warp * (1 - m)``): it is pushed to 0
    where the warp already matches the real frame and to 1 where it does not. Minimum at
    ``mask = 1 - conf``. `mask` or `warped` None (no warp this frame) gives 0.
    """
    if mask is None or warped is None:
        return real.new_zeros(())
    target = 1.0 - warp_confidence(warped, real)
    return masked_l1(mask, target.to(mask.dtype), valid)


# ---- temporal discriminator helpers -----------------------------------------------------------------


def stack_frames(frames: Sequence[torch.Tensor] | torch.Tensor) -> torch.Tensor:
    """T frames `(B, 3, H, W)` (a list, or a `(B, T, 3, H, W)` tensor) -> `(B, T*3, H, W)` for the
    temporal discriminator."""
    if isinstance(frames, torch.Tensor):
        return frames.flatten(1, 2) if frames.dim() == 5 else frames
    return torch.cat(list(frames), dim=1)


def temporal_hinge_d_loss(
    discriminators: nn.Module,
    real_frames: Sequence[torch.Tensor] | torch.Tensor,
    fake_frames: Sequence[torch.Tensor] | torch.Tensor,
) -> torch.Tensor:
    """Hinge D loss of the temporal discriminator on T consecutive real vs generated frames (the fake
    frames are detached here)."""
    real = discriminators.temporal_d(stack_frames(real_frames))
    fake = discriminators.temporal_d(stack_frames(fake_frames).detach())
    return hinge_d_loss(real, fake)


def temporal_hinge_g_loss(
    discriminators: nn.Module, fake_frames: Sequence[torch.Tensor] | torch.Tensor
) -> torch.Tensor:
    """Hinge G loss of the temporal discriminator on T consecutive generated frames."""
    return hinge_g_loss(discriminators.temporal_d(stack_frames(fake_frames)))


def reconstruction_loss(fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """Mean L1 of a generated frame against the real one (both (B, 3, H, W) in [-1, 1])."""
    return (fake.float() - real.float()).abs().mean()
