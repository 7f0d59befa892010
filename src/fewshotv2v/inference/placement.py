"""Where each driving frame goes on the full-resolution canvas (SPEC §7): numpy only, no torch.

The producer stage (`inference.producer`, a thread or a process of its own) places every driving frame:

- **canvas**: the first reference photo, capped by `size` (the boxes below are in its pixels).
- **target box** (pose): driving keypoints are retargeted onto the reference body *in canvas pixels*
  (global motion relative to the first driving frame, scaled to the reference; `keep_centered` removes
  it), shifted so the body stays inside the canvas (`keep_inside`), and the model crop is placed around
  them, so a driver who walks across the frame walks across the photo and never out of the crop. face: the
  reference's face box, fixed.
- the keypoints and label map in that crop at the model's size, and (pose) the transforms from the target
  crop to each reference crop: a `FrameTarget`, what the generator gets. `inference.framing.Composer`
  (torch) composites the generator's output back at canvas resolution.

Boxes are integer-aligned in canvas pixels, so a crop pixel is a canvas pixel (no resampling at paste).
A `Placement` holds only small arrays (boxes, keypoints, the retargeter), so it pickles cheaply into a
producer process.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fewshotv2v.semantics import keypoints as kp
from fewshotv2v.semantics.crops import box_transform, crop_image, transform_keypoints
from fewshotv2v.semantics.label_maps import build_label_map

DEFAULT_SIZE = 1024  # long side of the output canvas (the photo is never upscaled)
MAX_SIZE = 4096  # larger canvases are refused: memory grows with the square
# The face crop at full resolution: the training crop (2 face widths) grown about its centre, so a head
# that moves or leans in has room before the crop's still border (the prior pins it: SPEC §7). 1.0 sheared
# and cut the hair of a real talking head (carphone: face PSNR 21.8 dB; 1.3: 22.3, 1.4: 22.3, the
# background bent more); the model sees the face at 1 / 1.3 of its training scale.
FACE_FRAME_GROW = 1.3


def integer_box(box, aspect: float) -> np.ndarray:
    """`(x0, y0, x1, y1)` rounded to whole pixels with width = round(height x aspect) (>= 2 each)."""
    x0, y0 = round(float(box[0])), round(float(box[1]))
    height = max(2, round(float(box[3] - box[1])))
    width = max(2, round(height * aspect))
    return np.array([x0, y0, x0 + width, y0 + height], np.float32)


def grow_box(box, factor: float) -> np.ndarray:
    """`(x0, y0, x1, y1)` scaled by `factor` about its centre."""
    box = np.asarray(box, np.float32)
    centre, half = (box[:2] + box[2:]) / 2, (box[2:] - box[:2]) / 2 * factor
    return np.concatenate([centre - half, centre + half]).astype(np.float32)


def cover_box(box, mask: np.ndarray | None, aspect: float, *, margin: float = 0.05) -> np.ndarray:
    """`box` grown (about its centre, keeping `aspect` = width / height) to hold the person mask's box with
    a `margin`: a half-body photo's person is wider than the skeleton's 1:2 crop, and whatever of the
    person falls outside the model crop would be lost from every frame."""
    box = np.asarray(box, np.float32)
    if mask is None or not (np.asarray(mask) > 0.5).any():
        return box
    ys, xs = np.nonzero(np.asarray(mask) > 0.5)
    lo = np.minimum(box[:2], [xs.min(), ys.min()])
    hi = np.maximum(box[2:], [xs.max() + 1, ys.max() + 1])
    centre, size = (lo + hi) / 2, (hi - lo) * (1 + 2 * margin)
    height = max(size[1], size[0] / aspect)
    half = np.array([height * aspect, height]) / 2
    return np.concatenate([centre - half, centre + half]).astype(np.float32)


def canvas_scale(hw: tuple[int, int], size: int) -> float:
    """Scale that brings an image's long side to at most `size` (never above 1)."""
    return min(1.0, size / max(hw))


def scale_keypoints(kps: np.ndarray, scale: float) -> np.ndarray:
    """Keypoints in an image's pixels -> in the pixels of the image resized by `scale` (centre convention)."""
    out = np.array(kps, np.float32, copy=True)
    ok = out[:, 2] > 0
    out[ok, :2] = (out[ok, :2] + 0.5) * scale - 0.5
    return out


# The points `keep_inside` keeps on the canvas: across, the head and face, neck, shoulders and hips (the
# body's core); down, also the legs and feet. Arms and hands never count.
CORE = np.zeros(kp.NUM_KEYPOINTS, bool)
CORE[[*kp.HEAD_POINTS, kp.NECK, kp.R_SHOULDER, kp.L_SHOULDER, kp.MID_HIP, kp.R_HIP, kp.L_HIP]] = True
CORE[kp.FACE] = True
UPRIGHT = CORE.copy()
UPRIGHT[[kp.R_KNEE, kp.L_KNEE, *kp.FEET_POINTS]] = True
# Across, the body reaches beyond its core points (the shoulders' flesh, the side of the head): the core
# keeps at least this fraction of the body's height from the side edges (a walker held at the edge had
# half a shoulder cut off by it).
SIDE_MARGIN = 0.06


