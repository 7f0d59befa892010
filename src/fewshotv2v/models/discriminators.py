"""Discriminators of few-shot vid2vid (SPEC §3): conditional multi-scale image PatchGAN, face PatchGAN
(pose mode) and an optional temporal PatchGAN on stacked consecutive frames.

Every discriminator returns, per scale, the list of its intermediate activations with the patch logits
last, so that the same call serves the hinge GAN loss (logits) and the feature-matching loss
(activations), see `fewshotv2v.losses`.

Layer recipe (pix2pixHD / FSV PatchGAN), with ``c = config.d_ch_base`` (32 in the paper):

    conv4x4 s2 (-> c) -> conv4x4 s2 (2c) -> conv4x4 s2 (4c) -> conv4x4 s2 (8c) -> conv4x4 s1 (16c)
    -> conv4x4 s1 (-> 1)

Spectral norm on every conv, instance norm on all but the first and the last, LeakyReLU 0.2. Convs pad by
2 (as pix2pixHD does) so that even 16-pixel inputs keep >= 2 pixels per map, which instance norm needs.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from fewshotv2v.modes import MODES

# Features of one PatchGAN: intermediate activations, logits last.
Features = list[torch.Tensor]
# Features of a multi-scale PatchGAN: one `Features` list per scale, finest first.
MultiScaleFeatures = list[Features]


def _cfg(config: Any, name: str, default: Any) -> Any:
    """A config field, else `config.extra[name]`, else `default` (lets stand-in configs omit fields)."""
    if hasattr(config, name):
        return getattr(config, name)
    extra = getattr(config, "extra", None) or {}
    return extra.get(name, default)


def _conv(in_ch: int, out_ch: int, stride: int, spectral: bool) -> nn.Conv2d:
    conv = nn.Conv2d(in_ch, out_ch, kernel_size=4, stride=stride, padding=2)
    return nn.utils.parametrizations.spectral_norm(conv) if spectral else conv


class PatchDiscriminator(nn.Module):
    """Single-scale PatchGAN: `(B, in_ch, H, W)` -> list of activations, patch logits `(B, 1, h, w)` last.

    Args:
        in_ch: input channels.
        ch_base: width of the first conv (32 in the paper); later convs use 2x, 4x, 8x, 16x.
        num_down: stride-2 convs (4 in the paper), followed by two stride-1 convs.
        spectral: wrap every conv in spectral norm.
    """

    def __init__(self, in_ch: int, ch_base: int = 32, num_down: int = 4, spectral: bool = True) -> None:
        super().__init__()
        widths = [ch_base * 2**i for i in range(num_down + 1)]  # 32, 64, 128, 256, 512
        strides = [2] * num_down + [1]
        blocks: list[nn.Module] = []
        prev = in_ch
        for i, (width, stride) in enumerate(zip(widths, strides, strict=True)):
            layers: list[nn.Module] = [_conv(prev, width, stride, spectral)]
            if i > 0:  # no normalisation on the first layer (raw image statistics matter)
                layers.append(nn.InstanceNorm2d(width, affine=False))
            layers.append(nn.LeakyReLU(0.2))
            blocks.append(nn.Sequential(*layers))
            prev = width
        blocks.append(_conv(prev, 1, 1, spectral))  # logits: no norm, no activation
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x: torch.Tensor) -> Features:
        feats: Features = []
        for block in self.blocks:
            x = block(x)
            feats.append(x)
        return feats


class MultiScalePatchDiscriminator(nn.Module):
    """`num_scales` PatchGANs with separate weights; scale s sees the input downsampled by 2^s (bilinear)."""

    def __init__(self, in_ch: int, ch_base: int = 32, num_scales: int = 2, spectral: bool = True) -> None:
        super().__init__()
        self.scales = nn.ModuleList(
            PatchDiscriminator(in_ch, ch_base, spectral=spectral) for _ in range(num_scales)
        )

    def forward(self, x: torch.Tensor) -> MultiScaleFeatures:
        out: MultiScaleFeatures = []
        for i, disc in enumerate(self.scales):
            if i > 0:  # x0.5 between scales; antialias keeps the coarse D from seeing aliasing artefacts
                x = F.interpolate(x, scale_factor=0.5, mode="bilinear", align_corners=False, antialias=True)
            out.append(disc(x))
        return out


def split_features(features: MultiScaleFeatures, first: int) -> tuple[MultiScaleFeatures, MultiScaleFeatures]:
    """Split the outputs of one D pass over ``cat([real, fake])`` into (real, fake) features.

    One pass over the concatenated batch costs less than two and is what DistributedDataParallel expects
    (one forward per backward); instance norm is per sample, so the halves do not interact.
    """
    head = [[f[:first] for f in scale] for scale in features]
    tail = [[f[first:] for f in scale] for scale in features]
    return head, tail


def crop_boxes(images: torch.Tensor, boxes: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Crop and resize boxes from a batch of images in one vectorised `grid_sample` call (ROI-align style).

    Args:
        images: `(B, C, H, W)`.
        boxes: `(B, 4)` = x0, y0, x1, y1 in pixel coordinates of `images` (pixel edges: a box 0, 0, W, H is
            the whole image); any negative entry, or an empty box, marks "no box".
        size: side of the square output crops.

    Returns:
        crops `(B, C, size, size)` (zeros outside the image and for missing boxes) and valid `(B,)` bool.
    """
    b, _, h, w = images.shape
    # Box arithmetic in float32 even under autocast: bf16 cannot hold pixel coordinates exactly.
    boxes = boxes.to(device=images.device, dtype=torch.float32)
    x0, y0, x1, y1 = boxes.unbind(dim=1)
    valid = (boxes >= 0).all(dim=1) & (x1 > x0) & (y1 > y0)
    # Missing boxes sample the whole image instead (finite values, no NaN in the graph); masked later.
    full = boxes.new_tensor([0.0, 0.0, float(w), float(h)]).expand(b, 4)
    x0, y0, x1, y1 = torch.where(valid[:, None], boxes, full).unbind(dim=1)
    # Affine map from the output grid [-1, 1]^2 to the box in normalised input coordinates
    # (align_corners=False: -1 and 1 are the outer pixel edges, matching the box convention).
    theta = torch.zeros(b, 2, 3, device=images.device, dtype=torch.float32)
    theta[:, 0, 0] = (x1 - x0) / w
    theta[:, 0, 2] = (x0 + x1) / w - 1.0
    theta[:, 1, 1] = (y1 - y0) / h
    theta[:, 1, 2] = (y0 + y1) / h - 1.0
    grid = F.affine_grid(theta, [b, images.shape[1], size, size], align_corners=False).to(images.dtype)
    crops = F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    crops = crops * valid[:, None, None, None].to(crops.dtype)
    return crops, valid


