"""The warp composite of SPEC §7: reference texture carried by a flow, a filled background, H's output.

    person_t = warp(ref person mask, flow) * coverage        where the reference person lands in the frame
    base     = person_t * warp(ref, flow) + (1 - person_t) * background
    out      = base + (1 - m) * r                             m: learned trust, r: H's output

H's output is read as a *residual* over the base, h = base + r, so `out = m * base + (1 - m) * h` as SPEC
§7 writes it. H's last conv starts at zero (r = 0): an untrained model is exactly the prior's warp, and at
full resolution the photo's detail is kept wherever the correction is zero (only r is upsampled).

`background` is the reference with its person removed (`fill_background`, a classical fill of the masked
area) seen through the camera map between the reference crop and the target crop (`similarity_flow`): so
where the person moved away the photo's background shows, not the person's old position. Face mode has
no person mask: base = warp(ref, flow). The same functions run at the model's size (training, and inside
the generator) and at the photo's own resolution (`inference.framing`), so what is trained is what runs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from fewshotv2v.models.flow import warp


def grow_mask(mask: torch.Tensor, r: int) -> torch.Tensor:
    """`mask (B, C, H, W)` dilated by `r` pixels: the maximum over a (2r + 1)-pixel square, taken as a
    column then a row. The one dilation of the project: person masks, coverages, fill holes. The same
    values as `F.max_pool2d(mask, 2 * r + 1, stride=1, padding=r)`, about 20 times faster on a CPU
    (`_window_max`: CPU max pooling with stride 1 took 50-100 ms a pass at 1024 px)."""
    if r <= 0:
        return mask
    return _window_max(_window_max(mask, -2, r), -1, r)


def _window_max(x: torch.Tensor, dim: int, r: int) -> torch.Tensor:
    """The maximum over the (2r + 1) neighbours along `dim` (-2 or -1), beyond the edge ignored: by
    doubling (the maximum over 1, 2, 4, ... pixels, then two overlapping windows), log2(r) passes."""
    n, width = x.shape[dim], 2 * r + 1
    padded = F.pad(x, (r, r) if dim == -1 else (0, 0, r, r), value=float("-inf"))
    span, size = padded, 1  # span[i] = max of padded[i : i + size]
    while 2 * size <= width:
        length = span.shape[dim] - size
        span = torch.maximum(span.narrow(dim, 0, length), span.narrow(dim, size, length))
        size *= 2
    if size == width:
        return span.narrow(dim, 0, n)
    return torch.maximum(span.narrow(dim, 0, n), span.narrow(dim, width - size, n))


def box_mean(x: torch.Tensor, r: int) -> torch.Tensor:
    """`x (B, C, H, W)` averaged over a (2r + 1)-pixel square, only the pixels inside the image counted
    (`F.avg_pool2d(x, 2 * r + 1, stride=1, padding=r, count_include_pad=False)`, to float rounding), by
    running sums: its cost does not grow with r (the 2D pooling's grew with r squared: 1.4 s at 1024 px
    for a reference's arms)."""
    if r <= 0:
        return x
    dtype, x = x.dtype, x.double()  # the running sums in float64: float32's lost 3e-5 over 1000 pixels
    for dim in (-2, -1):
        n = x.shape[dim]
        total = F.pad(x, (r + 1, r) if dim == -1 else (0, 0, r + 1, r)).cumsum(dim)
        window = total.narrow(dim, 2 * r + 1, n) - total.narrow(dim, 0, n)  # sum of x[i - r : i + r + 1]
        i = torch.arange(n, device=x.device, dtype=x.dtype)
        count = torch.clamp(i + r, max=n - 1) - torch.clamp(i - r, min=0) + 1
        x = window / (count.view(-1, 1) if dim == -2 else count)
    return x.to(dtype)


def fill_background(image: torch.Tensor, mask: torch.Tensor, *, dilate: int = 3) -> torch.Tensor:
    """Fill the masked area of `image (B, C, H, W)` from its surroundings (push-pull pyramid).

    `mask (B, 1, H, W)` in [0, 1], 1 = to be filled (the person), dilated by `dilate` pixels first so the
    person's anti-aliased edge goes too. Each pyramid level averages the known pixels (weights = 1 - mask);
    coming back up, a pixel keeps its own value where it was known and takes the coarser estimate where it
    was not. Smooth, cheap (a few poolings), and exact outside the dilated mask.
    """
    image = image.float()
    mask = mask.float().clamp(0, 1)
    mask = grow_mask(mask, dilate)
    known = 1.0 - mask  # (B, 1, H, W)
    levels = [(image * known, known)]
    while min(levels[-1][0].shape[-2:]) > 2:
        x, w = levels[-1]
        levels.append((F.avg_pool2d(x, 2, ceil_mode=True), F.avg_pool2d(w, 2, ceil_mode=True)))
    x, w = levels[-1]
    # Coarsest level: the mean of what is known (the image mean when nothing is).
    total = w.sum(dim=(2, 3), keepdim=True)
    mean = torch.where(
        total > 1e-6, x.sum(dim=(2, 3), keepdim=True) / total.clamp_min(1e-6), image.mean((2, 3), True)
    )
    estimate = torch.where(w > 1e-3, x / w.clamp_min(1e-3), mean)
    for x, w in reversed(levels[:-1]):
        up = F.interpolate(estimate, size=x.shape[-2:], mode="bilinear", align_corners=False)
        # A level's average is exact where its weight is 1; blend towards the coarser guess as it drops.
        alpha = w.clamp(0, 1)
        estimate = torch.where(w > 1e-3, x / w.clamp_min(1e-3), up) * alpha + up * (1 - alpha)
    return estimate


def similarity_flow(transform: torch.Tensor | None, size: tuple[int, int], *, device=None) -> torch.Tensor:
    """Flow `(B, 2, H, W)` of the camera map between a target crop and a reference crop.

    `transform (B, 3)` = (a, cx, cy): target-crop pixel p maps to reference-crop pixel a * p + c (both crops
    of one static scene: the scale and offset between their crop boxes). flow(p) = a * p + c - p.
    """
    h, w = size
    if transform is None:
        return torch.zeros(1, 2, h, w, device=device)
    transform = transform.float()
    ys = torch.arange(h, device=transform.device, dtype=torch.float32)
    xs = torch.arange(w, device=transform.device, dtype=torch.float32)
    a, cx, cy = (transform[:, i].view(-1, 1, 1) for i in range(3))
    fx = (a - 1) * xs.view(1, 1, w) + cx  # (B, 1, W)
    fy = (a - 1) * ys.view(1, h, 1) + cy  # (B, H, 1)
    return torch.stack([fx.expand(-1, h, w), fy.expand(-1, h, w)], dim=1)


def warp_base(
    ref_image: torch.Tensor,
    flow: torch.Tensor,
    ref_person: torch.Tensor | None = None,
    background: torch.Tensor | None = None,
    coverage: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """`base` of the composite and `person_t` (see the module docstring).

    ref_image (B, 3, H, W), flow (B, 2, H, W) pixels, ref_person (B, 1, H, W) or None (face), background
    (B, 3, H, W) already in target-crop coordinates, coverage (B, 1, H, W) or None: where the target body
    is (the prior's); person_t is kept only there, since far from every body part the flow is zero and
    would bring back the person at their old place. Returns (base (B, 3, H, W), person_t or None).
    """
    if ref_person is None or background is None:
        return warp(ref_image, flow), None
    warped = warp(torch.cat([ref_image, ref_person.to(ref_image.dtype)], dim=1), flow)
    return over_background(warped, background, coverage)


def over_background(
    warped: torch.Tensor, background: torch.Tensor, coverage: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The warped reference and its warped person mask `warped (B, 3 + 1, H, W)` laid over `background`:
    (base (B, 3, H, W), person_t (B, 1, H, W)), person_t kept only where `coverage` says the target body
    is. Shared by `warp_base` (model size) and the full-resolution composite (`inference.framing`)."""
    person_t = warped[:, 3:].clamp(0, 1)
    if coverage is not None:
        person_t = person_t * coverage.to(person_t.dtype).clamp(0, 1)
    return person_t * warped[:, :3] + (1 - person_t) * background.to(warped.dtype), person_t


def composite(base: torch.Tensor, trust: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
    """out = base + (1 - m) * r, with m = `trust (B, 1, H, W)` and r = H's `residual (B, 3, H, W)`,
    clamped to the image range [-1, 1]."""
    return (base + (1 - trust) * residual).clamp(-1, 1)


__all__ = [
    "box_mean",
    "composite",
    "fill_background",
    "grow_mask",
    "over_background",
    "similarity_flow",
    "warp_base",
]