def _extent(kps: np.ndarray, ok: np.ndarray, axis: int, head_rise: float = 0.0) -> tuple[float, float] | None:
    """(lo, hi) along `axis` (0: x, 1: y) of the keypoints `ok` marks; along y the head's top counts (it
    lies above the eyes and ears: one nose-to-neck height above the nose, or `head_rise` pixels when
    that is more). None when none is marked."""
    if not ok.any():
        return None
    lo, hi = float(kps[ok, axis].min()), float(kps[ok, axis].max())
    if axis == 1 and ok[kp.NOSE] and kps[kp.NECK, 2] > 0:
        rise = max(float(kps[kp.NECK, 1] - kps[kp.NOSE, 1]), head_rise)
        lo = min(lo, float(kps[kp.NOSE, 1]) - rise)
    return lo, hi


def head_rise(kps: np.ndarray, mask: np.ndarray | None) -> float:
    """How far the photo's head reaches above its nose, in pixels, measured in its person mask `(H, W)`:
    the topmost person pixel above the nose within 1.5 nose-to-neck lengths of it across, at most three
    such lengths up (a raised hand above the head is not hair). 0 without a mask, nose or neck. A head
    bent forward (a footballer in a lunge) has a short nose-to-neck height and hair far above the nose:
    its top was cut by the canvas edge."""
    if mask is None or kps[kp.NOSE, 2] <= 0 or kps[kp.NECK, 2] <= 0:
        return 0.0
    nose, neck = kps[kp.NOSE, :2], kps[kp.NECK, :2]
    length = float(np.linalg.norm(nose - neck))
    h, w = mask.shape
    x0, x1 = (int(np.clip(round(float(nose[0]) + s * 1.5 * length), 0, w)) for s in (-1, 1))
    y0, y1 = (int(np.clip(round(float(nose[1]) - f * length), 0, h)) for f in (3, 0))
    rows = np.nonzero((np.asarray(mask[y0:y1, x0:x1]) > 0.5).any(axis=1))[0]
    return float(nose[1]) - (y0 + int(rows[0])) if len(rows) else 0.0