class Discriminators(nn.Module):
    """All discriminators of one model (SPEC §3), built from a `ModelConfig`.

    - `image_net`: conditional multi-scale PatchGAN on concat(label, image, ref_label, ref_image),
      `2 * (label_nc + 3)` input channels, `config.d_num_scales` scales (2).
    - `face_net` (pose mode with `use_face_discriminator`): single-scale PatchGAN on the face crop of the
      frame concatenated with the face crop of the reference (6 channels), crops `face_crop_size` square.
    - `temporal_net` (`use_temporal_discriminator`, off by default as in every released setup): multi-scale
      PatchGAN on `temporal_frames` (default 3) consecutive frames stacked on channels.

    Call the methods `image_d`, `face_d`, `temporal_d` directly, or `forward(kind, *args)` (what a
    DistributedDataParallel wrapper calls).
    """

    def __init__(self, config: Any) -> None:
        super().__init__()
        label_nc = int(config.label_nc)
        ch_base = int(_cfg(config, "d_ch_base", 32))
        num_scales = int(_cfg(config, "d_num_scales", 2))
        spectral = bool(_cfg(config, "spectral_norm", True))
        self.face_crop_size = int(_cfg(config, "face_crop_size", 128))
        self.temporal_frames = int(_cfg(config, "temporal_frames", 3))

        self.image_net = MultiScalePatchDiscriminator(2 * (label_nc + 3), ch_base, num_scales, spectral)
        mode = MODES.get(_cfg(config, "mode", "pose"))
        use_face = (
            mode is not None
            and mode.face_discriminator
            and bool(_cfg(config, "use_face_discriminator", True))
        )
        self.face_net = PatchDiscriminator(6, ch_base, spectral=spectral) if use_face else None
        use_temporal = bool(_cfg(config, "use_temporal_discriminator", False))
        self.temporal_net = (
            MultiScalePatchDiscriminator(3 * self.temporal_frames, ch_base, num_scales, spectral)
            if use_temporal
            else None
        )

    @property
    def has_face(self) -> bool:
        return self.face_net is not None

    @property
    def has_temporal(self) -> bool:
        return self.temporal_net is not None

    def forward(self, kind: str, *args: torch.Tensor) -> Any:
        """Dispatch to `image_d` / `face_d` / `temporal_d` by name (`"image"`, `"face"`, `"temporal"`)."""
        if kind == "image":
            return self.image_d(*args)
        if kind == "face":
            return self.face_d(*args)
        if kind == "temporal":
            return self.temporal_d(*args)
        raise ValueError(f"unknown discriminator kind {kind!r}; expected image, face or temporal")

    def image_d(
        self, label: torch.Tensor, image: torch.Tensor, ref_label: torch.Tensor, ref_image: torch.Tensor
    ) -> MultiScaleFeatures:
        """Conditional image D.

        Args:
            label: `(B, C, H, W)` label map of the frame; image: `(B, 3, H, W)` real or generated frame.
            ref_label, ref_image: the reference the generator used (`(B, C, H, W)`, `(B, 3, H, W)`).

        Returns:
            per scale, the activations with logits `(B, 1, h_s, w_s)` last.
        """
        return self.image_net(torch.cat([label, image, ref_label, ref_image], dim=1))

    def face_d(
        self,
        image: torch.Tensor,
        boxes: torch.Tensor,
        ref_image: torch.Tensor,
        ref_boxes: torch.Tensor,
    ) -> tuple[MultiScaleFeatures, torch.Tensor]:
        """Face D (pose mode): judges the face crop of `image`, conditioned on the reference's face crop.

        Args:
            image: `(B, 3, H, W)`; boxes: `(B, 4)` face boxes x0, y0, x1, y1 in pixels of `image`, -1 = none.
            ref_image: `(B, 3, H, W)`; ref_boxes: `(B, 4)` face boxes of the reference, -1 = none.

        Returns:
            `(features, valid)`: features as `image_d` (one scale), valid `(B,)` bool = the frame has a
            face. Pass `valid` to the losses so samples without a face do not count. A reference without a
            face gives an all-zero condition (the frame's face is still judged).
        """
        if self.face_net is None:
            raise RuntimeError("this model has no face discriminator (pose mode with use_face_discriminator)")
        size = self.face_crop_size
        crops, valid = crop_boxes(image, boxes, size)  # (B, 3, S, S)
        ref_crops, _ = crop_boxes(ref_image, ref_boxes, size)
        return [self.face_net(torch.cat([crops, ref_crops], dim=1))], valid

    def temporal_d(self, frames: torch.Tensor) -> MultiScaleFeatures:
        """Temporal D on `temporal_frames` consecutive frames, `(B, T, 3, H, W)` or `(B, T*3, H, W)`."""
        if self.temporal_net is None:
            raise RuntimeError("this model has no temporal discriminator (use_temporal_discriminator)")
        if frames.dim() == 5:
            frames = frames.flatten(1, 2)
        expected = 3 * self.temporal_frames
        if frames.shape[1] != expected:
            raise ValueError(
                f"temporal D expects {self.temporal_frames} frames ({expected} channels), "
                f"got {frames.shape[1]} channels"
            )
        return self.temporal_net(frames)
