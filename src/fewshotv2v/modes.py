"""What a mode is (SPEC §1): the one place that knows pose, face and street.

A `Mode` holds everything the rest of the package asks about a mode: the word for its subject in messages,
whether keypoints drive it, its label-map channels and builder, its crop box, the default combine, face-D
use, how a reference detection is scored, the synthetic-data framing and the person mask. Adding a mode is
one more entry in `MODES` (plus its label-map builder and crop function where they are new).

This module is imported by `fewshotv2v.config` and the CLI: it imports neither numpy nor torch. Functions
that need them (crop boxes, label-map builders) are named by a ``"module:function"`` path and imported on
first use.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fewshotv2v.errors import ConfigError


def _resolve(path: str) -> Callable[..., Any]:
    """``"package.module:function"`` -> the function (imported now, not when the registry is built)."""
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


@dataclass(frozen=True)
class Mode:
    """One mode of the generator: what its label maps show and how its frames are cropped."""

    name: str
    subject: str  # the word for what is detected, in messages: "no {subject} detected ..."
    keypoint_driven: bool  # label maps come from keypoints (Pipeline synthesizes from keypoints)
    label_channels: Callable[[Any], int]  # ModelConfig -> its label_nc in this mode
    label_map: str  # "module:function" building the (C, H, W) label map, see semantics.label_maps
    crop: str  # "module:function(kps, hw, *, aspect, clamp) -> box (4,)"
    default_combine: str  # "spade" | "matting" (ModelConfig.combine when left empty)
    face_discriminator: bool  # Discriminators builds the face D when config.use_face_discriminator
    has_person_mask: bool  # frames carry a person mask (the optional label channel, compositing)
    quality_part: str | None = None  # semantics.keypoints index array scored for references: "BODY"
    quality_threshold: float = 0.0  # a point of that part counts when its confidence is >= this
    quality_min_points: int = 0  # a detection is usable with at least this many such points
    framing: str | None = None  # data.synthetic framing ("body" / "face"), None: no synthetic data
    # One-Euro smoothing of the driving keypoints (`semantics.smoothing.OneEuroFilter`): (min_cutoff Hz,
    # beta per subject size per second), measured in docs/real-photos.md: face landmarks move fast for the
    # face's size (lips, blinks, head turns) and mediapipe's are steady, so they are barely smoothed.
    smoothing: tuple[float, float] = (1.0, 5.0)
    # A detection whose person height differs from the last accepted one's by more than this factor is a
    # detector glitch (a walker folded in half, legs read as arms), ignored by synthesis and preprocessing
    # (`semantics.tracking.HeightJumpGuard`); 0 = no check. In vtest.avi 2.3 % of a tracked walker's
    # frames jumped by more than 1.2. Faces: their radius (`tracking.face_measure`), 1.2 too.
    height_jump: float = 0.0
    # ... or whose centre moved by more than this many sizes (0 = not checked). Faces: 0.8 radii; in four
    # real talking-head videos (7000 frames) a face moved at most 0.37 radii and grew at most 1.05 x
    # between frames, while a cut to another shot jumped 0.6 radii and 1.4 x.
    jump_shift: float = 0.0
    # A jump that lasts is a cut in the driving video (a new shot): the subject is then taken afresh, at
    # the reference's place and size, as when someone else is followed. Pose: no (a jump in height that
    # lasts is the person's own: a crouch, legs hidden behind a table).
    new_shot_on_jump: bool = False

    def crop_box(self, kps, hw: tuple[int, int], *, aspect: float = 0.5, clamp: bool = True):
        """Crop box `(4,)` float32 x0, y0, x1, y1 in frame pixels for keypoints `kps (137, 3)`."""
        return _resolve(self.crop)(kps, hw, aspect=aspect, clamp=clamp)

    def build_label_map(self, kps_in_crop, out_hw: tuple[int, int], **kw):
        """The mode's label-map builder (see `fewshotv2v.semantics.label_maps.build_label_map`)."""
        return _resolve(self.label_map)(kps_in_crop, out_hw, **kw)


# Crop functions with one signature (the crops module's own functions differ in their options).
def pose_crop(kps, hw, *, aspect: float = 0.5, clamp: bool = True):
    from fewshotv2v.semantics.crops import pose_crop_box

    return pose_crop_box(kps, hw, aspect=aspect, clamp=clamp)


def face_crop(kps, hw, *, aspect: float = 0.5, clamp: bool = True):
    from fewshotv2v.semantics.crops import face_crop_box

    return face_crop_box(kps, hw, clamp=clamp)  # square: the aspect does not apply


def whole_frame(kps, hw, *, aspect: float = 0.5, clamp: bool = True):
    import numpy as np

    return np.array([0, 0, hw[1], hw[0]], np.float32)


_LABEL_MAPS = "fewshotv2v.semantics.label_maps"

MODES: dict[str, Mode] = {
    "pose": Mode(
        name="pose",
        subject="person",
        keypoint_driven=True,
        label_channels=lambda c: c.skeleton_nc + int(c.use_person_mask),  # skeleton RGB + person mask
        label_map=f"{_LABEL_MAPS}:pose_label_map",
        crop=f"{__name__}:pose_crop",
        default_combine="spade",
        face_discriminator=True,
        has_person_mask=True,
        quality_part="BODY",
        quality_threshold=0.05,
        quality_min_points=4,
        framing="body",
        height_jump=1.2,
    ),
    "face": Mode(
        name="face",
        subject="face",
        keypoint_driven=True,
        label_channels=lambda c: c.face_nc,  # landmark edge map
        label_map=f"{_LABEL_MAPS}:face_label_map",
        crop=f"{__name__}:face_crop",
        default_combine="spade",
        face_discriminator=False,
        has_person_mask=False,
        quality_part="FACE",
        quality_threshold=0.1,
        quality_min_points=20,
        framing="face",
        smoothing=(10.0, 64.0),
        height_jump=1.2,
        jump_shift=0.8,
        new_shot_on_jump=True,
    ),
    "street": Mode(
        name="street",
        subject="scene",
        keypoint_driven=False,
        label_channels=lambda c: c.num_classes,  # one-hot semantic classes
        label_map=f"{_LABEL_MAPS}:street_label_map",
        crop=f"{__name__}:whole_frame",
        default_combine="matting",
        face_discriminator=False,
        has_person_mask=False,
    ),
}


def get_mode(name: str, registry: dict[str, Mode] | None = None) -> Mode:
    """The `Mode` called `name`; `ConfigError` for an unknown one."""
    registry = MODES if registry is None else registry
    mode = registry.get(name) if isinstance(name, str) else None
    if mode is None:
        raise ConfigError(f"unknown mode {name!r}; expected one of {', '.join(registry)}")
    return mode


def keypoint_modes() -> tuple[str, ...]:
    """Names of the keypoint-driven modes (those `Pipeline` synthesizes), in registry order."""
    return tuple(m.name for m in MODES.values() if m.keypoint_driven)