def keep_inside(
    kps: np.ndarray,
    hw: tuple[int, int],
    margin: float = 0.02,
    *,
    reference: np.ndarray | None = None,
    head_rise: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Shift keypoints `(137, 3)` so the body stays inside the canvas, a `margin` fraction from the edges:
    across, its core (`CORE`: head, face, neck, shoulders, hips); down, the core and the legs (`UPRIGHT`),
    the head's top included; across, at least `SIDE_MARGIN` of the body's height from the edges. Arms
    never count: a hand swinging past the edge of a narrow photo, or raised above the head, must not push
    the whole body aside. A core wider than the canvas is centred; a body taller than it keeps its head
    in and lets its feet leave at the bottom (a standing driver on a crouching or cropped reference: the
    face matters more than the shoes).

    `reference (137, 3)`: the reference photo's own keypoints on this canvas. Then only the points it shows
    *inside* the canvas count (a detector places a half-body photo's unseen knees and heels below the
    frame), and each edge's limit gives way to where the reference itself reaches (a photo cut at the
    crown), so the reference's own pose is never moved. `head_rise`: how far the head reaches above the
    nose when more than the nose-to-neck height (`head_rise()` of the reference photo). Returns
    (keypoints, shift (2,))."""
    shown = np.ones(len(kps), bool)
    if reference is not None:
        shown = (reference[:, 2] > 0) & (reference[:, 0] >= 0) & (reference[:, 1] >= 0)
        shown &= (reference[:, 0] <= hw[1] - 1) & (reference[:, 1] <= hw[0] - 1)
    out, shifts = kps.copy(), np.zeros(2, np.float32)
    height = _extent(kps, (kps[:, 2] > 0) & shown & UPRIGHT, 1)
    side = SIDE_MARGIN * (height[1] - height[0]) if height is not None else 0.0
    for axis, (counted, limit) in enumerate(((CORE, hw[1]), (UPRIGHT, hw[0]))):
        edge = max(margin * limit, side) if axis == 0 else margin * limit
        low, high = edge, limit - 1 - edge
        if reference is not None:  # the reference's own reach is always allowed
            ref = _extent(reference, shown & counted, axis, head_rise)
            if ref is not None:
                low, high = min(low, ref[0]), max(high, ref[1])
        box = _extent(kps, (kps[:, 2] > 0) & shown & counted, axis, head_rise)
        if box is None:
            continue
        lo, hi = box
        if hi - lo <= high - low:
            shift = max(0.0, low - lo) - max(0.0, hi - high)
        elif axis == 1:
            shift = low - lo  # too tall: the head stays in
        else:
            shift = (low + high) / 2 - (lo + hi) / 2
        out[kps[:, 2] > 0, axis] += shift
        shifts[axis] = shift
    return out, shifts


@dataclass
class FrameTarget:
    """One driving frame placed on the canvas: what the generator gets and where its result goes."""

    box: np.ndarray  # (4,) integer box in canvas pixels
    keypoints: np.ndarray  # (137, 3) in model-crop pixels
    label: np.ndarray  # (C, h, w) label map at the model's size
    transforms: np.ndarray | None  # (K, 3) target crop -> each reference crop (pose), None for face


class Placement:
    """Driving frames -> `FrameTarget`s on the canvas of one set of references (see the module docstring).

    `references` are `inference.references.Reference`s prepared with a `size`; only their boxes and
    keypoints are kept. `reset()` before each driving video: its first frame fixes the driving statistics.
    """

    def __init__(self, config, references, *, keep_centered: bool = False):
        from fewshotv2v.semantics.retarget import make_retargeter

        self.config, self.mode = config, config.mode
        self.hw = (config.height, config.width)
        self.canvas_hw: tuple[int, int] = tuple(references[0].photo.shape[:2])
        self.ref_boxes = [np.asarray(r.box, np.float32) for r in references]  # canvas / photo pixels
        self.ref_keypoints = references[0].photo_keypoints  # (137, 3) in canvas pixels
        self.head_rise = (
            head_rise(self.ref_keypoints, references[0].photo_mask) if self.mode == "pose" else 0.0
        )
        kw = {"keep_position": True} if keep_centered else {}
        self.retarget = make_retargeter(self.mode, self.ref_keypoints, **kw)

    def reset(self) -> None:
        self.retarget.reset()

    def __call__(self, kps: np.ndarray, mask: np.ndarray | None, *, label: bool = True) -> FrameTarget:
        """Driving keypoints `(137, 3)` (driving-frame pixels) and the driver's mask (or None). `label`
        False: a blank label map (for a generator that reads only the keypoints), nothing drawn."""
        from fewshotv2v.inference.references import skeleton_mask  # it imports this module

        kc = self.retarget(kps)  # (137, 3) canvas pixels
        shift = np.zeros(2, np.float32)
        if self.mode == "pose":
            kc, shift = keep_inside(
                kc, self.canvas_hw, reference=self.ref_keypoints, head_rise=self.head_rise
            )
            box = self._follow(kc)
        else:
            box = self.ref_boxes[0]
        crop_kps = transform_keypoints(kc, box, self.hw)
        if label:
            crop_mask = None
            if self.config.person_channel is not None:
                drive_box = self._driving_box(box, shift)
                crop_mask = (
                    crop_image(np.asarray(mask, np.float32), drive_box, self.hw)
                    if mask is not None and drive_box is not None
                    else skeleton_mask(crop_kps, self.hw)
                )
            label_map = build_label_map(self.mode, crop_kps, self.hw, config=self.config, mask=crop_mask)
        else:
            label_map = np.zeros((self.config.label_nc, *self.hw), np.float32)
        transforms = None
        if self.mode == "pose":
            transforms = np.stack([box_transform(box, ref_box, self.hw) for ref_box in self.ref_boxes])
        return FrameTarget(box, crop_kps, label_map, transforms)

    def _follow(self, kc: np.ndarray) -> np.ndarray:
        """The reference's crop box moved with the body: by the mean displacement of the body joints
        present in both skeletons (same size, so the model sees the reference's scale)."""
        ref_kps, box = self.ref_keypoints, self.ref_boxes[0]
        common = (ref_kps[:25, 2] > 0) & (kc[:25, 2] > 0)
        if not common.any():
            return box
        dx, dy = np.round((kc[:25][common, :2] - ref_kps[:25][common, :2]).mean(axis=0))
        return box + np.array([dx, dy, dx, dy], np.float32)

    def _driving_box(self, box: np.ndarray, shift) -> np.ndarray | None:
        """The driving-frame box that the uniform part of the retargeting (plus the keep-inside `shift`)
        sends onto the canvas box `box`: crops the driver's mask into the model crop."""
        whole = getattr(self.retarget, "driving_box", lambda hw: None)(self.canvas_hw)
        if whole is None:
            return None
        k = self.canvas_hw[1] / float(whole[2] - whole[0])  # canvas pixels per driving pixel
        dx, dy = (float(v) for v in shift)
        x0, y0 = whole[0] + (box[0] - dx) / k, whole[1] + (box[1] - dy) / k
        return np.array([x0, y0, x0 + (box[2] - box[0]) / k, y0 + (box[3] - box[1]) / k], np.float32)


__all__ = [
    "DEFAULT_SIZE",
    "FACE_FRAME_GROW",
    "MAX_SIZE",
    "FrameTarget",
    "Placement",
    "canvas_scale",
    "cover_box",
    "grow_box",
    "integer_box",
    "keep_inside",
    "scale_keypoints",
]
