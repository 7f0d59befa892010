"""E_P: the weight-generation MLPs of the few-shot generator (SPEC §2).

For every generated layer at level l, an MLP of three spectral-normed linears (c -> c -> c -> r, LReLU
between) runs row-wise over the c rows of the pooled reference matrix q_l (B, c, c), c = ch[l]. The c
outputs of r numbers are concatenated (c * r >= n) and the first n become the layer's weight and bias.

Generated layers per level l < num_generated_levels (the four finest blocks up_0..up_3 of H):
  - `spade_0`, `spade_1`, `spade_s`: the label-map gamma/beta 1x1 convs of block up_l (weight + bias),
  - `embed`: the label-embedder decoder conv at level l (3x3, ch[l+1] -> ch[l], weight + bias).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from fewshotv2v.models.layers import lrelu, maybe_sn

# shapes: {level: {layer name: (Cout, Cin, k)}}
GeneratedShapes = dict[int, dict[str, tuple[int, int, int]]]
# weights: {level: {layer name: (weight (B, Cout, Cin, k, k), bias (B, Cout))}}
GeneratedWeights = dict[int, dict[str, tuple[torch.Tensor, torch.Tensor]]]


class _RowMLP(nn.Module):
    """Three spectral-normed linears applied to each row of q: (B, c, c) -> (B, c * r)."""

    def __init__(self, c: int, n_out: int, *, sn: bool):
        super().__init__()
        self.n_out = n_out
        r = math.ceil(n_out / c)
        self.fc_0 = maybe_sn(nn.Linear(c, c), sn)
        self.fc_1 = maybe_sn(nn.Linear(c, c), sn)
        self.fc_2 = maybe_sn(nn.Linear(c, r), sn)

    def forward(self, q: torch.Tensor) -> torch.Tensor:
        x = self.fc_2(lrelu(self.fc_1(lrelu(self.fc_0(q)))))  # (B, c, r)
        return x.flatten(1)[:, : self.n_out]


class WeightGenerator(nn.Module):
    """E_P: pooled reference matrices [q_l] -> per-sample weights of the generated layers."""

    def __init__(self, shapes: GeneratedShapes, level_channels: dict[int, int], *, sn: bool):
        super().__init__()
        self.shapes = shapes
        self.mlps = nn.ModuleDict()
        for level, layers in shapes.items():
            for name, (cout, cin, k) in layers.items():
                n = cout * cin * k * k + cout
                self.mlps[f"{level}_{name}"] = _RowMLP(level_channels[level], n, sn=sn)

    def forward(self, pooled: list[torch.Tensor]) -> GeneratedWeights:
        """pooled[l]: (B, c_l, c_l) -> {level: {name: (weight (B, Cout, Cin, k, k), bias (B, Cout))}}."""
        out: GeneratedWeights = {}
        for level, layers in self.shapes.items():
            q = pooled[level]
            b = q.shape[0]
            out[level] = {}
            for name, (cout, cin, k) in layers.items():
                flat = self.mlps[f"{level}_{name}"](q)  # (B, n)
                n_w = cout * cin * k * k
                weight = flat[:, :n_w].reshape(b, cout, cin, k, k)
                out[level][name] = (weight, flat[:, n_w:])
        return out
