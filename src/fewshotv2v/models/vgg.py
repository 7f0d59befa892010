"""Frozen VGG19 feature extractor for the perceptual loss (SPEC §3).

The module layout copies torchvision's ``vgg19().features`` index for index, so the parameter names are
``features.0.weight``, ``features.0.bias``, ``features.2.weight``, ... exactly as in torchvision and timm.
Only the layers up to relu5_1 (index 29) are built: the perceptual loss reads relu1_1, relu2_1, relu3_1,
relu4_1 and relu5_1.

Weights: torch does not ship ImageNet VGG19 weights. The registry entry ``vgg19`` of `fewshotv2v.hub`
downloads ``model.safetensors`` of the Hub repository ``timm/vgg19.tv_in1k`` (torchvision's VGG19 stored by
timm); training calls ``fewshotv2v.hub.download("vgg19")`` for the local path and `load_vgg19_weights` reads
it. The file also holds ``pre_logits.*`` / ``head.*`` classifier keys, which are ignored.
"""

from __future__ import annotations

import os
import re

import torch
from torch import nn

from fewshotv2v.errors import CheckpointError

# torchvision's configuration "E" (VGG19): conv widths, "M" = 2x2 max-pool.
_VGG19_CFG: tuple[int | str, ...] = (
    64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M",
)  # fmt: skip
# Index in `features` of each ReLU the perceptual loss reads.
LAYERS: dict[str, int] = {"relu1_1": 1, "relu2_1": 6, "relu3_1": 11, "relu4_1": 20, "relu5_1": 29}
# Conv indices of the full torchvision features that come after relu5_1 (present in the file, unused).
_UNUSED_TAIL = {30, 32, 34}

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _build_features(last_index: int) -> nn.Sequential:
    """torchvision's VGG19 `features` up to and including module `last_index`."""
    layers: list[nn.Module] = []
    in_ch = 3
    for item in _VGG19_CFG:
        if item == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            layers += [nn.Conv2d(in_ch, int(item), kernel_size=3, padding=1), nn.ReLU(inplace=False)]
            in_ch = int(item)
        if len(layers) > last_index:
            break
    return nn.Sequential(*layers[: last_index + 1])


class VGG19(nn.Module):
    """Frozen VGG19 (ImageNet) returning relu1_1 .. relu5_1 activations.

    Input: images `(B, 3, H, W)` in [-1, 1] (the project's convention); ImageNet normalisation happens
    inside. Output: dict name -> `(B, C_l, H / 2^l, W / 2^l)` for the names in `LAYERS`, in order.

    The module is always frozen: parameters have `requires_grad=False` and it stays in eval mode even when
    a parent calls `.train()`; gradients still flow to the input (needed for the generator's loss).
    A freshly built VGG19 has random weights: call `load_vgg19_weights` (or `VGG19.from_file`).
    """

    def __init__(self) -> None:
        super().__init__()
        self.features = _build_features(max(LAYERS.values()))
        # Not persistent: the state dict holds exactly the torchvision keys.
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> VGG19:
        """A VGG19 with the weights of a safetensors file (see `load_vgg19_weights`)."""
        model = cls()
        load_vgg19_weights(model, path)
        return model

    def train(self, mode: bool = True) -> VGG19:
        # Frozen feature extractor: ignore train() so parents' .train() never changes it (no dropout/BN
        # here, but this keeps the promise explicit and future-proof).
        return super().train(False)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        if min(x.shape[-2:]) < 16:  # four 2x2 max-pools before relu5_1
            raise ValueError(f"VGG19 features need images of at least 16 x 16 pixels, got {tuple(x.shape)}")
        x = ((x + 1.0) * 0.5 - self.mean.to(x.dtype)) / self.std.to(x.dtype)  # [-1, 1] -> ImageNet stats
        wanted = {index: name for name, index in LAYERS.items()}
        out: dict[str, torch.Tensor] = {}
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index in wanted:
                out[wanted[index]] = x
        return out


def load_vgg19_weights(module: VGG19, path: str | os.PathLike[str]) -> VGG19:
    """Load torchvision/timm VGG19 weights from a safetensors file into `module`, strictly.

    Keeps the ``features.*`` keys (classifier keys such as ``pre_logits.*`` / ``head.*`` / ``classifier.*``
    are ignored), requires every parameter of `module` with its exact shape, allows only the known unused
    tail convs (5_2 .. 5_4) as extra ``features`` keys, and converts dtypes to the module's.

    Raises:
        CheckpointError: the file is missing, unreadable, or not a VGG19 (names missing / unexpected keys or
            the first shape mismatch).
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"VGG19 weights file not found: {path}")
    try:
        tensors = load_file(path, device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"cannot read VGG19 weights {path}: {exc}") from None

    own = module.state_dict()
    feats = {k: v for k, v in tensors.items() if k.startswith("features.")}
    missing = sorted(set(own) - set(feats), key=_key_order)
    unexpected = sorted(
        (k for k in set(feats) - set(own) if _feature_index(k) not in _UNUSED_TAIL), key=_key_order
    )
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing keys {_short(missing)}")
        if unexpected:
            parts.append(f"unexpected keys {_short(unexpected)}")
        raise CheckpointError(f"{path} is not a VGG19 weights file: {'; '.join(parts)}")
    for key, value in own.items():
        if feats[key].shape != value.shape:
            raise CheckpointError(
                f"{path} is not a VGG19 weights file: {key} has shape {tuple(feats[key].shape)}, "
                f"expected {tuple(value.shape)}"
            )
    state = {key: feats[key].to(dtype=value.dtype) for key, value in own.items()}
    module.load_state_dict(state, strict=True)
    return module


def _feature_index(key: str) -> int:
    match = re.match(r"features\.(\d+)\.", key)
    return int(match.group(1)) if match else -1


def _key_order(key: str) -> tuple[int, str]:
    return (_feature_index(key), key)


def _short(keys: list[str], limit: int = 6) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f" (+{len(keys) - limit} more)" if len(keys) > limit else "")
