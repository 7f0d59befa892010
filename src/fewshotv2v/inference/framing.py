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
from fewshotv2v.models import body_parts
from fewshotv2v.models.composite import box_mean, composite, fill_background, grow_mask, over_background
from fewshotv2v.models.prior import parts_coverage, parts_radius
from fewshotv2v.modes import get_mode
from fewshotv2v.semantics.crops import crop_image, transform_keypoints

_FEATHER = {"pose": 0.03, "face": 0.12}  # paste-back feather, fraction of the crop side
# The body behind a moved arm (`_arms_layer`), in fractions of the crop height: the arms' area is grown by
# ARM_MARGIN and smoothed as much (1.5 % took the left of the astronaut's mission patch with her moved
# arm; 0.8 % left a hand-shaped fill on a chest), and filled with the texture of each part behind it
ARM_MARGIN = 0.01
CLEAR = 0.1  # below this the arms' area is clear of the arm: the fill's sources


def opened(mask: torch.Tensor, r: int) -> torch.Tensor:
    """`mask (B, 1, H, W)` eroded, then dilated, by `r` pixels (a morphological opening): what is thinner
    than 2r + 1 pixels goes, the rest keeps its shape (never above the input)."""
    return grow_mask(-grow_mask(-mask, r), r)


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
        # Full-resolution reference crops (1, 3 | 9, Hr, Wr): the image; pose: + person mask, where its arms
        # lie, and the arms' layer (`_arms_layer`: image and mask with the arms taken off the body).
        self.ref_crops, self.part_radius = [], []
        for r in references:
            box_hw = (int(r.box[3] - r.box[1]), int(r.box[2] - r.box[0]))
            # Face: beyond the photo the crop continues its border (the warp samples there as the head
            # moves: black there darkened the top rows, or drew a black arc above the hair). Pose: the
            # person mask is 0 there, and the plate shows instead.
            image = crop_image(r.photo, r.box, box_hw, edge=not self.has_mask)
            crop = image_to_tensor(image)[None].to(device)
            if self.has_mask:
                mask = torch.from_numpy(crop_image(r.photo_mask, r.box, box_hw))[None, None].float()
                kps = transform_keypoints(r.photo_keypoints, r.box, box_hw)
                arms, armless, radius = _arms_layer(crop, mask.to(device), kps)
                crop = torch.cat([crop, mask.to(device), arms, armless], dim=1)
                self.part_radius.append(radius * (self.hw[0] / box_hw[0]))  # (1, P) in model-crop pixels
            self.ref_crops.append(crop)
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
        """The generator's output (model size) composited at canvas resolution -> (1, 3, Hc, Wc). Only the
        part of the target box that lies on the canvas is computed (the box of a half-body photo reaches
        far below it: half of a 1024 px pose frame's work was never shown)."""
        h, w = self.hw
        box = target.box
        box_hw = (int(box[3] - box[1]), int(box[2] - box[0]))
        x0, y0 = int(box[0]), int(box[1])
        hc, wc = self.canvas_hw
        cx0, cy0, cx1, cy1 = max(0, x0), max(0, y0), min(wc, x0 + box_hw[1]), min(hc, y0 + box_hw[0])
        if cx0 >= cx1 or cy0 >= cy1:  # the box is off the canvas
            return self.backdrop.clone()
        window = (slice(cy0 - y0, cy1 - y0), slice(cx0 - x0, cx1 - x0))  # of the box, on the canvas

        def upsampled(field: torch.Tensor) -> torch.Tensor:  # model size -> the box, cut to the window
            return F.interpolate(field.float(), size=box_hw, mode="bilinear", align_corners=False)[
                ..., window[0], window[1]
            ]

        flow = out.flow_ref.float()  # (1, 2, h, w) target-crop -> reference-crop pixels (model size)
        ys = torch.arange(h, device=flow.device, dtype=torch.float32).view(1, h, 1)
        xs = torch.arange(w, device=flow.device, dtype=torch.float32).view(1, 1, w)
        # Sampling positions in normalised reference-crop coordinates (pixel-edge convention, so they
        # hold at any resolution), upsampled to the box at canvas resolution.
        grid = torch.stack(
            [(xs + flow[:, 0] + 0.5) * (2.0 / w) - 1.0, (ys + flow[:, 1] + 0.5) * (2.0 / h) - 1.0], dim=1
        )
        grid = upsampled(grid).permute(0, 2, 3, 1)  # (1, vh, vw, 2)
        k = int(out.ref_index[0])
        sampled = F.grid_sample(
            self.ref_crops[k], grid, mode="bilinear", padding_mode="border", align_corners=False
        )
        backdrop = self.backdrop[..., cy0:cy1, cx0:cx1]  # (1, 3, vh, vw)
        if self.has_mask:  # only where the target body is (no ghost at its old place)
            kps = torch.from_numpy(np.asarray(target.keypoints, np.float32))[None].to(sampled.device)
            arms = parts_coverage(kps, self.hw, radius=self.part_radius[k], only=body_parts.ARMS)
            sampled = self._arms_over_body(sampled, upsampled(_soft_grow(arms)))
            coverage = upsampled(out.coverage) if out.coverage is not None else None
            # Where the blended part transforms fold the flow over beside a limb, the reference's mask
            # edge is sampled a second time: slivers about one model pixel wide that showed as thin
            # contours round a moved leg or arm. An opening of that width removes them.
            r = max(1, round(0.5 * box_hw[0] / h))
            alpha = opened(sampled[:, 3:], r)
            if k == 0:
                # Where the canvas photo's own pixels stay where they are, they are the frame: a soft
                # mask edge laid over the plate would mix the plate into it (a light rim round the hair
                # and shoulders of a still body, the driver's frame 0 no longer the photo).
                still = self._stillness(grid, (cx0, cy0))
                alpha = alpha + (1 - alpha) * still
            sampled = torch.cat([sampled[:, :3], alpha], dim=1)
            base = over_background(sampled, backdrop, coverage)[0]
        else:
            base = sampled
        up = upsampled(torch.cat([out.mask_ref, out.raw_image], dim=1))
        crop = composite(base, 1 - up[:, :1], up[:, 1:])  # the photo's detail + the upsampled correction
        weight = _feather(box_hw, _FEATHER[self.mode], crop.device)[..., window[0], window[1]]
        crop = weight * crop + (1 - weight) * backdrop
        frame = self.backdrop.clone()
        frame[..., cy0:cy1, cx0:cx1] = crop
        return frame

    def _arms_over_body(self, sampled: torch.Tensor, arms: torch.Tensor) -> torch.Tensor:
        """The reference crop's 9 channels sampled through the flow, and where the target's arms lie
        (grown by `_soft_grow`, at the window's size) -> (1, 4, vh, vw) image and mask: the photo where the
        target's arms cover a pixel as much as the reference's arms covered its source (a still arm, an
        arm that moved there, or no arm at all), the arms' layer where the target's arm has left it (the
        body behind a moved arm, not a copy of the arm)."""
        photo, arms_at_source, armless = sampled[:, :4], sampled[:, 4:5], sampled[:, 5:9]
        # a ramp between a quarter and three quarters of the ratio: an arm is there or not (half-and-half
        # blends of the photo and the fill smudged the hand)
        ratio = torch.where(arms_at_source > 1e-3, arms / arms_at_source.clamp(min=1e-3), 1.0)
        keep = ((ratio - 0.25) * 2).clamp(0, 1)
        return keep * photo + (1 - keep) * armless

    def _stillness(self, grid: torch.Tensor, origin: tuple[int, int]) -> torch.Tensor:
        """(1, 1, vh, vw) in [0, 1]: 1 where the sampling `grid (1, vh, vw, 2)` (normalised coordinates of
        reference 0's crop) of the canvas window at `origin` (x, y) reads the canvas pixel it writes to
        (within half a pixel), 0 from 1.5 pixels away."""
        vh, vw = grid.shape[1:3]
        rx0, ry0, rx1, ry1 = (float(v) for v in self.placement.ref_boxes[0])  # its photo is the canvas
        src_x = rx0 + (grid[..., 0] + 1) / 2 * (rx1 - rx0) - 0.5  # canvas pixel centres
        src_y = ry0 + (grid[..., 1] + 1) / 2 * (ry1 - ry0) - 0.5
        ys = torch.arange(vh, device=grid.device, dtype=grid.dtype).view(1, vh, 1) + float(origin[1])
        xs = torch.arange(vw, device=grid.device, dtype=grid.dtype).view(1, 1, vw) + float(origin[0])
        distance = torch.sqrt((src_x - xs).square() + (src_y - ys).square())
        return (1.5 - distance).clamp(0, 1)[:, None]


