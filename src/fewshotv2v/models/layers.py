"""Building blocks of the generator (SPEC §2): conv blocks, SPADE, pre-activation SPADE ResBlocks and
convolutions whose weights are generated per sample (the few-shot part of the paper, E_P -> theta_H)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

LRELU_SLOPE = 0.2


def maybe_sn(module: nn.Module, enabled: bool) -> nn.Module:
    """Spectral norm (parametrization API, so state-dict keys are `parametrizations.weight.*`)."""
    if enabled:
        return nn.utils.parametrizations.spectral_norm(module)
    return module


def lrelu(x: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(x, LRELU_SLOPE)


class ConvBlock(nn.Module):
    """conv3x3 (optionally stride 2) + optional instance norm + LeakyReLU(0.2)."""

    def __init__(self, cin: int, cout: int, *, stride: int = 1, norm: bool = True, sn: bool = False):
        super().__init__()
        self.conv = maybe_sn(nn.Conv2d(cin, cout, 3, stride=stride, padding=1), sn)
        self.norm = nn.InstanceNorm2d(cout, affine=False) if norm else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        if self.norm is not None:
            x = self.norm(x)
        return lrelu(x)


def upsample2(x: torch.Tensor) -> torch.Tensor:
    """Nearest-neighbour x2 upsampling."""
    return F.interpolate(x, scale_factor=2.0, mode="nearest")


def batched_conv2d(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None, *, padding: int = 0
) -> torch.Tensor:
    """A convolution with a different (generated) weight per sample, as one grouped conv.

    x (B, Cin, H, W), weight (B, Cout, Cin, k, k), bias (B, Cout) -> (B, Cout, H, W). The batch is folded
    into channels, (1, B*Cin, H, W), with groups=B: no Python loop over samples.
    """
    b, cin, h, w = x.shape
    cout = weight.shape[1]
    out = F.conv2d(
        x.reshape(1, b * cin, h, w),
        weight.reshape(b * cout, cin, *weight.shape[-2:]),
        None if bias is None else bias.reshape(b * cout),
        padding=padding,
        groups=b,
    )
    return out.reshape(b, cout, out.shape[-2], out.shape[-1])


class SPADE(nn.Module):
    """Spatially-adaptive normalisation: param-free instance norm, then for each conditioning map m
    (nearest-resized to x): ``out = out * (1 + gamma(m)) + beta(m)``, maps applied in sequence.

    gamma and beta are 1x1 convs (one conv with 2 * norm_nc outputs). When `generated_first` is set, the
    first map (the label map) uses per-sample weights given to `forward` (produced by E_P); a missing
    map (None, e.g. no previous frame yet) is skipped.
    """

    def __init__(self, norm_nc: int, cond_ncs: list[int], *, generated_first: bool = False):
        super().__init__()
        self.norm_nc = norm_nc
        self.cond_ncs = list(cond_ncs)
        self.generated_first = generated_first
        self.norm = nn.InstanceNorm2d(norm_nc, affine=False)
        start = 1 if generated_first else 0
        self.mods = nn.ModuleList(nn.Conv2d(c, 2 * norm_nc, 1) for c in self.cond_ncs[start:])

    def forward(
        self,
        x: torch.Tensor,
        maps: list[torch.Tensor | None],
        generated: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        out = self.norm(x)
        for j, m in enumerate(maps):
            if m is None:
                continue
            if m.shape[-2:] != x.shape[-2:]:
                m = F.interpolate(m, size=x.shape[-2:], mode="nearest")
            if self.generated_first and j == 0:
                weight, bias = generated  # (B, 2*norm_nc, Cin, 1, 1), (B, 2*norm_nc)
                gb = batched_conv2d(m, weight, bias)
            else:
                gb = self.mods[j - int(self.generated_first)](m)
            gamma, beta = gb.chunk(2, dim=1)
            out = out * (1 + gamma) + beta
        return out


class SPADEResBlock(nn.Module):
    """Pre-activation SPADE ResBlock of H: conv3x3(lrelu(SPADE_0(x))) -> conv3x3(lrelu(SPADE_1(.))),
    plus a 1x1 shortcut conv after SPADE_s when fin != fout. Spectral norm on the convs."""

    def __init__(self, fin: int, fout: int, cond_ncs: list[int], *, generated: bool, sn: bool):
        super().__init__()
        self.learned_shortcut = fin != fout
        hidden = fout
        self.spade_0 = SPADE(fin, cond_ncs, generated_first=generated)
        self.conv_0 = maybe_sn(nn.Conv2d(fin, hidden, 3, padding=1), sn)
        self.spade_1 = SPADE(hidden, cond_ncs, generated_first=generated)
        self.conv_1 = maybe_sn(nn.Conv2d(hidden, fout, 3, padding=1), sn)
        if self.learned_shortcut:
            self.spade_s = SPADE(fin, cond_ncs, generated_first=generated)
            self.conv_s = maybe_sn(nn.Conv2d(fin, fout, 1, bias=False), sn)

    def generated_shapes(self, cin: int) -> dict[str, tuple[int, int]]:
        """(Cout, Cin) of the generated 1x1 gamma/beta convs, keyed by SPADE name."""
        shapes = {"spade_0": (2 * self.spade_0.norm_nc, cin), "spade_1": (2 * self.spade_1.norm_nc, cin)}
        if self.learned_shortcut:
            shapes["spade_s"] = (2 * self.spade_s.norm_nc, cin)
        return shapes

    def forward(self, x: torch.Tensor, maps: list[torch.Tensor | None], generated: dict | None = None):
        g = generated or {}
        dx = self.conv_0(lrelu(self.spade_0(x, maps, g.get("spade_0"))))
        dx = self.conv_1(lrelu(self.spade_1(dx, maps, g.get("spade_1"))))
        xs = self.conv_s(self.spade_s(x, maps, g.get("spade_s"))) if self.learned_shortcut else x
        return xs + dx


class ResBlock(nn.Module):
    """Plain residual block (conv3x3-lrelu-conv3x3 + identity) used inside W."""

    def __init__(self, ch: int, *, sn: bool):
        super().__init__()
        self.conv_0 = maybe_sn(nn.Conv2d(ch, ch, 3, padding=1), sn)
        self.conv_1 = maybe_sn(nn.Conv2d(ch, ch, 3, padding=1), sn)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_1(lrelu(self.conv_0(lrelu(x))))
