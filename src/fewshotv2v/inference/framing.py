"""Full-resolution framing and compositing for models with the warp composite (SPEC §7).

The generator works in a crop at the model's size (e.g. 128 x 64); the user sees the reference photo at its
own resolution (capped by `size`):

- **canvas**: the first reference photo. pose: its background with the person filled in (the *plate*,
  `models.composite.fill_background`) is the backdrop of every frame; face: the photo itself.
- **target box** (pose): driving keypoints are retargeted onto the reference body *in canvas pixels*
  (global motion relative to the first driving frame, scaled to the reference; `keep_centered` removes
  it), shifted so the body stays inside the canvas, and the model crop is placed around them, so a
  driver who walks across the frame walks across the photo and never out of the crop. face: the
  reference's face box, fixed.
- **compose**: the generator's flow, mask and H output (model size) are upsampled to the target box at
  canvas resolution; the reference is sampled at *its own* resolution through the flow, laid over the
  plate with the warped person mask, corrected by H's residual where the learned mask distrusts the warp,
  and pasted into the canvas with a feathered edge. So the texture comes from the photo, not from the
  generator's resolution.

Boxes are integer-aligned in canvas pixels, so a crop pixel is a canvas pixel (no resampling at paste).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from fewshotv2v.models.composite import composite, fill_background, over_background
from fewshotv2v.modes import get_mode
from fewshotv2v.semantics import keypoints as kp
from fewshotv2v.semantics.crops import box_transform, crop_image, transform_keypoints
from fewshotv2v.semantics.label_maps import build_label_map

DEFAULT_SIZE = 1024  # long side of the output canvas (the photo is never upscaled)
MAX_SIZE = 4096  # larger canvases are refused: memory grows with the square
_FEATHER = {"pose": 0.03, "face": 0.12}  # paste-back feather, fraction of the crop side
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


def keep_inside(
    kps: np.ndarray, hw: tuple[int, int], margin: float = 0.02, *, only: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Shift keypoints `(137, 3)` so the box of the present ones stays inside the canvas (a `margin`
    fraction from the edges), the head's top included (it lies above the eyes and ears: one nose-to-neck
    distance above the nose). A body wider than the canvas is centred; one taller than it keeps its head
    in and lets its feet leave at the bottom (a standing driver on a crouching or cropped reference: the
    face matters more than the shoes). `only (137,)` bool: the points that count (those the reference
    photo shows: a half-body photo's missing legs may leave the canvas). Returns (keypoints, shift (2,))."""
    ok = (kps[:, 2] > 0) & (only if only is not None else True)
    shifts = np.zeros(2, np.float32)
    if not ok.any():
        return kps, shifts
    out = kps.copy()
    top = float(kps[ok, 1].min())
    if kps[kp.NOSE, 2] > 0 and kps[kp.NECK, 2] > 0:  # the top of the head
        top = min(top, float(2 * kps[kp.NOSE, 1] - kps[kp.NECK, 1]))
    for axis, limit in ((0, hw[1]), (1, hw[0])):
        lo, hi = (top if axis == 1 else float(kps[ok, axis].min())), float(kps[ok, axis].max())
        pad = margin * limit
        if hi - lo <= limit - 2 * pad:
            shift = max(0.0, pad - lo) - max(0.0, hi - (limit - 1 - pad))
        elif axis == 1:
            shift = pad - lo  # too tall: the head stays in
        else:
            shift = (limit - 1) / 2 - (lo + hi) / 2
        out[kps[:, 2] > 0, axis] += shift
        shifts[axis] = shift
    return out, shifts


def _crop_tensor(t: torch.Tensor, box: np.ndarray) -> torch.Tensor:
    """`t (1, C, H, W)` cropped to an integer box, edges replicated where the box leaves the image."""
    h, w = t.shape[-2:]
    x0, y0, x1, y1 = (int(v) for v in box)
    cx0, cy0, cx1, cy1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
    if cx0 >= cx1 or cy0 >= cy1:  # entirely outside: the nearest edge pixel
        cx0, cx1 = min(max(0, x0), w - 1), min(max(0, x0), w - 1) + 1
        cy0, cy1 = min(max(0, y0), h - 1), min(max(0, y0), h - 1) + 1
    part = t[..., cy0:cy1, cx0:cx1]
    pads = (cx0 - x0, x1 - cx1, cy0 - y0, y1 - cy1)
    return F.pad(part, pads, mode="replicate") if any(pads) else part


