"""W: the flow + occlusion-mask network of the few-shot generator, and warping (SPEC §2).

Input concat(target label, source label, source image) -> conv3x3 to c, `flow_num_down` stride-2 convs
(doubling), `flow_num_res` ResBlocks, as many (nearest x2 + conv) back to c, then two heads: flow (2 ch, in
pixels, x flow_scale) and mask (1 ch, sigmoid; 1 = "do not trust the warp here"). The same network serves
the reference warp and the previous-frame warp; when both are needed they run as one batched pass.

With the keypoint flow prior (SPEC §7, `flow_prior="keypoints"`) W also sees the prior flow (normalised)
and the source warped by it, and its flow head predicts a residual on top of the prior: the head starts at
zero, so an untrained W returns the prior exactly; with `residual_flow=False` it has no flow head and
returns the prior as it is (then it only predicts the mask). With the warp composite the mask head starts at a
constant "trust the warp" (mask sigmoid(-2) = 0.12).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fewshotv2v.config import ModelConfig
from fewshotv2v.models.layers import ResBlock, lrelu, maybe_sn, upsample2

# Warp composite: the mask (1 - trust) starts at sigmoid(-2) = 0.12. H's residual starts at zero, so the
# output starts as the prior's warp whatever this is; it only sets how fast H's correction comes in.
MASK_INIT_LOGIT = -2.0


class FlowNetwork(nn.Module):
    """W(s_t, s_src, x_src) -> flow (B, 2, H, W) in pixels (x, y), occlusion mask (B, 1, H, W) in [0, 1]."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        sn = config.spectral_norm
        c = [config.flow_ch_base * 2**i for i in range(config.flow_num_down + 1)]
        self.scale = config.flow_scale
        self.uses_prior = config.flow_prior == "keypoints"
        self.prior_norm = max(config.height, config.width) / 4  # prior flow / this ~ [-1, 1]
        extra = 5 if self.uses_prior else 0  # prior flow (2) + source warped by it (3)
        self.conv_in = maybe_sn(nn.Conv2d(2 * config.label_nc + 3 + extra, c[0], 3, padding=1), sn)
        self.down = nn.ModuleList(
            maybe_sn(nn.Conv2d(c[i], c[i + 1], 3, stride=2, padding=1), sn) for i in range(len(c) - 1)
        )
        self.res = nn.Sequential(*[ResBlock(c[-1], sn=sn) for _ in range(config.flow_num_res)])
        # up[i] maps c[i+1] -> c[i]; applied for i = n-1 .. 0
        self.up = nn.ModuleList(
            maybe_sn(nn.Conv2d(c[i + 1], c[i], 3, padding=1), sn) for i in range(len(c) - 1)
        )
        # residual_flow=False (prior only): no flow head, W's flow is the prior as it is
        self.flow_head = nn.Conv2d(c[0], 2, 3, padding=1) if config.residual_flow else None
        self.mask_head = nn.Conv2d(c[0], 1, 3, padding=1)
        if self.uses_prior and self.flow_head is not None:  # residual flow: zero at the start
            nn.init.zeros_(self.flow_head.weight)
            nn.init.zeros_(self.flow_head.bias)
        if config.composite == "warp":  # composite mask: start by trusting the warp everywhere (88 %)
            nn.init.zeros_(self.mask_head.weight)
            nn.init.constant_(self.mask_head.bias, MASK_INIT_LOGIT)

    def forward(
        self,
        label: torch.Tensor,
        src_label: torch.Tensor,
        src_image: torch.Tensor,
        prior: torch.Tensor | None = None,
        prior_image: torch.Tensor | None = None,
    ):
        """(B, C, H, W) labels, (B, 3, H, W) source; with the prior also `prior (B, 2, H, W)` pixels and
        `prior_image` = the source warped by it. Returns flow (B, 2, H, W) (prior + residual), mask."""
        inputs = [label, src_label, src_image]
        if self.uses_prior:
            if prior is None or prior_image is None:
                raise ValueError("this W takes the keypoint flow prior (prior=, prior_image=)")
            inputs += [prior.to(src_image.dtype) / self.prior_norm, prior_image]
        x = lrelu(self.conv_in(torch.cat(inputs, dim=1)))  # (B, c0, H, W)
        for conv in self.down:
            x = lrelu(conv(x))
        x = self.res(x)  # (B, c_n, H/2^n, W/2^n)
        for conv in reversed(self.up):
            x = lrelu(conv(upsample2(x)))
        mask = torch.sigmoid(self.mask_head(x))
        if self.flow_head is None:
            return prior, mask  # fp32 as the prior made it (the warp grid is fp32)
        flow = self.flow_head(x) * self.scale
        if self.uses_prior:
            flow = flow + prior.to(flow.dtype)
        return flow, mask


def warp(image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Backward-warp image (B, C, H, W) by flow (B, 2, H, W) in pixels: out(p) = image(p + flow(p)).

    Bilinear `grid_sample`, border padding, align_corners=True (pixel centres at -1 and 1). The grid and
    the sampling are always fp32: under bf16 autocast a bf16 grid (8-bit mantissa) is off by up to a
    pixel at x ~ 500. The result has the image's dtype.
    """
    b, _, h, w = flow.shape
    flow = flow.float()
    ys = torch.arange(h, device=flow.device, dtype=torch.float32)
    xs = torch.arange(w, device=flow.device, dtype=torch.float32)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    x = (gx + flow[:, 0]) * (2.0 / max(w - 1, 1)) - 1.0
    y = (gy + flow[:, 1]) * (2.0 / max(h - 1, 1)) - 1.0
    grid = torch.stack([x, y], dim=-1)  # (B, H, W, 2) fp32
    with torch.autocast(device_type=image.device.type, enabled=False):
        out = F.grid_sample(image.float(), grid, mode="bilinear", padding_mode="border", align_corners=True)
    return out.to(image.dtype)
