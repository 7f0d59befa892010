"""Runtime settings (never the architecture: that is `ModelConfig`, stored beside the weights).

Precedence, highest first: CLI options > environment (`FSV2V_*`, nested with `__`) > TOML file > defaults.
The TOML file is `$FSV2V_CONFIG`, else `~/.config/fewshotv2v/config.toml` if it exists; a file named
explicitly (`--config`/`FSV2V_CONFIG`) must exist.

The Hub defaults follow Hugging Face's own variables, read when the settings are built (huggingface_hub
reads them once, at import): `HF_ENDPOINT`, `HF_HUB_OFFLINE`, `HF_TOKEN`, and the standard cache
(`HF_HUB_CACHE`, else `$HF_HOME/hub`, else `~/.cache/huggingface/hub`), so files other tools fetched are
reused. `FSV2V_HUB__*` (and the TOML file) override them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from fewshotv2v.errors import ConfigError

DEFAULT_CONFIG_FILE = Path("~/.config/fewshotv2v/config.toml")
DEFAULT_HUB_ENDPOINT = "https://huggingface.co"


def _default_cache_dir() -> Path:
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "fewshotv2v"


def hf_home() -> Path:
    """`$HF_HOME`, else `$XDG_CACHE_HOME/huggingface`, else `~/.cache/huggingface` (read now)."""
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "huggingface"


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def hf_offline_env() -> bool:
    """`HF_HUB_OFFLINE` (or `TRANSFORMERS_OFFLINE`) is set: huggingface_hub then refuses every request,
    whatever `hub.offline` says (it reads the variable at import), so it cannot be switched back on."""
    return _env_flag("HF_HUB_OFFLINE") or _env_flag("TRANSFORMERS_OFFLINE")


def _hf_hub_cache() -> Path:
    cache = os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE")
    return Path(cache).expanduser() if cache else hf_home() / "hub"


class HubSettings(BaseModel):  # not BaseSettings: it would read unprefixed ENDPOINT, TOKEN, ...
    """Where weights come from. `FSV2V_HUB__ENDPOINT`, `FSV2V_HUB__OFFLINE`, ...; the defaults come from
    `HF_ENDPOINT`, `HF_HUB_OFFLINE`, `HF_TOKEN` and the standard Hugging Face cache."""

    endpoint: str = Field(default_factory=lambda: os.environ.get("HF_ENDPOINT") or DEFAULT_HUB_ENDPOINT)
    offline: bool = Field(default_factory=hf_offline_env)
    # None: the stored `hf auth login` token if there is one. Never printed.
    token: str | None = Field(default_factory=lambda: os.environ.get("HF_TOKEN") or None, repr=False)
    etag_timeout: float = 10.0
    cache_dir: Path = Field(default_factory=_hf_hub_cache)  # the Hub download cache

    model_config = ConfigDict(extra="forbid")


class Settings(BaseSettings):
    """Runtime settings: device, dtype, cache folder, Hub access, keypoint backend, CPU threads."""

    model_config = SettingsConfigDict(
        env_prefix="FSV2V_",
        env_nested_delimiter="__",
        extra="forbid",
        validate_default=True,
    )

    cache_dir: Path = Field(default_factory=_default_cache_dir)
    device: Literal["auto", "cpu", "cuda", "mps"] | str = "auto"
    dtype: Literal["fp32", "bf16", "fp16"] = "fp32"
    backend: Literal["mediapipe", "dwpose"] = "mediapipe"
    model: str = ""  # empty: the model shipped for the mode (registry.DEFAULT_MODELS)
    # CPU threads for torch + the keypoint detector together (None: OMP_NUM_THREADS, else automatic;
    # see `fewshotv2v.threads`).
    threads: int | None = Field(default=None, ge=1)
    # Where synthesis makes its inputs (decode .. label map): "auto", "thread" or "process"
    # (`fewshotv2v.inference.producer`).
    producer: Literal["auto", "thread", "process"] = "auto"
    hub: HubSettings = Field(default_factory=HubSettings)

    # Filled in by `load_settings` before construction; class-level so the source hook can see it.
    _toml_file: Path | None = None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        toml_file = _CURRENT_TOML.get("path")
        if toml_file is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_file))
        return tuple(sources)

    @property
    def models_dir(self) -> Path:
        return Path(self.cache_dir).expanduser() / "models"

    @property
    def hub_cache_dir(self) -> Path:
        """The Hub download cache: `hub.cache_dir` (by default the standard Hugging Face cache)."""
        return Path(self.hub.cache_dir).expanduser()


_CURRENT_TOML: dict[str, Path | None] = {"path": None}


def _resolve_config_file(config_file: str | Path | None) -> Path | None:
    explicit = config_file if config_file is not None else os.environ.get("FSV2V_CONFIG")
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            # pydantic-settings silently ignores a missing TOML file: a named one must exist.
            raise ConfigError(f"settings file not found: {path}")
        return path
    default = DEFAULT_CONFIG_FILE.expanduser()
    return default if default.is_file() else None


def load_settings(config_file: str | Path | None = None, **overrides: Any) -> Settings:
    """Build `Settings` with CLI `overrides` (None values are ignored: unset flags never win)."""
    from pydantic import ValidationError

    path = _resolve_config_file(config_file)
    given = {k: v for k, v in overrides.items() if v is not None}
    _CURRENT_TOML["path"] = path
    try:
        return Settings(**given)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "settings"
        src = f" (from {path})" if path else ""
        raise ConfigError(f"invalid setting {where}: {first['msg']}{src}") from exc
    except Exception as exc:  # malformed TOML
        if path is not None and exc.__class__.__name__ in {"TOMLDecodeError"}:
            raise ConfigError(f"cannot parse settings file {path}: {exc}") from exc
        raise
    finally:
        _CURRENT_TOML["path"] = None


def resolve_device(name: str = "auto"):
    """'auto' -> cuda if available, else mps, else cpu. Raises DeviceError for unavailable devices."""
    import torch

    from fewshotv2v.errors import DeviceError

    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise DeviceError(f"unknown device {name!r} (use auto, cpu, cuda, cuda:N or mps)") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DeviceError("device 'cuda' requested but CUDA is not available on this machine")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise DeviceError("device 'mps' requested but MPS is not available on this machine")
    return device


def resolve_dtype(name: str, device=None):
    """'fp32'|'bf16'|'fp16' -> torch dtype; half precision needs an accelerator."""
    import torch

    from fewshotv2v.errors import DeviceError

    table = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
    if name not in table:
        raise DeviceError(f"unknown dtype {name!r} (use fp32, bf16 or fp16)")
    dtype = table[name]
    if device is not None and getattr(device, "type", device) == "cpu" and dtype == torch.float16:
        raise DeviceError("fp16 is not supported on CPU; use fp32 or bf16")
    return dtype
