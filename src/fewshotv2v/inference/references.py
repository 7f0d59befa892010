"""Reference preparation for few-shot synthesis (SPEC §1, §5): the K example images e_1..e_K of the target
person or face, each with its keypoints, its crop at the model size and its label map s_ek.

References come as image files, numpy arrays, or one video from which K frames are picked: the video is
split into K equal slots, a few candidate frames per slot are run through the detector, and the frame with
the most confident detection wins in each slot (spread over the video, confident detections preferred).
Decoding streams: at most K candidate frames are held at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fewshotv2v.errors import InputError, NoPersonError
from fewshotv2v.inference.placement import (
    FACE_FRAME_GROW,
    canvas_scale,
    cover_box,
    grow_box,
    integer_box,
    scale_keypoints,
)
from fewshotv2v.modes import MODES, get_mode
from fewshotv2v.semantics import keypoints as kp
from fewshotv2v.semantics.crops import crop_image, transform_keypoints
from fewshotv2v.semantics.label_maps import build_label_map
from fewshotv2v.semantics.rendering import render_skeleton

# A detection is usable as a reference when this many points of the mode's part are present (the
# part, threshold and count of each mode are in `fewshotv2v.modes`).
MIN_BODY_POINTS = MODES["pose"].quality_min_points  # BODY_25 points with confidence >= 0.05 (pose)
MIN_FACE_POINTS = MODES["face"].quality_min_points  # face landmarks with confidence >= 0.1 (face)


@dataclass
class Reference:
    """One prepared reference: crop at the model size, keypoints in crop pixels, label map."""

    image: np.ndarray  # uint8 (H, W, 3) crop
    keypoints: np.ndarray  # float32 (137, 3) in crop pixels
    label: np.ndarray  # float32 (C, H, W) in [0, 1]
    name: str = ""
    # Full resolution (models with the warp composite, SPEC §7): the photo capped to the output size,
    # its keypoints and person mask in its pixels, and the integer crop box the model crop was made from.
    photo: np.ndarray | None = None  # uint8 (Hp, Wp, 3)
    photo_keypoints: np.ndarray | None = None  # float32 (137, 3)
    photo_mask: np.ndarray | None = None  # float32 (Hp, Wp) (pose)
    box: np.ndarray | None = None  # (4,) in photo pixels


def quality(kps: np.ndarray, mode: str) -> float:
    """How good a detection is as a reference: mean confidence over the mode's part (0 = unusable)."""
    kps = np.asarray(kps, np.float32)
    spec = MODES.get(mode)
    if spec is None or spec.quality_part is None:  # not a keypoint mode: scored as a body
        spec = MODES["pose"]
    part, threshold, need = getattr(kp, spec.quality_part), spec.quality_threshold, spec.quality_min_points
    conf = kps[part, 2]
    if (conf >= threshold).sum() < need:
        return 0.0
    return float(conf.mean())


