"""Loading model folders into networks (SPEC §1-2): `load_pretrained` builds the network of a folder's
`config.json` (`build_model`) and loads its weights strictly.

The folder files themselves (saving, config, checksums, strict weight loading) are
`fewshotv2v.models.weights`, re-exported here. Dependencies go one way:
io -> generator / keypoint_warp / discriminators -> weights.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from fewshotv2v.config import ModelConfig
from fewshotv2v.models.weights import (
    CHECKSUMS_FORMAT,
    CHECKSUMS_NAME,
    CONFIG_NAME,
    D_WEIGHTS_NAME,
    WEIGHTS_NAME,
    has_weights,
    load_weights,
    module_device,
    read_config,
    read_metadata,
    save_pretrained,
    verify_checksum,
    write_checksums,
)

__all__ = [
    "CHECKSUMS_FORMAT",
    "CHECKSUMS_NAME",
    "CONFIG_NAME",
    "D_WEIGHTS_NAME",
    "WEIGHTS_NAME",
    "build_model",
    "has_weights",
    "load_pretrained",
    "load_weights",
    "module_device",
    "read_config",
    "read_metadata",
    "save_pretrained",
    "verify_checksum",
    "write_checksums",
]


def build_model(config: ModelConfig) -> nn.Module:
    """The network of a config: `Generator`, or `KeypointWarp` for the no-weights baseline."""
    if config.architecture == "keypoint-warp":
        from fewshotv2v.models.keypoint_warp import KeypointWarp

        return KeypointWarp(config)
    from fewshotv2v.models.generator import Generator

    return Generator(config)


def load_pretrained(
    directory: str | Path,
    *,
    device: Any = None,
    dtype: torch.dtype | None = None,
    with_discriminators: bool = False,
) -> tuple[nn.Module, nn.Module | None]:
    """Load (Generator, Discriminators | None) from a model folder, in eval mode.

    Raises `CheckpointError` when the folder, `config.json` or a weights file is missing or does not
    match (naming missing / unexpected keys).
    """
    directory = Path(directory)
    config = read_config(directory)
    generator = build_model(config)
    if has_weights(config):
        load_weights(generator, directory / WEIGHTS_NAME)
    discriminators = None
    if with_discriminators:
        from fewshotv2v.models.discriminators import Discriminators

        discriminators = Discriminators(config)
        load_weights(discriminators, directory / D_WEIGHTS_NAME)
    modules = [m for m in (generator, discriminators) if m is not None]
    for m in modules:
        m.eval()
        if device is not None or dtype is not None:
            m.to(device=device, dtype=dtype)
    return generator, discriminators
