"""Architecture config of the few-shot vid2vid generator (SPEC §1-2).

`ModelConfig` is a frozen dataclass that round-trips through `config.json` beside the weights. It holds
only architecture choices; runtime settings (device, paths) live in `fewshotv2v.settings`.

Channel widths follow the paper: ``ch[i] = min(ch_max, ch_base * 2**i)`` at level i, where "level i" is
resolution ``H / 2**i x W / 2**i``; the generator has ``num_levels`` stride-2 steps (5 in the paper), so the
image decoder H has ``num_levels + 1`` SPADE ResBlocks.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from fewshotv2v.errors import ConfigError
from fewshotv2v.modes import Mode, get_mode

CONFIG_FORMAT = "fewshotv2v-model-config"
CONFIG_VERSION = 1

COMBINES = ("spade", "matting")
FLOW_PRIORS = ("none", "keypoints")  # SPEC §7: analytic keypoint warp that W refines
COMPOSITES = ("none", "warp")  # SPEC §7: out = m * warp(ref) + (1 - m) * H's output
ARCHITECTURES = ("fsv2v", "keypoint-warp")  # keypoint-warp: the prior + composite only, no weights


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of one generator (and its discriminators).

    Label-map channels (`label_nc`) follow from the mode: pose = skeleton RGB (3) + optional person mask
    (1); face = landmark edge map (1); street = one-hot over `num_classes`.
    """

    name: str = "pose"  # preset (architecture) name, recorded in checkpoints
    mode: str = "pose"  # "pose" | "face" | "street"
    height: int = 512
    width: int = 256
    # semantic input layout
    skeleton_nc: int = 3
    use_person_mask: bool = True
    face_nc: int = 1
    num_classes: int = 20
    # generator widths: ch[i] = min(ch_max, ch_base * 2**i)
    ch_base: int = 32
    ch_max: int = 1024
    num_levels: int = 5  # stride-2 steps of E_F / label embedder; H has num_levels + 1 blocks
    num_generated_levels: int = 4  # blocks up_0..up_{n-1} get per-sample generated weights (E_P)
    k_max: int = 4  # largest number of references trained / allowed
    attention_level: int = 2  # E_A runs inside E_F at this level
    # W (flow + occlusion mask network)
    flow_ch_base: int = 32
    flow_num_down: int = 3
    flow_num_res: int = 6
    flow_scale: float = 20.0  # flow head output is multiplied by this (flow in pixels)
    # combining the warped images: "spade" (pose/face: UNets -> SPADE maps) or "matting" (street)
    combine: str = ""  # empty = the mode's default
    combine_levels: int = 2  # SPADE-combine feeds blocks up_0..up_{n-1}
    combine_depth: int = 3  # stride-2 steps of each warp UNet (>= combine_levels - 1)
    spectral_norm: bool = True
    # SPEC §7 (this project's extension for real photos): keypoint flow prior and the warp composite
    flow_prior: str = "none"  # "keypoints": W gets the prior flow and predicts a residual (zero-init)
    composite: str = "none"  # "warp": learned soft mask between the warped reference and H's output
    # with the prior: False = W keeps the prior flow as it is and only predicts the composite mask
    residual_flow: bool = True
    architecture: str = "fsv2v"  # "keypoint-warp": no network at all (the no-weights baseline)
    # discriminators (SPEC §3; used by models.discriminators)
    d_ch_base: int = 32
    d_num_scales: int = 2
    use_face_discriminator: bool = True
    use_temporal_discriminator: bool = False
    face_crop_size: int = 128
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        if not self.combine:
            object.__setattr__(self, "combine", get_mode(self.mode).default_combine)
        self.validate()

    # ---- derived values ------------------------------------------------------------------------
    @property
    def label_nc(self) -> int:
        """Channels of the label map (semantic input), see docs/architecture.md."""
        return self.mode_info.label_channels(self)

    @property
    def mode_info(self) -> Mode:
        """What the mode is (label channels, crop box, subject, ...), see `fewshotv2v.modes`."""
        return get_mode(self.mode)

    @property
    def person_channel(self) -> int | None:
        """Index of the person-mask channel of a pose label map (after the skeleton RGB), else None."""
        return self.skeleton_nc if self.mode_info.has_person_mask and self.use_person_mask else None

    @property
    def uses_keypoints(self) -> bool:
        """True when the generator needs the keypoints themselves (the flow prior), not only label maps."""
        return self.flow_prior == "keypoints"

    def ch(self, level: int) -> int:
        """Channel width at `level`: min(ch_max, ch_base * 2**level)."""
        return min(self.ch_max, self.ch_base * 2**level)

    @property
    def channels(self) -> tuple[int, ...]:
        return tuple(self.ch(i) for i in range(self.num_levels + 1))

    @property
    def size(self) -> tuple[int, int]:
        return (self.height, self.width)

    # ---- validation ----------------------------------------------------------------------------
    def validate(self) -> None:
        """Raise `ConfigError` with a one-line reason if the config cannot build a model."""
        mode = get_mode(self.mode)
        if self.combine not in COMBINES:
            raise ConfigError(f"unknown combine {self.combine!r}; expected one of {', '.join(COMBINES)}")
        positive = (
            "height width ch_base ch_max num_levels k_max flow_ch_base skeleton_nc face_nc num_classes "
            "combine_depth d_ch_base d_num_scales face_crop_size"
        )
        for name in positive.split():
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"config field {name} must be a positive integer, got {value!r}")
        for name in ("num_generated_levels", "flow_num_down", "flow_num_res", "combine_levels"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ConfigError(f"config field {name} must be a non-negative integer, got {value!r}")
        if self.ch_max < self.ch_base:
            raise ConfigError(f"ch_max ({self.ch_max}) must be >= ch_base ({self.ch_base})")
        if max(self.height, self.width) > MAX_SIDE:  # a typo (51200) would end in an out-of-memory crash
            raise ConfigError(
                f"height and width must be at most {MAX_SIDE}, got {self.height} x {self.width}"
            )
        factor = 2 ** max(self.num_levels, self.flow_num_down, self.combine_depth)
        if self.height % factor or self.width % factor:
            raise ConfigError(
                f"height and width ({self.height} x {self.width}) must be divisible by {factor} "
                f"(2^levels with num_levels={self.num_levels}, flow_num_down={self.flow_num_down})"
            )
        if (self.height // 2**self.num_levels) * (self.width // 2**self.num_levels) < 2:
            raise ConfigError(
                f"{self.height} x {self.width} is too small for num_levels={self.num_levels}: the "
                "bottleneck needs at least 2 pixels (instance norm)"
            )
        if self.num_generated_levels > self.num_levels:
            raise ConfigError(
                f"num_generated_levels ({self.num_generated_levels}) must be <= "
                f"num_levels ({self.num_levels})"
            )
        if not 0 <= self.attention_level <= self.num_levels:
            raise ConfigError(f"attention_level must be within 0..num_levels ({self.num_levels})")
        if self.combine == "spade":
            if self.combine_levels > self.num_levels + 1:
                raise ConfigError("combine_levels must be <= num_levels + 1")
            if self.combine_depth < self.combine_levels - 1:
                raise ConfigError("combine_depth must be >= combine_levels - 1")
        if self.mode == "street" and self.num_classes < 2:
            raise ConfigError("street mode needs num_classes >= 2")
        for name, allowed in (
            ("flow_prior", FLOW_PRIORS),
            ("composite", COMPOSITES),
            ("architecture", ARCHITECTURES),
        ):
            if getattr(self, name) not in allowed:
                raise ConfigError(
                    f"unknown {name} {getattr(self, name)!r}; expected one of {', '.join(allowed)}"
                )
        if (self.flow_prior != "none" or self.composite != "none") and not mode.keypoint_driven:
            raise ConfigError("flow_prior and composite need keypoints: pose or face mode, not street")
        if self.architecture == "keypoint-warp" and (self.flow_prior, self.composite) != (
            "keypoints",
            "warp",
        ):
            raise ConfigError(
                'architecture "keypoint-warp" needs flow_prior="keypoints" and composite="warp"'
            )
        if not isinstance(self.residual_flow, bool):
            raise ConfigError(f"residual_flow must be true or false, got {self.residual_flow!r}")
        if not self.residual_flow and self.flow_prior != "keypoints":
            raise ConfigError('residual_flow=false needs flow_prior="keypoints" (W must predict some flow)')
        if not self.flow_scale > 0:
            raise ConfigError(f"flow_scale must be positive, got {self.flow_scale!r}")

    # ---- presets and serialisation -------------------------------------------------------------
    @classmethod
    def preset(cls, name: str, **overrides: Any) -> ModelConfig:
        """A named preset (`pose`, `face`, `face512`, `street`, `pose-lite`, `face-lite`, `keypoint-warp`,
        `keypoint-warp-face`, and `tiny*` for tests), with optional field overrides (validated)."""
        if name not in PRESETS:
            raise ConfigError(f"unknown preset {name!r}; available: {', '.join(PRESETS)}")
        values = {"name": name, **PRESETS[name], **overrides}
        return cls.from_dict(values, check_format=False)

    def replace(self, **changes: Any) -> ModelConfig:
        """A copy with some fields changed (validated)."""
        return self.from_dict({**self._fields_dict(), **changes}, check_format=False)

    def _fields_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (the content of `config.json`), with a format tag and version."""
        data = {"format": CONFIG_FORMAT, "version": CONFIG_VERSION}
        data.update(self._fields_dict())
        data["extra"] = dict(self.extra)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, check_format: bool = True) -> ModelConfig:
        """Build a config from `to_dict` output; unknown keys or a wrong format raise `ConfigError`."""
        if not isinstance(data, dict):
            raise ConfigError(f"model config must be a JSON object, got {type(data).__name__}")
        data = dict(data)
        fmt = data.pop("format", CONFIG_FORMAT)
        version = data.pop("version", CONFIG_VERSION)
        if check_format and fmt != CONFIG_FORMAT:
            raise ConfigError(f"not a fewshotv2v model config (format {fmt!r})")
        if check_format and (not isinstance(version, int) or version > CONFIG_VERSION):
            raise ConfigError(
                f"model config version {version!r} is newer than this fewshotv2v supports ({CONFIG_VERSION})"
            )
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown model config key(s): {', '.join(unknown)}")
        try:
            return cls(**data)
        except TypeError as exc:  # pragma: no cover - only with odd field types
            raise ConfigError(f"invalid model config: {exc}") from None


MAX_SIDE = 4096  # largest model height / width (the presets use 256 .. 512)

# Presets (SPEC §1). `tiny*` are for tests and CPU smoke runs: a forward pass takes milliseconds.
_TINY = {
    "height": 64,
    "width": 32,
    "ch_base": 8,
    "ch_max": 64,
    "num_levels": 4,
    "num_generated_levels": 3,
    "attention_level": 2,
    "flow_ch_base": 8,
    "flow_num_down": 2,
    "flow_num_res": 1,
    "combine_depth": 1,
    "d_ch_base": 8,
    "face_crop_size": 32,
}

_PRIOR = {"flow_prior": "keypoints", "composite": "warp"}
# keypoint-warp: the size is where the prior flow is computed (smooth: then upsampled to the output size).
_KEYPOINT_WARP = {**_PRIOR, "architecture": "keypoint-warp"}
# The shipped "lite" models: small enough to train on a CPU and ship in the wheel; detail comes from the
# full-resolution composite (SPEC §7), not from the model size.
_LITE = {
    **_PRIOR,
    # Pose: the flow is the prior's; a learned residual flow still misaligned more than it repaired after
    # the few hundred steps a CPU affords (held-out pose below keypoint-warp), so W learns the composite
    # mask and H the correction of the warped reference.
    "residual_flow": False,
    "ch_base": 16,
    "ch_max": 128,
    "num_levels": 4,
    "num_generated_levels": 3,
    "attention_level": 2,
    "flow_ch_base": 16,
    "flow_num_down": 3,
    "flow_num_res": 2,
    "combine_depth": 2,
    "d_ch_base": 16,
    "face_crop_size": 32,
}

PRESETS: dict[str, dict[str, Any]] = {
    "pose": {"mode": "pose", "height": 512, "width": 256},
    "face": {"mode": "face", "height": 256, "width": 256, "use_face_discriminator": False},
    "face512": {"mode": "face", "height": 512, "width": 512, "use_face_discriminator": False},
    "street": {"mode": "street", "height": 256, "width": 512, "use_face_discriminator": False},
    "tiny": {"mode": "pose", **_TINY},
    "tiny-face": {"mode": "face", **_TINY, "width": 64, "use_face_discriminator": False},
    "tiny-prior": {"mode": "pose", **_TINY, **_PRIOR},
    "tiny-face-prior": {"mode": "face", **_TINY, "width": 64, "use_face_discriminator": False, **_PRIOR},
    "pose-lite": {"mode": "pose", "height": 128, "width": 64, **_LITE},
    # Faces: the hair and the neck lie outside the landmarks, where only a learned residual flow (small:
    # 2 px per unit of the zero-init head) moves them with the head.
    "face-lite": {
        "mode": "face",
        "height": 128,
        "width": 128,
        "use_face_discriminator": False,
        **_LITE,
        "residual_flow": True,
        "flow_scale": 2.0,
    },
    "keypoint-warp": {"mode": "pose", "height": 256, "width": 128, **_KEYPOINT_WARP},
    "keypoint-warp-face": {"mode": "face", "height": 256, "width": 256, **_KEYPOINT_WARP},
    "tiny-street": {
        "mode": "street",
        **_TINY,
        "height": 32,
        "width": 64,
        "num_classes": 5,
        "num_levels": 3,
        "use_face_discriminator": False,
    },
}
