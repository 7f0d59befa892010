"""Training hyper-parameters (SPEC §3-4): a frozen dataclass saved as `train_config.json` in the run folder.

Precedence, highest first: CLI flags > a TOML/JSON file (`fsv2v train --train-config FILE`) > defaults.
The architecture is *not* here: that is `fewshotv2v.config.ModelConfig` (saved as `model_config.json`).
The loss weights are one `LossWeights` inside it; in files and `replace()` they are the flat keys
`w_<field>` (`w_gan`, `w_feature_matching`, ...).
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fewshotv2v.errors import ConfigError

TRAIN_CONFIG_FORMAT = "fewshotv2v-train-config"
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
PERCEPTUAL = ("vgg", "none")


@dataclass(frozen=True)
class LossWeights:
    """Weights of the G step's loss terms (SPEC §3), read by the trainer (`training.steps.G_TERMS`). Each
    field `x` is the train-config key `w_x`. Adding a loss: one field here and one term in `G_TERMS`.
    """

    gan: float = 1.0
    feature_matching: float = 10.0  # summed over D layers, averaged over scales, as the references
    perceptual: float = 10.0
    warp: float = 10.0
    mask: float = 10.0
    face: float = 10.0  # pose mode's face D
    temporal: float = 1.0  # temporal D; only models built with use_temporal_discriminator have one
    # L1 of the frame against the real one: a stand-in for the perceptual loss when the VGG19 weights are
    # not at hand (`--perceptual none`), as test-time finetuning does; 0 = off (the SPEC's losses)
    reconstruction: float = 0.0

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
                raise ConfigError(f"loss weight w_{f.name} must be a number >= 0, got {value!r}")

    @property
    def adversarial(self) -> bool:
        """True when some G term needs a discriminator (whichever the model has); False =
        reconstruction-only training (a weight-0 term is not computed)."""
        return self.uses_discriminators(face=True, temporal=True)

    def uses_discriminators(self, *, face: bool, temporal: bool) -> bool:
        """True when a weighted G term needs a discriminator the model has (`face`, `temporal`: whether
        it has a face D / a temporal D); the trainer runs D steps only then."""
        return (
            self.gan > 0
            or self.feature_matching > 0
            or (face and self.face > 0)
            or (temporal and self.temporal > 0)
        )


@dataclass(frozen=True)
class TrainConfig:
    """Everything the trainer needs besides the data and the architecture.

    Schedule (SPEC §4): steps `[0, single_frame_steps)` train single frames (T = 1, no previous-frame flow);
    afterwards clips of `clip_len_start` frames, doubled every `clip_len_double_every` steps up to
    `clip_len_max`. A "step" is one batch of clips: for each of its T frames one D step and one G step.
    """

    steps: int = 100_000
    batch_size: int = 4
    lr_g: float = 1e-4  # TTUR: D learns 4x faster than G
    lr_d: float = 4e-4
    beta1: float = 0.0
    beta2: float = 0.999
    ema_beta: float = 0.999
    # progressive clip length
    single_frame_steps: int = 20_000
    clip_len_start: int = 2
    clip_len_double_every: int = 20_000
    clip_len_max: int = 8
    k_max: int = 0  # 0 = the model config's k_max; K is drawn per step from 1..k_max
    # SPEC §7: Gaussian noise on the keypoints the flow prior sees (std as a fraction of the crop height),
    # so W learns to repair prior errors as it must on real detections
    keypoint_noise: float = 0.01
    # loss weights (SPEC §3); keys w_gan, w_feature_matching, ... in files
    loss_weights: LossWeights = field(default_factory=LossWeights)
    perceptual: str = "vgg"  # "vgg" | "none"
    vgg_weights: str = ""  # local VGG19 weights file; empty = the hub download cache
    # numerics
    precision: str = "auto"  # auto = bf16 autocast on CUDA, fp32 elsewhere
    grad_clip: float = 10.0  # max global grad norm per network; 0 = off
    channels_last: bool = True  # only applied on CUDA
    nonfinite_limit: int = 50  # abort after this many skipped (non-finite) steps
    # bookkeeping
    log_every: int = 10
    sample_every: int = 500
    checkpoint_every: int = 2000
    keep_last: int = 3
    seed: int = 0
    workers: int = 2

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise `ConfigError` with a one-line reason for impossible values."""
        positive = (
            "steps batch_size clip_len_start clip_len_double_every clip_len_max log_every sample_every "
            "checkpoint_every keep_last nonfinite_limit"
        )
        for name in positive.split():
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"train config field {name} must be a positive integer, got {value!r}")
        for name in ("single_frame_steps", "k_max", "workers", "seed"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ConfigError(f"train config field {name} must be a non-negative integer, got {value!r}")
        if self.precision not in PRECISIONS:
            raise ConfigError(
                f"unknown precision {self.precision!r}; expected one of {', '.join(PRECISIONS)}"
            )
        if self.perceptual not in PERCEPTUAL:
            raise ConfigError(f"unknown perceptual loss {self.perceptual!r}; expected vgg or none")
        if self.clip_len_max < self.clip_len_start:
            raise ConfigError("clip_len_max must be >= clip_len_start")
        if not (0.0 <= self.ema_beta < 1.0):
            raise ConfigError(f"ema_beta must be in [0, 1), got {self.ema_beta!r}")
        for name in ("lr_g", "lr_d"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)!r}")
        for name in ("beta1", "beta2"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ConfigError(f"{name} must be in [0, 1), got {getattr(self, name)!r}")
        if not 0.0 <= self.keypoint_noise < 0.2:
            raise ConfigError(f"keypoint_noise must be in [0, 0.2), got {self.keypoint_noise!r}")
        if self.grad_clip < 0:
            raise ConfigError(f"grad_clip must be >= 0, got {self.grad_clip!r}")

    # ---- schedule ------------------------------------------------------------------------------
    def clip_len(self, step: int) -> int:
        """Frames per training clip at `step` (0-based): 1 in the single-frame stage, then
        clip_len_start doubling every clip_len_double_every steps, capped at clip_len_max."""
        if step < self.single_frame_steps:
            return 1
        doublings = (step - self.single_frame_steps) // self.clip_len_double_every
        return min(self.clip_len_max, self.clip_len_start * 2 ** min(doublings, 30))

    # ---- serialisation -------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types; the loss weights as flat `w_<name>` keys."""
        data: dict[str, Any] = {"format": TRAIN_CONFIG_FORMAT}
        for f in dataclasses.fields(self):
            if f.name == "loss_weights":
                data.update({f"w_{k}": v for k, v in dataclasses.asdict(self.loss_weights).items()})
            else:
                data[f.name] = getattr(self, f.name)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        if not isinstance(data, dict):
            raise ConfigError(f"train config must be a mapping, got {type(data).__name__}")
        data = dict(data)
        data.pop("format", None)
        weight_names = {f"w_{f.name}": f.name for f in dataclasses.fields(LossWeights)}
        weights = {weight_names[k]: data.pop(k) for k in list(data) if k in weight_names}
        known = {f.name: f for f in dataclasses.fields(cls) if f.name != "loss_weights"}
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ConfigError(f"unknown train config key(s): {', '.join(unknown)}")
        for name, value in list(data.items()):
            # TOML/JSON give ints for floats ("lr_g = 1" is fine); never accept strings for numbers.
            if known[name].type == "float" and isinstance(value, int) and not isinstance(value, bool):
                data[name] = float(value)
        weights = {
            k: float(v) if isinstance(v, int) and not isinstance(v, bool) else v for k, v in weights.items()
        }
        try:
            return cls(**data, loss_weights=LossWeights(**weights))
        except TypeError as exc:  # pragma: no cover
            raise ConfigError(f"invalid train config: {exc}") from None

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with the non-None `changes` applied (unset CLI flags never override)."""
        given = {k: v for k, v in changes.items() if v is not None}
        return self.from_dict({**self.to_dict(), **given})

    @classmethod
    def from_file(cls, path: str | Path) -> TrainConfig:
        """Defaults overridden by a `.toml` or `.json` file (see `read_overrides`)."""
        return cls.from_dict(read_overrides(path))

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=1) + "\n", encoding="utf-8")


def read_overrides(path: str | Path) -> dict[str, Any]:
    """The fields set in a `.toml` or `.json` train config file (a `[train]` table in TOML is also
    accepted). Keys are checked when the dict is applied (`TrainConfig.replace` / `from_dict`)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"train config file not found: {path}")
    try:
        if path.suffix.lower() == ".toml":
            data = tomllib.loads(path.read_text(encoding="utf-8"))
            data = data.get("train", data)
        else:
            data = json.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot parse train config {path}: {' '.join(str(exc).split())}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"train config {path} must hold a table/object of fields")
    data.pop("format", None)
    return data
