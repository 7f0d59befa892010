"""Full-resolution compositing for models with the warp composite (SPEC §7).

The generator works in a crop at the model's size (e.g. 128 x 64); the user sees the reference photo at its
own resolution (capped by `size`). Where each driving frame's crop goes on that canvas is decided by the
producer stage (`inference.placement`, numpy only); this module is the torch side:

- **canvas**: the first reference photo. pose: its background with the person filled in from the photo's
  own texture (the *plate*, `inference.plate`) is the backdrop of every frame; face: the photo itself.
- **compose**: the generator's flow, mask and H output (model size) are upsampled to the target box at
  canvas resolution; the reference is sampled at *its own* resolution through the flow, laid over the
  plate with the warped person mask, corrected by H's residual where the learned mask distrusts the warp,
  and pasted into the canvas with a feathered edge. So the texture comes from the photo, not from the
  generator's resolution.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
import torch.nn.functional as F

from fewshotv2v.inference.placement import FrameTarget, Placement
from fewshotv2v.inference.plate import fill_plate
from fewshotv2v.models.composite import composite, fill_background, over_background
from fewshotv2v.modes import get_mode
from fewshotv2v.semantics.crops import crop_image

_FEATHER = {"pose": 0.03, "face": 0.12}  # paste-back feather, fraction of the crop side


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


class Composer:
    """Canvas, plate and per-reference full-resolution crops of one set of references (see the module
    docstring). `references` are `inference.references.Reference`s prepared with a `size`. Its
    `placement` (numpy) places the driving frames; `compose` pastes the generator's output."""

    def __init__(self, config, references, device, *, keep_centered: bool = False, plate: str = "patches"):
        from fewshotv2v.inference.compose import image_to_tensor

        self.config, self.mode, self.device = config, config.mode, device
        self.has_mask = get_mode(config.mode).has_person_mask  # pose: the person is cut out of the photo
        self.hw = (config.height, config.width)
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
        self.canvas_box = np.asarray(ref0.box, np.float32)  # reference 0's crop: its photo is the canvas
        if self.has_mask:
            mask0 = torch.from_numpy(ref0.photo_mask)[None, None].to(device)
            dilate = max(2, round(0.01 * max(self.canvas_hw)))
            if plate == "patches":  # the photo's own texture where the person was (`inference.plate`)
                self.backdrop = fill_plate(canvas_t, mask0, dilate=dilate)
            else:  # "smooth": push-pull, a blurred silhouette of the surroundings
                self.backdrop = fill_background(canvas_t, mask0, dilate=dilate)
        else:
            self.backdrop = canvas_t
        self.placement = Placement(config, references, keep_centered=keep_centered)

    @property
    def output_hw(self) -> tuple[int, int]:
        return self.canvas_hw

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
            alpha = opened(sampled[:, 3:], r)
            if int(out.ref_index[0]) == 0:
                # Where the canvas photo's own pixels stay where they are, they are the frame: a soft
                # mask edge laid over the plate would mix the plate into it (a light rim round the hair
                # and shoulders of a still body, the driver's frame 0 no longer the photo).
                still = self._stillness(grid, box)
                alpha = alpha + (1 - alpha) * still
            sampled = torch.cat([sampled[:, :3], alpha], dim=1)
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

    def _stillness(self, grid: torch.Tensor, box: np.ndarray) -> torch.Tensor:
        """(1, 1, bh, bw) in [0, 1]: 1 where the sampling `grid (1, bh, bw, 2)` (normalised coordinates of
        reference 0's crop) reads the canvas pixel it writes to (within half a pixel), 0 from 1.5 pixels
        away."""
        bh, bw = grid.shape[1:3]
        rx0, ry0, rx1, ry1 = (float(v) for v in self.canvas_box)
        src_x = rx0 + (grid[..., 0] + 1) / 2 * (rx1 - rx0) - 0.5  # canvas pixel centres
        src_y = ry0 + (grid[..., 1] + 1) / 2 * (ry1 - ry0) - 0.5
        ys = torch.arange(bh, device=grid.device, dtype=grid.dtype).view(1, bh, 1) + float(box[1])
        xs = torch.arange(bw, device=grid.device, dtype=grid.dtype).view(1, 1, bw) + float(box[0])
        distance = torch.sqrt((src_x - xs).square() + (src_y - ys).square())
        return (1.5 - distance).clamp(0, 1)[:, None]

    def _paste(self, crop: torch.Tensor, box: np.ndarray) -> torch.Tensor:
        frame = self.backdrop.clone()
        hc, wc = self.canvas_hw
        x0, y0, x1, y1 = (int(v) for v in box)
        cx0, cy0, cx1, cy1 = max(0, x0), max(0, y0), min(wc, x1), min(hc, y1)
        if cx0 < cx1 and cy0 < cy1:
            frame[..., cy0:cy1, cx0:cx1] = crop[..., cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0]
        return frame


__all__ = ["Composer", "opened"]
