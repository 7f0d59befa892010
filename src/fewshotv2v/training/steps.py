"""One training frame of few-shot vid2vid (SPEC §3-4): the D step and the G step's losses.

`GeneratorStep` and `DiscriminatorStep` are thin `nn.Module`s whose `forward` does the whole per-frame
computation, so that a `DistributedDataParallel` wrapper around each sees one forward per backward (DDP
hooks only `forward`; the generator's `encode_references` would otherwise run outside it). In the G step
the *unwrapped* discriminators are called (frozen with `requires_grad_(False)`), so D's DDP reducer is
never involved in G's backward.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from fewshotv2v import losses as L
from fewshotv2v.training.config import LossWeights


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
    """Hinge D losses on one frame: image D (+ face D in pose mode, + temporal D when given T_d stacked
    frames). Returns `{"d_image", "d_face", "d_temporal"}` (those that apply)."""

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
        real_frames: torch.Tensor | None = None,  # (B, T_d*3, H, W): last T_d real frames (temporal D)
        fake_frames: torch.Tensor | None = None,  # (B, T_d*3, H, W): the generated ones (detached here)
    ) -> dict[str, torch.Tensor]:
        d = self.discriminators
        real_f, fake_f = image_d_features(d, label, real, fake, ref_label, ref_image)
        out = {"d_image": L.hinge_d_loss(real_f, fake_f)}
        if d.has_face:
            real_face, fake_face, valid = face_d_features(d, real, fake, boxes, ref_image, ref_boxes)
            out["d_face"] = L.hinge_d_loss(real_face, fake_face, valid)
        if real_frames is not None and fake_frames is not None:
            out["d_temporal"] = L.temporal_hinge_d_loss(d, real_frames, fake_frames)
        return out


@dataclass
class GFrame:
    """What the G step's loss terms see for one frame: the generator output, the real frame and its
    conditioning, and the D features, computed once and only when a term asks for them (face D only in
    pose mode)."""

    discriminators: nn.Module
    perceptual: L.PerceptualLoss
    out: dict[
        str, torch.Tensor
    ]  # GeneratorStep's output: image, warped_ref, mask_ref, ... (*_prev from t > 0)
    label: torch.Tensor  # (B, C, H, W)
    real: torch.Tensor  # (B, 3, H, W)
    ref_label: torch.Tensor  # (B, C, H, W): the reference the generator warped
    ref_image: torch.Tensor  # (B, 3, H, W)
    boxes: torch.Tensor  # (B, 4) face boxes, -1 = none
    ref_boxes: torch.Tensor  # (B, 4)
    fake_frames: torch.Tensor | None = None  # (B, T_d*3, H, W): last T_d generated frames, this one last

    @property
    def fake(self) -> torch.Tensor:
        return self.out["image"]

    @functools.cached_property
    def image_d(self) -> tuple[list[list[torch.Tensor]], list[list[torch.Tensor]]]:
        """(real features, fake features) of the image D, per scale."""
        return image_d_features(
            self.discriminators, self.label, self.real, self.fake, self.ref_label, self.ref_image
        )

    def face_d(self):
        """(fake face D features, valid (B,)), or None for a model without a face D."""
        if not self.discriminators.has_face:
            return None
        return self.discriminators.face_d(self.fake, self.boxes, self.ref_image, self.ref_boxes)


def _warp_term(f: GFrame) -> torch.Tensor:
    return L.warp_loss(f.out["warped_ref"], f.real) + L.warp_loss(f.out.get("warped_prev"), f.real)


def _mask_term(f: GFrame) -> torch.Tensor:
    return L.occlusion_mask_loss(f.out["mask_ref"], f.out["warped_ref"], f.real) + L.occlusion_mask_loss(
        f.out.get("mask_prev"), f.out.get("warped_prev"), f.real
    )


def _face_term(f: GFrame) -> torch.Tensor | None:
    face = f.face_d()
    return None if face is None else L.hinge_g_loss(*face)


def _temporal_term(f: GFrame) -> torch.Tensor | None:
    if f.fake_frames is None:  # no temporal D, or fewer than its T_d frames generated yet in this clip
        return None
    return L.temporal_hinge_g_loss(f.discriminators, f.fake_frames)


@dataclass(frozen=True)
class LossTerm:
    """One weighted term of the G loss: logged as `name`, weighted by the `LossWeights` field `weight`;
    `compute(frame)` returns a scalar, or None where the term does not apply (no face D)."""

    name: str
    weight: str
    compute: Callable[[GFrame], torch.Tensor | None]


# The G step's loss (SPEC §3). A new loss: one `LossWeights` field and one line here.
G_TERMS: tuple[LossTerm, ...] = (
    LossTerm("g_gan", "gan", lambda f: L.hinge_g_loss(f.image_d[1])),
    LossTerm("g_fm", "feature_matching", lambda f: L.feature_matching_loss(*f.image_d)),
    LossTerm("g_perceptual", "perceptual", lambda f: f.perceptual(f.fake, f.real)),  # exact 0 when off
    LossTerm("g_l1", "reconstruction", lambda f: L.reconstruction_loss(f.fake, f.real)),
    LossTerm("g_warp", "warp", _warp_term),  # warped ref and prev vs real
    LossTerm("g_mask", "mask", _mask_term),  # occlusion masks vs warp confidence
    LossTerm("g_face", "face", _face_term),  # pose mode: face D hinge
    LossTerm("g_temporal", "temporal", _temporal_term),  # temporal D hinge (use_temporal_discriminator)
)


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
    weights: LossWeights,
    fake_frames: torch.Tensor | None = None,
    terms: tuple[LossTerm, ...] = G_TERMS,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """G losses of one frame (SPEC §3), with the discriminators frozen by the caller. `fake_frames`: the
    temporal D's input (`losses.stack_frames` of the last T_d generated frames, this one with its graph).

    Returns (weighted total, unweighted parts by term name; terms that do not apply, or whose weight is
    0, are left out: they are not computed, so a run without adversarial terms never calls D).
    """
    frame = GFrame(
        discriminators, perceptual, out, label, real, ref_label, ref_image, boxes, ref_boxes, fake_frames
    )
    parts: dict[str, torch.Tensor] = {}
    total = None
    for term in terms:
        if getattr(weights, term.weight) == 0:
            continue
        value = term.compute(frame)
        if value is None:
            continue
        parts[term.name] = value
        weighted = getattr(weights, term.weight) * value
        total = weighted if total is None else total + weighted
    if total is None:  # every weight 0: nothing to learn from this frame
        total = frame.fake.sum() * 0.0
    return total, parts
