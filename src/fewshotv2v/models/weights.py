"""Model folder files (no network is built here; `fewshotv2v.models.io` builds and loads them):
`config.json` + `model.safetensors` (+ optional `discriminator.safetensors`) +
`checksums.json` (the sha256 of each weights file, checked at load: a bit-flipped file is refused; folders
written before it existed load without the check).

The safetensors metadata carries short provenance strings (fewshotv2v version, arch = preset name, mode,
step, ema). Saving writes into a temporary folder first and moves the files into place with `os.replace`,
so a crash never leaves a half-written model. Un-compiled key names are saved (`torch.compile`'s
`_orig_mod.` prefix is stripped). Loading checks keys strictly and names what does not match.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from fewshotv2v._files import give_default_mode
from fewshotv2v.config import ModelConfig
from fewshotv2v.errors import CheckpointError, ConfigError

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
D_WEIGHTS_NAME = "discriminator.safetensors"
CHECKSUMS_NAME = "checksums.json"
CHECKSUMS_FORMAT = "fewshotv2v-checksums"
_COMPILE_PREFIX = "_orig_mod."


def save_safetensors(state: dict[str, torch.Tensor], path: str | Path, metadata: dict[str, str]) -> None:
    """`safetensors.torch.save_file`, then the mode any new file gets: safetensors creates its files 0600,
    which would leave a model folder (or a packaged asset) readable only by whoever wrote it."""
    from safetensors.torch import save_file

    save_file(state, str(path), metadata=metadata)
    give_default_mode(path)


def write_checksums(directory: str | Path) -> Path:
    """Write `checksums.json`: the sha256 of every `*.safetensors` file in `directory`."""
    from fewshotv2v.hub import sha256_file

    directory = Path(directory)
    sums = {p.name: sha256_file(p) for p in sorted(directory.glob("*.safetensors"))}
    path = directory / CHECKSUMS_NAME
    path.write_text(json.dumps({"format": CHECKSUMS_FORMAT, "sha256": sums}, indent=1) + "\n")
    return path


def verify_checksum(path: Path) -> None:
    """Compare a weights file with the sha256 recorded beside it (nothing to do when none is)."""
    from fewshotv2v.hub import sha256_file

    record = path.parent / CHECKSUMS_NAME
    if not record.is_file():
        return
    try:
        expected = json.loads(record.read_text(encoding="utf-8"))["sha256"].get(path.name)
    except (OSError, ValueError, KeyError, AttributeError, TypeError):
        raise CheckpointError(f"cannot read {record}") from None
    if expected is not None and sha256_file(path) != expected:
        raise CheckpointError(
            f"{path} is corrupt: its sha256 differs from the one recorded when it was saved ({record.name}); "
            "copy or download it again"
        )


def _plain_state_dict(module: nn.Module) -> dict[str, torch.Tensor]:
    """State dict of the un-compiled module, detached, contiguous, on CPU, without `_orig_mod.`."""
    module = getattr(module, "_orig_mod", module)
    out = {}
    for key, value in module.state_dict().items():
        out[key.replace(_COMPILE_PREFIX, "")] = value.detach().to("cpu").contiguous().clone()
    return out


def _metadata(config: ModelConfig, metadata: dict[str, Any] | None, component: str) -> dict[str, str]:
    from fewshotv2v import __version__

    meta = {"format": "pt", "fewshotv2v_version": __version__, "arch": config.name, "mode": config.mode}
    meta["component"] = component
    for key, value in (metadata or {}).items():
        if value is not None:
            meta[str(key)] = str(value)
    return meta


def save_pretrained(
    directory: str | Path,
    generator: nn.Module,
    *,
    discriminators: nn.Module | None = None,
    metadata: dict[str, Any] | None = None,
) -> Path:
    """Write `generator` (and optionally `discriminators`) as a model folder; returns the folder.

    `metadata` adds provenance strings (e.g. {"step": 1000, "ema": True}). Files already in the folder
    are replaced one by one with `os.replace`; a new folder appears at once.
    """
    directory = Path(directory)
    config: ModelConfig = getattr(generator, "_orig_mod", generator).config
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.tmp-", dir=directory.parent))
    give_default_mode(tmp, folder=True)  # mkdtemp makes 0700 folders; this one becomes the model's
    try:
        (tmp / CONFIG_NAME).write_text(json.dumps(config.to_dict(), indent=2) + "\n", encoding="utf-8")
        if has_weights(config):
            state = _plain_state_dict(generator)
            save_safetensors(state, tmp / WEIGHTS_NAME, _metadata(config, metadata, "G"))
        if discriminators is not None:
            save_safetensors(
                _plain_state_dict(discriminators), tmp / D_WEIGHTS_NAME, _metadata(config, metadata, "D")
            )
        write_checksums(tmp)
        if not directory.exists():
            os.replace(tmp, directory)
        else:
            # weights first, config last: a reader never sees a new config with old weights
            order = (WEIGHTS_NAME, D_WEIGHTS_NAME, CHECKSUMS_NAME, CONFIG_NAME)
            names = [n for n in order if (tmp / n).exists()]
            for name in names:
                os.replace(tmp / name, directory / name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return directory


def read_config(directory: str | Path) -> ModelConfig:
    """The `ModelConfig` of a model folder (CheckpointError if missing or invalid)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise CheckpointError(f"model folder not found: {directory}")
    path = directory / CONFIG_NAME
    if not path.is_file():
        raise CheckpointError(f"{directory} is not a model folder: {CONFIG_NAME} is missing")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"cannot read {path}: {exc}") from None
    try:
        return ModelConfig.from_dict(data)
    except ConfigError as exc:
        raise CheckpointError(f"invalid {path}: {exc}") from None


def read_metadata(directory: str | Path, filename: str = WEIGHTS_NAME) -> dict[str, str]:
    """The provenance strings stored in a weights file of a model folder."""
    from safetensors import safe_open

    path = Path(directory) / filename
    if not path.is_file():
        raise CheckpointError(f"weights file not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {})
    except Exception as exc:  # safetensors raises its own error types for corrupt headers
        raise CheckpointError(f"cannot read {path}: {exc}") from None


def load_weights(module: nn.Module, path: Path) -> None:
    """Load a safetensors file into `module` with strict key and shape checking."""
    from safetensors.torch import load_file

    if not path.is_file():
        raise CheckpointError(f"weights file not found: {path}")
    verify_checksum(path)
    try:
        state = load_file(str(path), device="cpu")
    except Exception as exc:
        raise CheckpointError(f"cannot read {path}: {exc}") from None
    state = {k.replace(_COMPILE_PREFIX, ""): v for k, v in state.items()}
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        parts = [
            f"{len(keys)} {kind} key(s) ({', '.join(keys[:3])}{', ...' if len(keys) > 3 else ''})"
            for kind, keys in (("missing", missing), ("unexpected", unexpected))
            if keys
        ]
        raise CheckpointError(f"{path} does not match the model config: {'; '.join(parts)}")
    for key, value in state.items():
        if value.shape != expected[key].shape:
            raise CheckpointError(
                f"{path}: shape of {key} is {tuple(value.shape)}, "
                f"the config expects {tuple(expected[key].shape)}"
            )
    module.load_state_dict(state, strict=True)


def module_device(module: nn.Module) -> torch.device:
    """The device of a module's first parameter or buffer (CPU when it has neither)."""
    for tensor in (*module.parameters(), *module.buffers()):
        return tensor.device
    return torch.device("cpu")


def has_weights(config: ModelConfig) -> bool:
    """False for architectures with no weights (keypoint-warp: its folder is `config.json` alone)."""
    return config.architecture != "keypoint-warp"
