"""E_F (reference encoder) and E_A (reference attention) of the few-shot generator (SPEC §2).

E_F has two parallel branches, one on the reference image and one on its label map. Each is a conv block
to ch[0], then `num_levels` stride-2 conv blocks down to the bottleneck; at bottleneck resolution
stride-1 conv blocks reduce ch[L] -> ch[L-1] -> ... -> ch[0], giving per-level features F_img^l and F_lab^l
(ch[l] channels). Label-conditioned pooling turns them into one ch[l] x ch[l] matrix per sample:
``q_l = F_img^l @ softmax_channels(F_lab^l)^T * c / N`` (N = bottleneck pixels, c = ch[l]). The factor c / N
is ours: it makes q independent of the resolution (the "average pool" of the paper) and keeps its entries
at the scale of the instance-normed features, so E_P's generated weights start at a sensible size.

With K > 1 references, E_A runs inside E_F at `attention_level`: keys from each reference label map,
queries from the target label map, one softmax over all K * N_a key positions, and the reference features
(image and label branch together) are averaged with those weights. The encoder then continues to the
bottleneck, so with K > 1 everything after the attention depends on the target frame.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fewshotv2v.config import ModelConfig
from fewshotv2v.models.layers import ConvBlock


class _Branch(nn.Module):
    """One E_F branch: `stem` runs up to the attention level, `tail` from there to the bottleneck,
    `reduce` the stride-1 channel reductions at the bottleneck."""

    def __init__(self, cin: int, config: ModelConfig):
        super().__init__()
        ch, a, n = config.ch, config.attention_level, config.num_levels
        self.stem = nn.Sequential(
            ConvBlock(cin, ch(0)), *[ConvBlock(ch(i), ch(i + 1), stride=2) for i in range(a)]
        )
        self.tail = nn.Sequential(*[ConvBlock(ch(i), ch(i + 1), stride=2) for i in range(a, n)])
        # reduce[j] maps ch[j+1] -> ch[j]; applied for j = L-1 .. 0
        self.reduce = nn.ModuleList(ConvBlock(ch(j + 1), ch(j)) for j in range(n))

    def reductions(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Bottleneck (B, ch[L], h, w) -> [F^0 (B, ch[0], h, w), ..., F^{L-1}]."""
        feats: list[torch.Tensor] = [x] * len(self.reduce)
        for j in reversed(range(len(self.reduce))):
            x = self.reduce[j](x)
            feats[j] = x
        return feats


def label_conditioned_pool(f_img: torch.Tensor, f_lab: torch.Tensor) -> torch.Tensor:
    """(B, c, h, w) image and label features -> (B, c, c): F_img @ softmax_c(F_lab)^T * c / N."""
    b, c = f_img.shape[:2]
    s = torch.softmax(f_lab.flatten(2), dim=1)  # (B, c, N), softmax over channels
    return torch.bmm(f_img.flatten(2), s.transpose(1, 2)) * (c / s.shape[-1])  # (B, c, c)


class ReferenceEncoder(nn.Module):
    """E_F: reference image + label map -> bottleneck feature and pooled per-level matrices q_l."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.num_pooled = config.num_generated_levels
        self.img = _Branch(3, config)
        self.lab = _Branch(config.label_nc, config)

    def stem(self, image: torch.Tensor, label: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, 3, H, W), (N, C, H, W) -> features at the attention level (N, ch[a], H/2^a, W/2^a) x 2."""
        return self.img.stem(image), self.lab.stem(label)

    def finish(self, f_img: torch.Tensor, f_lab: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Attention-level features -> (bottleneck (B, ch[L], h, w), [q_0 .. q_{G-1}]), q_l (B, c_l, c_l)."""
        b_img = self.img.tail(f_img)
        b_lab = self.lab.tail(f_lab)
        r_img = self.img.reductions(b_img)
        r_lab = self.lab.reductions(b_lab)
        pooled = [label_conditioned_pool(r_img[i], r_lab[i]) for i in range(self.num_pooled)]
        return b_img, pooled


class _KeyEncoder(nn.Sequential):
    """conv(in -> ch[0]) + `a` stride-2 conv blocks -> ch[a] channels at the attention level."""

    def __init__(self, cin: int, config: ModelConfig):
        ch, a = config.ch, config.attention_level
        super().__init__(ConvBlock(cin, ch(0)), *[ConvBlock(ch(i), ch(i + 1), stride=2) for i in range(a)])


class ReferenceAttention(nn.Module):
    """E_A: attention over K references at the attention level (used only when K > 1)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.key = _KeyEncoder(config.label_nc, config)
        self.query = _KeyEncoder(config.label_nc, config)

    def keys(self, ref_labels: torch.Tensor, k: int) -> torch.Tensor:
        """(B*K, C, H, W) reference label maps -> keys (B, 1, K*N_a, d)."""
        key = self.key(ref_labels)  # (B*K, d, h, w)
        bk, d = key.shape[:2]
        return key.flatten(2).transpose(1, 2).reshape(bk // k, 1, -1, d)

    def forward(
        self, label: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, k: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Merge K references' features for one target frame.

        label (B, C, H, W); keys (B, 1, K*N, d); values (B, K, Cv, h, w) -> merged (B, Cv, h, w) and the
        attention mass per reference (B, K) (sums to 1). Energy = key . query (scale 1), softmax over all
        K*N keys. The mass comes out of the same call by appending a one-hot "which reference" channel group
        to the values.

        The memory-efficient SDPA kernels (flash on CPU and CUDA) need values as wide as queries and keys
        (d); with wider values SDPA falls back to the math kernel, which materialises the (N x K*N)
        matrix: 1 GiB per sample in fp32 at 512 x 256, K = 4. So [values | one-hot | zero pad] is split
        into ceil((Cv + K) / d) heads of width d that share the query and key (expanded, not copied).
        """
        b, _, cv, h, w = values.shape
        d = keys.shape[-1]
        # (B, 1, N, d), contiguous: fused kernels need stride 1 in the last dimension
        query = self.query(label).flatten(2).transpose(1, 2).contiguous().unsqueeze(1)
        v = values.permute(0, 1, 3, 4, 2).reshape(b, k * h * w, cv)  # (B, K*N, Cv)
        heads = -(-(cv + k) // d)
        onehot = torch.eye(k, heads * d - cv, device=v.device, dtype=v.dtype)  # one-hot + zero pad
        onehot = onehot.repeat_interleave(h * w, dim=0).expand(b, -1, -1)  # (B, K*N, heads*d - Cv)
        v = torch.cat([v, onehot], dim=-1).unflatten(-1, (heads, d)).transpose(1, 2)  # (B, heads, K*N, d)
        out = F.scaled_dot_product_attention(
            query.expand(b, heads, -1, -1), keys.expand(b, heads, -1, -1), v, scale=1.0
        )  # (B, heads, N, d)
        out = out.transpose(1, 2).flatten(2)  # (B, N, heads*d)
        merged = out[..., :cv].transpose(1, 2).reshape(b, cv, h, w)
        mass = out[..., cv : cv + k].mean(dim=1)  # (B, K)
        return merged, mass
