"""The one place that turns per-frame semantics into model input (SPEC §1, docs/architecture.md):
keypoints already in crop pixels, person masks and street label PNGs -> float32 ``(C, H, W)`` in [0, 1].

Pose maps are rendered directly at the model's output size (``out_hw``) from keypoints in crop pixel
coordinates: the anti-aliased renderer makes this equivalent to drawing at source resolution and resizing,
without drawing a large canvas first, and the stroke widths follow the person's height in the output
pixels (SPEC §1: body ``max(1, h/150)``, hands and face ``max(1, h/450)``).
"""

from __future__ import annotations

import numpy as np

from fewshotv2v.errors import ConfigError, InputError
from fewshotv2v.modes import get_mode
from fewshotv2v.semantics.crops import crop_image
from fewshotv2v.semantics.rendering import labels_to_onehot, render_face_edges, render_skeleton


def _resize_to(arr: np.ndarray, out_hw: tuple[int, int], interpolation: str, fill: float = 0.0) -> np.ndarray:
    """Resize a whole 2-D map to ``out_hw`` when its size differs (already-cropped masks / labels)."""
    if arr.shape[:2] == tuple(out_hw):
        return arr
    h, w = arr.shape[:2]
    return crop_image(arr, (0, 0, w, h), out_hw, interpolation=interpolation, fill=fill)


def build_label_map(
    mode: str,
    kps_in_crop: np.ndarray | None,
    out_hw: tuple[int, int],
    *,
    config,
    mask: np.ndarray | None = None,
    label: np.ndarray | None = None,
    rng: np.random.Generator | None = None,
    limb_drop: float = 0.0,
    person_height: float | None = None,
) -> np.ndarray:
    """Model input for one frame: float32 ``(C, H, W)`` in [0, 1] with ``C == config.label_nc``.

    - ``pose``: skeleton RGB / 255 (channels 0-2) from ``kps_in_crop (137, 3)``, plus the person mask
      (channel 3, ``mask`` (h, w) in [0, 1] or uint8, already cropped; resized if needed) when
      ``config.use_person_mask``. ``limb_drop`` randomly leaves out limbs (training augmentation).
    - ``face``: 1-channel landmark edge map from ``kps_in_crop`` (canonical or 68/70 face points).
    - ``street``: one-hot of ``label (h, w)`` train ids (already cropped; resized with nearest), classes
      ``config.num_classes`` (default ``config.label_nc``).

    The builder of each mode is named in its `fewshotv2v.modes.Mode`.
    """
    h, w = int(out_hw[0]), int(out_hw[1])
    label_nc = int(config.label_nc)
    out = get_mode(mode).build_label_map(
        kps_in_crop,
        (h, w),
        config=config,
        mask=mask,
        label=label,
        rng=rng,
        limb_drop=limb_drop,
        person_height=person_height,
    )
    if out.shape[0] != label_nc:
        raise ConfigError(
            f"{mode} label map has {out.shape[0]} channels but the model expects label_nc={label_nc}"
        )
    return np.ascontiguousarray(out, np.float32)


def pose_label_map(
    kps_in_crop, out_hw, *, config, mask=None, rng=None, limb_drop=0.0, person_height=None, **_
):
    """Skeleton RGB / 255 ``(3, H, W)`` plus the person mask ``(1, H, W)`` when ``config.use_person_mask``."""
    if kps_in_crop is None:
        raise InputError("pose label map needs keypoints")
    rgb = render_skeleton(kps_in_crop, out_hw, rng=rng, limb_drop=limb_drop, person_height=person_height)
    chans = [rgb.transpose(2, 0, 1).astype(np.float32) / 255.0]  # (3, H, W)
    if getattr(config, "use_person_mask", False):
        if mask is None:
            raise InputError("this model uses a person-mask channel but no mask was given")
        m = np.asarray(mask)
        m = m.astype(np.float32) / 255.0 if m.dtype == np.uint8 else m.astype(np.float32)
        if m.ndim == 3:
            m = m[..., 0]
        chans.append(np.clip(_resize_to(m, out_hw, "bilinear"), 0.0, 1.0)[None])
    return np.concatenate(chans)


def face_label_map(kps_in_crop, out_hw, **_):
    """1-channel landmark edge map ``(1, H, W)``."""
    if kps_in_crop is None:
        raise InputError("face label map needs landmarks")
    return render_face_edges(kps_in_crop, out_hw).astype(np.float32)[None] / 255.0


def street_label_map(kps_in_crop, out_hw, *, config, label=None, **_):
    """One-hot ``(num_classes, H, W)`` of the label image's train ids (255 = ignore)."""
    if label is None:
        raise InputError("street label map needs a label image")
    lab = np.asarray(label)
    if lab.ndim == 3:
        lab = lab[..., 0]
    lab = _resize_to(lab.astype(np.uint8), out_hw, "nearest", fill=255)
    return labels_to_onehot(lab, int(getattr(config, "num_classes", config.label_nc)))