def opened(mask: torch.Tensor, r: int) -> torch.Tensor:
    """`mask (B, 1, H, W)` eroded, then dilated, by `r` pixels (a morphological opening): what is thinner
    than 2r + 1 pixels goes, the rest keeps its shape (never above the input)."""
    k = 2 * r + 1
    return F.max_pool2d(-F.max_pool2d(-mask, k, stride=1, padding=r), k, stride=1, padding=r)


@functools.lru_cache(maxsize=8)  # per box size: the pose box keeps its size, the face box is fixed
def _feather(hw: tuple[int, int], fraction: float, device) -> torch.Tensor:
    """`(1, 1, h, w)` weights: 1 inside, a linear ramp to 0 over `fraction` of the side at the edges."""

    def ramp(n: int) -> torch.Tensor:
        width = max(1.0, fraction * n)
        i = torch.arange(n, device=device, dtype=torch.float32)
        return (torch.minimum(i + 1, n - i) / width).clamp(0, 1)

    return (ramp(hw[0])[:, None] * ramp(hw[1])[None, :])[None, None]


@dataclass
class FrameTarget:
    """One driving frame placed on the canvas: what the generator gets and where its result goes."""

    box: np.ndarray  # (4,) integer box in canvas pixels
    keypoints: np.ndarray  # (137, 3) in model-crop pixels
    label: np.ndarray  # (C, h, w) label map at the model's size
    transforms: np.ndarray | None  # (K, 3) target crop -> each reference crop (pose), None for face


