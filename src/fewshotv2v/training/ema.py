"""Exponential moving average of the generator weights (SPEC §4, beta 0.999).

The EMA copy is an ordinary module (not an `AveragedModel` wrapper), so its own `state_dict()` has exactly
the generator's keys and is what checkpoints save as `model.safetensors`.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    """`shadow = beta_n * shadow + (1 - beta_n) * param` after every G step; buffers (spectral-norm `u`
    vectors, norm statistics) are copied as they are.

    Warm-up: `beta_n = min(beta, (1 + n) / (10 + n))` after n updates (as TensorFlow's
    ExponentialMovingAverage with `num_updates`), so that the average is not dominated by the random
    initial weights early in training (with a constant 0.999, 37 % of it would still be the initial
    weights after 1000 updates). `num_updates` is saved in the training state.
    """

    def __init__(self, model: nn.Module, beta: float = 0.999, *, warmup: bool = True):
        self.beta = float(beta)
        self.warmup = warmup
        self.num_updates = 0
        self.module = copy.deepcopy(model).eval()
        self.module.requires_grad_(False)

    def current_beta(self) -> float:
        if not self.warmup:
            return self.beta
        n = self.num_updates
        return min(self.beta, (1.0 + n) / (10.0 + n))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        beta = self.current_beta()
        self.num_updates += 1
        shadow = dict(self.module.named_parameters())
        src_params, dst_params = [], []
        for name, param in model.named_parameters():
            dst = shadow[name]
            if dst.dtype.is_floating_point:
                src_params.append(param.detach())
                dst_params.append(dst)
            else:  # pragma: no cover - integer parameters do not occur in our models
                dst.copy_(param)
        if dst_params:
            # lerp(dst, src, w) = dst + w * (src - dst) = beta * dst + (1 - beta) * src
            torch._foreach_lerp_(dst_params, src_params, 1.0 - beta)
        shadow_buffers = dict(self.module.named_buffers())
        for name, buf in model.named_buffers():
            shadow_buffers[name].copy_(buf)

    @torch.no_grad()
    def copy_from(self, model: nn.Module) -> None:
        """Reset the average to the current weights (used when finetuning from a pretrained model)."""
        self.module.load_state_dict(model.state_dict())

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.module.state_dict()

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.module.load_state_dict(state)