def _soft_grow(cover: torch.Tensor) -> torch.Tensor:
    """`cover (B, 1, H, W)` grown by `ARM_MARGIN` of its height (fingers and sleeves stick out of the
    parts' radii), then smoothed over as much again: a ramp, not the plateau edge of a plain dilation,
    which drew the filled area as a slab with straight sides."""
    r = max(1, round(ARM_MARGIN * cover.shape[-2]))
    grown = grow_mask(cover, r)
    return box_mean(grown, r)


def _arms_layer(image: torch.Tensor, mask: torch.Tensor, kps: np.ndarray):
    """A reference crop's arms and the body without them, at the crop's resolution.

    image (1, 3, H, W) in [-1, 1], mask (1, 1, H, W) the person, kps (137, 3) in crop pixels -> (where the
    arms lie (1, 1, H, W), the arms' layer (1, 4, H, W), the parts' radii (1, P) in crop pixels). The
    layer's image is the photo with the arms' pixels on the person filled from the body under them; its
    mask keeps those pixels only where another part lies under them (an arm across the chest leaves
    chest; an arm held out leaves background)."""
    kps_t = torch.from_numpy(np.asarray(kps, np.float32))[None].to(image.device)
    size = tuple(image.shape[-2:])
    radius = parts_radius(kps_t, size, mask=mask)
    arms, body, *behind = parts_coverage(
        kps_t, size, radius=radius, groups=[body_parts.ARMS, body_parts.NOT_ARMS, *body_parts.BEHIND_ARMS]
    )
    arms = _soft_grow(arms)
    # What lies behind the arm: each part it may lie on (torso, head, legs: `BEHIND_ARMS`, and the person
    # no part reaches) filled with the texture of its own pixels clear of the arm (arms below CLEAR, 2 px
    # inside the person: no background mixed in; `inference.plate` with the part as the only source),
    # weighted by where each part lies. A fill from the whole person averaged coat, shirt and jeans into a
    # grey slab (or tinted a chest with the hair), and the texture fill from all of it copied the jeans
    # over the coat; a smooth fill from each part's own pixels drew a striped jersey's red and blue as a
    # purple patch at the shoulders.
    hole = (arms > CLEAR).float()
    clear_of_edge = -grow_mask(-mask, 2)  # 2 px inside the person
    clear = clear_of_edge * (1 - hole)
    filled, total = torch.zeros_like(image), torch.zeros_like(mask)
    for part in [*behind, 1 - body]:  # (1, 1, H, W) each; last: what no part reaches (a suit without hips)
        known = clear * (part > 0.5)
        if known.sum() < 1:  # the part is missing, or all behind the arm
            continue
        filled = filled + part * fill_plate(image, hole, dilate=0, sources=known)
        total = total + part
    filled = torch.where(total > 1e-3, filled / total.clamp(min=1e-3), image)
    fill = ((arms - 0.2) / 0.3).clamp(0, 1) * mask  # full from half of the grown area: no faint fingers
    layer_image = fill * filled + (1 - fill) * image
    # The person stays in the layer where another part lies under the arm, or where the person goes on
    # past the arm (within two arm widths: a half-body photo's suit, which no part reaches, beside her
    # arm; the plate showed through it); an arm held out over the background leaves background.
    reach = max(1, round(2 * float(radius[0, list(body_parts.ARMS)].max())))
    beside = grow_mask(clear_of_edge * (arms < CLEAR).float(), reach)
    layer_mask = mask * (1 - arms * (1 - torch.maximum(body, beside)))
    return arms, torch.cat([layer_image, layer_mask], dim=1), radius


__all__ = ["Composer", "opened"]
