"""One training frame of few-shot vid2vid (SPEC §3-4): the D step and the G step's losses.

`GeneratorStep` and `DiscriminatorStep` are thin `nn.Module`s whose `forward` does the whole per-frame
computation, so that a `DistributedDataParallel` wrapper around each sees one forward per backward (DDP
hooks only `forward`; the generator's `encode_references` would otherwise run outside it). In the G step
the *unwrapped* discriminators are called (frozen with `requires_grad_(False)`), so D's DDP reducer is
never involved in G's backward.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from fewshotv2v import losses as L


class GeneratorStep(nn.Module):
    """Encode the references and synthesize one frame; returns the `GeneratorOutput` fields as a dict
    (tensors only, None fields dropped) so DDP can find every output tensor."""

    def __init__(self, generator: nn.Module):
        super().__init__()
        self.generator = generator

    def forward(
        self,
        ref_images: torch.Tensor,  # (B, K, 3, H, W)
        ref_labels: torch.Tensor,  # (B, K, C, H, W)
        label: torch.Tensor,  # (B, C, H, W)
        prev_image: torch.Tensor | None = None,  # (B, 3, H, W), detached previous output
        prev_label: torch.Tensor | None = None,  # (B, C, H, W)
        ref_keypoints: torch.Tensor | None = None,  # (B, K, 137, 3) crop pixels (flow prior)
        keypoints: torch.Tensor | None = None,  # (B, 137, 3)
        ref_transforms: torch.Tensor | None = None,  # (B, K, 3) target crop -> reference crops
    ) -> dict[str, torch.Tensor]:
        refs = self.generator.encode_references(ref_images, ref_labels, ref_keypoints)
        out = self.generator(
            label, refs, prev_image, prev_label, keypoints=keypoints, ref_transform=ref_transforms
        )
        fields = (f.name for f in dataclasses.fields(out))
        return {name: getattr(out, name) for name in fields if getattr(out, name) is not None}


def _split(
    feats: list[list[torch.Tensor]], b: int
) -> tuple[list[list[torch.Tensor]], list[list[torch.Tensor]]]:
    """D features of a (2B, ...) batch [real; fake] -> (real features, fake features), per scale."""
    return [[f[:b] for f in scale] for scale in feats], [[f[b:] for f in scale] for scale in feats]


def image_d_features(discriminators, label, real, fake, ref_label, ref_image):
    """Image D on real and fake in one (2B) pass (instance norm is per sample, so this equals two passes)."""
    b = real.shape[0]
    feats = discriminators.image_d(
        torch.cat([label, label]),
        torch.cat([real, fake]),
        torch.cat([ref_label, ref_label]),
        torch.cat([ref_image, ref_image]),
    )
    return _split(feats, b)


def face_d_features(discriminators, real, fake, boxes, ref_image, ref_boxes):
    """Face D (pose mode) on real and fake face crops in one (2B) pass; `valid (B,)`: frame has a face."""
    b = real.shape[0]
    feats, valid = discriminators.face_d(
        torch.cat([real, fake]),
        torch.cat([boxes, boxes]),
        torch.cat([ref_image, ref_image]),
        torch.cat([ref_boxes, ref_boxes]),
    )
    real_f, fake_f = _split(feats, b)
    return real_f, fake_f, valid[:b]


class DiscriminatorStep(nn.Module):
    """Hinge D losses on one frame: image D (+ face D in pose mode). Returns `{"d_image", "d_face"}`."""

    def __init__(self, discriminators: nn.Module):
        super().__init__()
        self.discriminators = discriminators

    def forward(
        self,
        label: torch.Tensor,  # (B, C, H, W)
        real: torch.Tensor,  # (B, 3, H, W)
        fake: torch.Tensor,  # (B, 3, H, W), detached generator output
        ref_label: torch.Tensor,  # (B, C, H, W): the reference the generator warped
        ref_image: torch.Tensor,  # (B, 3, H, W)
        boxes: torch.Tensor,  # (B, 4) face boxes, -1 = none
        ref_boxes: torch.Tensor,  # (B, 4)
    ) -> dict[str, torch.Tensor]:
        d = self.discriminators
        real_f, fake_f = image_d_features(d, label, real, fake, ref_label, ref_image)
        out = {"d_image": L.hinge_d_loss(real_f, fake_f)}
        if d.has_face:
            real_face, fake_face, valid = face_d_features(d, real, fake, boxes, ref_image, ref_boxes)
            out["d_face"] = L.hinge_d_loss(real_face, fake_face, valid)
        return out


def generator_losses(
    discriminators: nn.Module,
    perceptual: L.PerceptualLoss,
    out: dict[str, torch.Tensor],
    *,
    label: torch.Tensor,
    real: torch.Tensor,
    ref_label: torch.Tensor,
    ref_image: torch.Tensor,
    boxes: torch.Tensor,
    ref_boxes: torch.Tensor,
    weights: dict[str, float],
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """G losses of one frame (SPEC §3), with the discriminators frozen by the caller.

    Returns (weighted total, unweighted parts). Parts: `g_gan` (hinge), `g_fm` (feature matching),
    `g_perceptual` (VGG19; exact 0 when off), `g_warp` (warped ref and prev vs real), `g_mask` (occlusion
    masks vs warp confidence) and, in pose mode, `g_face` (face D hinge).
    """
    fake = out["image"]
    real_f, fake_f = image_d_features(discriminators, label, real, fake, ref_label, ref_image)
    parts = {
        "g_gan": L.hinge_g_loss(fake_f),
        "g_fm": L.feature_matching_loss(real_f, fake_f),
        "g_perceptual": perceptual(fake, real),
        "g_warp": L.warp_loss(out["warped_ref"], real) + L.warp_loss(out.get("warped_prev"), real),
        "g_mask": L.occlusion_mask_loss(out["mask_ref"], out["warped_ref"], real)
        + L.occlusion_mask_loss(out.get("mask_prev"), out.get("warped_prev"), real),
    }
    if discriminators.has_face:
        fake_face, valid = discriminators.face_d(fake, boxes, ref_image, ref_boxes)
        parts["g_face"] = L.hinge_g_loss(fake_face, valid)
    total = (
        weights["gan"] * parts["g_gan"]
        + weights["feature_matching"] * parts["g_fm"]
        + weights["perceptual"] * parts["g_perceptual"]
        + weights["warp"] * parts["g_warp"]
        + weights["mask"] * parts["g_mask"]
    )
    if "g_face" in parts:
        total = total + weights["face"] * parts["g_face"]
    return total, parts