def skeleton_mask(kps: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """A soft person mask `float32 (H, W)` from keypoints alone: the skeleton drawn with limbs ~6x thicker
    than the label map's (about a body's width). Used when the keypoint source gives no segmentation."""
    height = kp.person_height(kps)
    thick = render_skeleton(kps, hw, person_height=max(height, 1.0) * 6.0, draw_hands=False)
    return (thick.max(axis=2) > 0).astype(np.float32)


def largest(detections) -> object | None:
    """The detection of the largest person (bounding-box area), or None."""
    if not detections:
        return None

    def area(det) -> float:
        box = np.asarray(
            getattr(det, "bbox", None) if getattr(det, "bbox", None) is not None else kp.bbox(det.keypoints)
        )
        return float(max(0.0, box[2] - box[0]) * max(0.0, box[3] - box[1]))

    return max(detections, key=area)


def prepare_reference(
    image: np.ndarray,
    kps: np.ndarray,
    config,
    *,
    mask: np.ndarray | None = None,
    name: str = "reference",
    size: int | None = None,
) -> Reference:
    """Crop a reference around its person (pose) or face (face) and build its label map.

    image `uint8 (h, w, 3)`, kps `(137, 3)` in image pixels, mask `(h, w)` float/uint8 or None.
    `size`: keep the photo too, its long side capped to `size` (full-resolution output, SPEC §7), with an
    integer-aligned crop box. Raises `NoPersonError` when the keypoints do not show a usable person / face.
    """
    mode, spec = config.mode, get_mode(config.mode)
    kps = np.asarray(kps, np.float32)
    if kps.shape != (kp.NUM_KEYPOINTS, 3):
        raise InputError(f"{name}: keypoints must be (137, 3), got {kps.shape}")
    if quality(kps, mode) <= 0:
        raise NoPersonError(f"no {spec.subject} detected in {name}")
    out_hw = (config.height, config.width)
    aspect = config.width / config.height
    full = size is not None
    if full:
        image, kps, mask = _cap_photo(image, kps, mask, size)
    hw = image.shape[:2]
    # Full resolution: boxes are not clamped into the photo (as in training); the canvas clips the paste.
    box = spec.crop_box(kps, hw, aspect=aspect, clamp=not full)
    if full:
        if spec.has_person_mask:
            if mask is None:  # the photo's person mask from the keypoints alone
                mask = skeleton_mask(kps, hw)
            box = cover_box(box, mask, aspect)
        if mode == "face":
            box = grow_box(box, FACE_FRAME_GROW)
        box = integer_box(box, aspect)
    crop = crop_image(image, box, out_hw)
    kc = transform_keypoints(kps, box, out_hw)
    crop_mask = None
    if spec.has_person_mask and getattr(config, "use_person_mask", False):
        crop_mask = (
            crop_image(np.asarray(mask, np.float32), box, out_hw)
            if mask is not None
            else skeleton_mask(kc, out_hw)
        )
    label = build_label_map(mode, kc, out_hw, config=config, mask=crop_mask)
    ref = Reference(image=crop, keypoints=kc, label=label, name=name)
    if full:
        ref.photo, ref.photo_keypoints, ref.box = image, kps, box
        ref.photo_mask = np.asarray(mask, np.float32) if spec.has_person_mask else None
    return ref


def _cap_photo(image: np.ndarray, kps: np.ndarray, mask, size: int):
    """The photo (and its keypoints and mask) resized so its long side is at most `size` pixels."""
    from fewshotv2v.video import resize_image

    scale = canvas_scale(image.shape[:2], size)
    if scale >= 1.0:
        return image, kps, mask
    h, w = (max(2, round(n * scale)) for n in image.shape[:2])
    image = resize_image(image, w, h)
    if mask is not None:
        m = np.asarray(mask, np.float32)
        mask = resize_image((np.clip(m, 0, 1) * 255).round().astype(np.uint8), w, h).astype(np.float32) / 255
    return image, scale_keypoints(kps, scale), mask


def pick_reference_frames(
    path: str | Path, k: int, detect, mode: str, *, candidates_per_slot: int = 3, max_size: int | None = None
) -> list[tuple[np.ndarray, object, str]]:
    """Pick `k` frames of a video as references: `[(image, detection, name), ...]` in time order.

    `detect(image) -> detection | None` (the chosen person of one image). The video is split into `k`
    slots; `candidates_per_slot` evenly spaced frames per slot are detected and the most confident
    detection of each slot is kept. Slots without any person are skipped; no person at all raises
    `NoPersonError`. Only the candidates are converted to RGB, at most `max_size` on their long side (the
    output's cap): a phone's 4K HDR video cost about 0.6 s a frame to convert whole, for every frame.
    """
    from fewshotv2v.video import probe, read_frames

    path = Path(path)
    total = probe(path).num_frames
    if not total:  # unknown length: count the frames (decoding only, nothing held)
        total = sum(1 for _ in read_frames(path, only=()))
    if total == 0:
        raise InputError(f"reference video {path} has no frames")
    k = max(1, min(k, total))
    # Candidate frame indices: `candidates_per_slot` per slot, centred in sub-intervals.
    slot_of: dict[int, int] = {}
    for slot in range(k):
        lo, hi = slot * total / k, (slot + 1) * total / k
        step = (hi - lo) / candidates_per_slot
        for c in range(candidates_per_slot):
            slot_of.setdefault(min(total - 1, int(lo + (c + 0.5) * step)), slot)
    best: dict[int, tuple[float, np.ndarray, object, str]] = {}
    last = max(slot_of)
    for frame in read_frames(path, only=slot_of.keys(), max_size=max_size):
        slot = slot_of.get(frame.index)
        if slot is not None:
            det = detect(frame.image)
            score = quality(det.keypoints, mode) if det is not None else 0.0
            if score > 0 and score > best.get(slot, (0.0,))[0]:
                best[slot] = (score, frame.image, det, f"{path.name} frame {frame.index}")
        if frame.index >= last:
            break
    if not best:
        raise NoPersonError(
            f"no {get_mode(mode).subject} detected in any sampled frame of reference video {path}"
        )
    return [best[s][1:] for s in sorted(best)]