class Composer:
    """Canvas, plate and per-reference full-resolution crops of one set of references (see the module
    docstring). `references` are `inference.references.Reference`s prepared with a `size`."""

    def __init__(self, config, references, device, *, keep_centered: bool = False):
        from fewshotv2v.inference.compose import image_to_tensor
        from fewshotv2v.semantics.retarget import make_retargeter

        self.config, self.mode, self.device = config, config.mode, device
        self.has_mask = get_mode(config.mode).has_person_mask  # pose: the person is cut out of the photo
        self.hw = (config.height, config.width)
        self.refs = references
        ref0 = references[0]
        self.canvas = ref0.photo  # uint8 (Hc, Wc, 3)
        self.canvas_hw = self.canvas.shape[:2]
        canvas_t = image_to_tensor(self.canvas)[None].to(device)  # (1, 3, Hc, Wc) in [-1, 1]
        # Full-resolution reference crops (1, 3 or 4, Hr, Wr): image (+ person mask in pose mode).
        self.ref_crops = []
        for r in references:
            box_hw = (int(r.box[3] - r.box[1]), int(r.box[2] - r.box[0]))
            crop = image_to_tensor(crop_image(r.photo, r.box, box_hw))[None]
            if self.has_mask:
                mask = torch.from_numpy(crop_image(r.photo_mask, r.box, box_hw))[None, None]
                crop = torch.cat([crop, mask.float()], dim=1)
            self.ref_crops.append(crop.to(device))
        if self.has_mask:
            mask0 = torch.from_numpy(ref0.photo_mask)[None, None].to(device)
            dilate = max(2, round(0.01 * max(self.canvas_hw)))
            self.backdrop = fill_background(canvas_t, mask0, dilate=dilate)  # the plate
        else:
            self.backdrop = canvas_t
        kw = {"keep_position": True} if keep_centered else {}
        self.retarget = make_retargeter(self.mode, ref0.photo_keypoints, **kw)

    @property
    def output_hw(self) -> tuple[int, int]:
        return self.canvas_hw

    # ---- driving frame -> generator input ---------------------------------------------------------
    def target(self, kps: np.ndarray, mask: np.ndarray | None, *, label: bool = True) -> FrameTarget:
        """Driving keypoints `(137, 3)` (driving-frame pixels) and the driver's mask (or None). `label`
        False: a blank label map (for a generator that reads only the keypoints), nothing drawn."""
        from fewshotv2v.inference.references import skeleton_mask

        kc = self.retarget(kps)  # (137, 3) canvas pixels
        shift = np.zeros(2, np.float32)
        if self.mode == "pose":
            kc, shift = keep_inside(kc, self.canvas_hw, only=self.refs[0].photo_keypoints[:, 2] > 0)
            box = self._follow(kc)
        else:
            box = self.refs[0].box
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
            transforms = np.stack([box_transform(box, r.box, self.hw) for r in self.refs])
        return FrameTarget(box, crop_kps, label_map, transforms)

    def _follow(self, kc: np.ndarray) -> np.ndarray:
        """The reference's crop box moved with the body: by the mean displacement of the body joints
        present in both skeletons (same size, so the model sees the reference's scale)."""
        ref_kps, box = self.refs[0].photo_keypoints, self.refs[0].box
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

    # ---- generator output -> canvas frame ---------------------------------------------------------
    def empty_frame(self) -> torch.Tensor:
        """(1, 3, Hc, Wc) in [-1, 1]: the plate (pose: nobody there) or the photo (face)."""
        return self.backdrop.clone()

    def compose(self, out, target: FrameTarget) -> torch.Tensor:
        """The generator's output (model size) composited at canvas resolution -> (1, 3, Hc, Wc)."""
        h, w = self.hw
        box = target.box
        box_hw = (int(box[3] - box[1]), int(box[2] - box[0]))
        flow = out.flow_ref.float()  # (1, 2, h, w) target-crop -> reference-crop pixels (model size)
        ys = torch.arange(h, device=flow.device, dtype=torch.float32).view(1, h, 1)
        xs = torch.arange(w, device=flow.device, dtype=torch.float32).view(1, 1, w)
        # Sampling positions in normalised reference-crop coordinates (pixel-edge convention, so they
        # hold at any resolution), upsampled to the box at canvas resolution.
        grid = torch.stack(
            [(xs + flow[:, 0] + 0.5) * (2.0 / w) - 1.0, (ys + flow[:, 1] + 0.5) * (2.0 / h) - 1.0], dim=1
        )
        grid = F.interpolate(grid, size=box_hw, mode="bilinear", align_corners=False).permute(0, 2, 3, 1)
        ref_crop = self.ref_crops[int(out.ref_index[0])]
        sampled = F.grid_sample(ref_crop, grid, mode="bilinear", padding_mode="border", align_corners=False)
        backdrop = _crop_tensor(self.backdrop, box)  # (1, 3, bh, bw)
        if self.has_mask:  # only where the target body is (no ghost at its old place)
            coverage = out.coverage
            if coverage is not None:
                coverage = F.interpolate(coverage.float(), size=box_hw, mode="bilinear", align_corners=False)
            # Where the blended part transforms fold the flow over beside a limb, the reference's mask
            # edge is sampled a second time: slivers about one model pixel wide that showed as thin
            # contours round a moved leg or arm. An opening of that width removes them.
            r = max(1, round(0.5 * box_hw[0] / h))
            sampled = torch.cat([sampled[:, :3], opened(sampled[:, 3:], r)], dim=1)
            base = over_background(sampled, backdrop, coverage)[0]
        else:
            base = sampled
        up = F.interpolate(
            torch.cat([out.mask_ref.float(), out.raw_image.float()], dim=1),
            size=box_hw,
            mode="bilinear",
            align_corners=False,
        )
        crop = composite(base, 1 - up[:, :1], up[:, 1:])  # the photo's detail + the upsampled correction
        weight = _feather(box_hw, _FEATHER[self.mode], crop.device)
        crop = weight * crop + (1 - weight) * backdrop
        return self._paste(crop, box)

    def _paste(self, crop: torch.Tensor, box: np.ndarray) -> torch.Tensor:
        frame = self.backdrop.clone()
        hc, wc = self.canvas_hw
        x0, y0, x1, y1 = (int(v) for v in box)
        cx0, cy0, cx1, cy1 = max(0, x0), max(0, y0), min(wc, x1), min(hc, y1)
        if cx0 < cx1 and cy0 < cy1:
            frame[..., cy0:cy1, cx0:cx1] = crop[..., cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0]
        return frame


__all__ = ["DEFAULT_SIZE", "MAX_SIZE", "Composer", "FrameTarget", "canvas_scale", "integer_box"]
