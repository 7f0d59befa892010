"""The plate: the reference photo with its person removed, the backdrop of every full-resolution pose frame.

Where the driven person moves away from where the reference stands, the plate shows. A smooth fill
(`models.composite.fill_background`, push-pull) leaves a blurred silhouette of the person's colours; here
the hole is filled with the photo's own texture instead (PatchMatch, Barnes et al. 2009, with Wexler et
al.'s patch voting): grass stays grass, a wall stays a wall, a horizon carries on.

- Coarse to fine, from about `COARSE` pixels on the short side to `FINEST` on the long side: at each
  level every pixel whose 7 x 7 patch touches the hole is matched to a known patch (the coarser level's
  offsets, then propagation from the neighbours' matches and a random search at halving radii), and the
  hole's pixels are the weighted vote of the patches that cover them.
- The coarsest level starts from the hole peeled from its edge inwards (`_peel`): each ring of it takes
  the centre of the source patch nearest to the ring pixel's *known* neighbours, an exact search. Starting
  from the smooth fill instead, the search matched the fill's average colour: on a footballer standing on
  grass before a crowd, the dark seats filled all of him, his legs over the grass too.
- Sources come only from a band around the hole (`BAND` of the long side): the background that carries on
  behind a person is the one beside them, and a far object (a rocket across the photo) has no business in
  the hole.
- At the photo's resolution the finest offsets are applied to the photo itself (each hole pixel the mean
  over its 3 x 3 neighbours' offsets), so the fill has the photo's sharpness, not the search level's.
- The hole is the mask dilated by a few pixels (the person's soft edge is no source), but only where the
  mask is at least `OUTSIDE`, or the ring's pixel looks like the person beside it rather than the
  background (`_looks_like_the_person`: the detector's mask stopped short of a sock), is the fill kept:
  beyond that the photo is its own background, and a filled ring drew a light outline round the person
  in every frame.

Once per set of references, on the CPU (about 2 s for a 512 x 512 photo with its person on 40 % of it, one
thread; `benchmarks/plate.py`), seeded, so the same photo always gives the same plate.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from fewshotv2v.models.composite import box_mean, fill_background, grow_mask

PATCH_RADIUS = 3  # 7 x 7 patches
COARSE = 32  # short side of the coarsest search level, pixels (a 7 x 7 patch is a fifth of it)
FINEST = 192  # ... of the finest (the photo's resolution comes from applying its offsets)
BAND = 0.1  # sources lie within this fraction of the long side from the hole
ITERATIONS = (5, 3)  # at the coarsest level, at the others
OUTSIDE = 0.05  # mask values below this are background: the photo is kept there (no halo)


def _grow(mask: torch.Tensor, r: int) -> torch.Tensor:
    """`mask (h, w)` bool dilated by `r` pixels (a square)."""
    return grow_mask(mask[None, None].float(), r)[0, 0] > 0.5


class _Matches:
    """The current source patch of each target patch and its distance; `consider` keeps better ones.

    patches (C * 49, h * w): every pixel's patch, flattened; targets (n,) flat indices; sy, sx (n,)."""

    def __init__(self, patches, targets, sy, sx, sources, width: int):
        self.patches, self.at_targets = patches, patches[:, targets]
        self.sources, self.width = sources, width
        self.h = sources.shape[0]
        self.sy, self.sx = sy, sx
        self.best = self.distance(sy, sx)

    def distance(self, cy, cx):
        return (self.at_targets - self.patches[:, cy * self.width + cx]).square().sum(0)

    def consider(self, cy, cx) -> None:
        r = PATCH_RADIUS
        cy, cx = cy.clamp(r, self.h - 1 - r), cx.clamp(r, self.width - 1 - r)
        d = self.distance(cy, cx)
        better = self.sources[cy, cx] & (d < self.best)
        self.sy = torch.where(better, cy, self.sy)
        self.sx = torch.where(better, cx, self.sx)
        self.best = torch.where(better, d, self.best)


def _sources(hole: torch.Tensor, allowed: torch.Tensor | None) -> torch.Tensor:
    """(h, w) bool: the centres of the patches a hole (h, w) may be filled from: whole patch known and
    inside the image, within `BAND` of the hole, and (if given) whole patch inside `allowed` (h, w)."""
    h, w = hole.shape
    r = PATCH_RADIUS
    inner = torch.zeros(h, w, dtype=torch.bool)
    inner[r : h - r, r : w - r] = True
    band = max(r + 1, round(BAND * max(h, w)))
    sources = ~_grow(hole, r) & inner & _grow(hole, band)
    return sources if allowed is None else sources & ~_grow(~allowed, r)


def _known(hole: torch.Tensor, allowed: torch.Tensor | None) -> torch.Tensor:
    """(h, w) bool: the pixels a fill may read, outside the hole and (if given) inside `allowed`."""
    return ~hole if allowed is None else ~hole & allowed


def _search_level(img, hole, offsets, generator, iterations: int, allowed=None):
    """One PatchMatch level. img (C, h, w), hole (h, w) bool, offsets (2, h, w) long (source - target) or
    None (random start), allowed (h, w) bool or None (see `_sources`) -> (img with its hole voted,
    offsets)."""
    c, h, w = img.shape
    r = PATCH_RADIUS
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    sources = _sources(hole, allowed)
    targets = _grow(hole, r)  # patches that touch the hole (at the photo's edge too: zero-padded)
    ty, tx = ys[targets], xs[targets]
    pool_y, pool_x = ys[sources], xs[sources]
    n = len(ty)
    if n == 0 or len(pool_y) == 0:
        return img, torch.zeros(2, h, w, dtype=torch.long)

    def random_sources(count: int):
        k = torch.randint(len(pool_y), (count,), generator=generator)
        return pool_y[k], pool_x[k]

    if offsets is None:
        sy, sx = random_sources(n)
    else:
        sy = (ty + offsets[0, ty, tx]).clamp(r, h - 1 - r)
        sx = (tx + offsets[1, ty, tx]).clamp(r, w - 1 - r)
        bad = ~sources[sy, sx]
        sy[bad], sx[bad] = random_sources(int(bad.sum()))
    index = torch.full((h, w), -1, dtype=torch.long)  # target pixel -> its row in (ty, tx)
    index[ty, tx] = torch.arange(n)
    steps = ((0, 1), (1, 0), (0, -1), (-1, 0))
    for it in range(iterations):
        match = _Matches(F.unfold(img[None], 2 * r + 1, padding=r)[0], ty * w + tx, sy, sx, sources, w)
        for _ in range(2):  # propagation: a neighbour's match, shifted by the step between them
            for dy, dx in steps if it % 2 == 0 else steps[::-1]:
                j = index[(ty - dy).clamp(0, h - 1), (tx - dx).clamp(0, w - 1)]
                has, j = j >= 0, j.clamp(min=0)
                match.consider(
                    torch.where(has, match.sy[j] + dy, match.sy), torch.where(has, match.sx[j] + dx, match.sx)
                )
        radius = max(h, w) // 2
        while radius >= 1:  # random search around the current match
            jitter = torch.randint(-radius, radius + 1, (2, n), generator=generator)
            match.consider(match.sy + jitter[0], match.sx + jitter[1])
            radius //= 2
        sy, sx, best = match.sy, match.sx, match.best
        # Voting: each hole pixel is the weighted mean of what the patches covering it say.
        weight = torch.exp(-best / (best.median() + 1e-6))
        total = torch.zeros(c, h * w)
        weights = torch.zeros(h * w)
        for dy in range(-r, r + 1):
            for dx in range(-r, r + 1):
                y, x = ty + dy, tx + dx
                on = (y >= 0) & (y < h) & (x >= 0) & (x < w)  # a patch at the edge votes inside only
                at = (y * w + x)[on]
                total.index_add_(1, at, img[:, sy[on] + dy, sx[on] + dx] * weight[on])
                weights.index_add_(0, at, weight[on])
        voted = (total / weights.clamp(min=1e-9)).view(c, h, w)
        img = torch.where((weights > 0).view(h, w) & hole, voted, img)
    offsets = torch.zeros(2, h, w, dtype=torch.long)
    offsets[0, ty, tx], offsets[1, ty, tx] = sy - ty, sx - tx
    return img, offsets


def _peel(img: torch.Tensor, hole: torch.Tensor, allowed: torch.Tensor | None = None):
    """The coarsest level's start. img (C, h, w), hole (h, w) bool, allowed (see `_sources`) -> (img with
    the hole filled, offsets (2, h, w) long, source - target, zero outside the hole).

    Ring by ring from the hole's edge inwards, each ring pixel takes the centre pixel of the source patch
    (whole patch known, within `BAND` of the hole) whose pixels best match the ring pixel's patch where it
    is known: the mean squared difference over the known pixels only, searched exhaustively (the coarsest
    level has a few thousand pixels). Without sources the smooth fill (from the allowed pixels), and zero
    offsets."""
    c, h, w = img.shape
    r = PATCH_RADIUS
    offsets = torch.zeros(2, h, w, dtype=torch.long)
    sources = _sources(hole, allowed)
    if not sources.any():  # the smooth fill, from the allowed pixels only
        smooth = fill_background(img[None], (~_known(hole, allowed))[None, None].float(), dilate=0)[0]
        return torch.where(hole, smooth, img), offsets
    src_y, src_x = torch.nonzero(sources, as_tuple=True)

    def unfold(t: torch.Tensor) -> torch.Tensor:  # (C, h, w) -> every pixel's patch, (C * 49, h * w)
        return F.unfold(t[None], 2 * r + 1, padding=r)[0]

    bank = unfold(img)[:, src_y * w + src_x].T  # (sources, C * 49)
    img = img.clone()
    filled = ~hole
    while not filled.all():
        ring = ~filled & _grow(filled, 1)
        ty, tx = torch.nonzero(ring, as_tuple=True)
        at = ty * w + tx
        known = unfold(filled[None].float())[:, at].T.repeat(1, c)  # (ring, C * 49): 1 where known
        target = unfold(img * filled)[:, at].T  # zero where unknown
        # sum over known of (target - source)^2, expanded: no (ring, sources, C * 49) tensor
        d = (known * target.square()).sum(1, keepdim=True) - 2 * target @ bank.T + known @ bank.square().T
        best = (d / known.sum(1, keepdim=True).clamp(min=1)).argmin(1)
        sy, sx = src_y[best], src_x[best]
        img[:, ty, tx] = img[:, sy, sx]
        offsets[0, ty, tx], offsets[1, ty, tx] = sy - ty, sx - tx
        filled = filled | ring
    return img, offsets


def _levels(hw: tuple[int, int]) -> list[tuple[int, int]]:
    """Search sizes, coarse to fine, halving from `FINEST` (never above the photo) until the short side
    is at most `COARSE`.

    On the long side instead, a wide photo's coarsest level was 15 x 24: its bottom rows could centre no
    whole 7 x 7 patch, so the grass at a footballer's feet was no source for the legs over it."""
    h, w = hw
    scale = min(1.0, FINEST / max(h, w))
    sizes = []
    while True:
        smallest = 2 * PATCH_RADIUS + 2
        sizes.append((max(smallest, round(h * scale)), max(smallest, round(w * scale))))
        if min(sizes[-1]) <= COARSE or scale < 1e-3:
            return sizes[::-1]
        scale /= 2


def fill_plate(
    image: torch.Tensor,
    mask: torch.Tensor,
    *,
    dilate: int = 3,
    seed: int = 0,
    sources: torch.Tensor | None = None,
) -> torch.Tensor:
    """`image (1, C, H, W)` with the area of `mask (1, 1, H, W)` (1 = the person; dilated by `dilate`
    pixels for the search) filled from the photo's texture (see the module docstring). `sources (1, 1, H,
    W)`, if given, is where it may copy from (above 0.5; e.g. one body part, for what an arm hid). Same
    device and dtype as `image`; the pixels where the mask is below `OUTSIDE` are unchanged, but for
    those of the dilation ring that look like the person (`_looks_like_the_person`)."""
    device, dtype = image.device, image.dtype
    photo = image[0].detach().float().cpu()
    person = mask.detach().float().cpu().clamp(0, 1)
    hole = _grow(person[0, 0] > 0.5, dilate)
    allowed = None if sources is None else sources[0, 0].detach().float().cpu() > 0.5
    if not hole.any() or hole.all():  # nothing to fill, or nothing to fill it from
        return fill_background(image, mask, dilate=dilate)
    generator = torch.Generator().manual_seed(seed)
    img = offsets = previous = None
    for hw in _levels(tuple(hole.shape)):
        level = F.interpolate(photo[None], size=hw, mode="area")[0]
        level_hole = F.interpolate(hole[None, None].float(), size=hw, mode="area")[0, 0] > 0
        level_allowed = None  # a level pixel is allowed where all of it is
        if allowed is not None:
            level_allowed = F.interpolate(allowed[None, None].float(), size=hw, mode="area")[0, 0] > 0.999
        if img is None:  # the coarsest level starts from the hole peeled inwards
            start, offsets = _peel(level, level_hole, level_allowed)
        else:
            start = F.interpolate(img[None], size=hw, mode="bilinear", align_corners=False)[0]
            # the coarser offsets, scaled to this level
            up = F.interpolate(offsets[None].float(), size=hw, mode="nearest")[0]
            offsets = torch.stack([up[0] * hw[0] / previous[0], up[1] * hw[1] / previous[1]]).round().long()
        iterations = ITERATIONS[0] if img is None else ITERATIONS[1]
        img, offsets = _search_level(
            torch.where(level_hole, start, level), level_hole, offsets, generator, iterations, level_allowed
        )
        previous = hw
    filled = _apply_offsets(photo, hole, _known(hole, allowed), offsets, previous, img)
    # The dilation keeps the person's soft edge out of the sources; where the mask is (all but) zero the
    # photo's own background is kept, or its fill would draw a halo round the person in every frame,
    # unless the pixel looks like the person: an edge the mask left out, which would stay as an outline.
    outside = (person[0, 0] < OUTSIDE) & ~_looks_like_the_person(photo, person[0, 0] > 0.5, hole, dilate + 2)
    return torch.where(outside, photo, filled)[None].to(device, dtype)


def _looks_like_the_person(photo: torch.Tensor, person: torch.Tensor, hole: torch.Tensor, reach: int):
    """(H, W) bool: the pixels of the hole's dilation ring (in `hole`, not in `person`; both (H, W) bool)
    whose colour is nearer to the person's mean colour within `reach` pixels than to the background's
    (outside the hole) there: the person's own edge where the detector's mask stops short of it, which
    stayed on the plate as an outline of where the person stood (a strip of a footballer's blue sock,
    the dark gap between his feet). photo (C, H, W)."""
    ring = hole & ~person
    if not ring.any():
        return ring
    means = []
    for region in (person, ~hole):
        weight = box_mean(region[None, None].float(), reach)[0]  # (1, H, W): its share of the window
        means.append((box_mean((photo * region)[None], reach)[0] / weight.clamp(min=1e-6), weight[0] > 0))
    (person_mean, near_person), (background_mean, near_background) = means
    nearer = (photo - person_mean).square().sum(0) < (photo - background_mean).square().sum(0)
    return ring & nearer & near_person & near_background


def _apply_offsets(photo, hole, known, offsets, level_hw, level_img) -> torch.Tensor:
    """The photo's own pixels through the finest level's offsets, scaled to its resolution; each hole pixel
    is the mean over its 3 x 3 neighbours' offsets (which smooths the seams between copied blocks). Where
    none lands on a `known` pixel ((H, W) bool: outside the hole, and allowed), the search level's own
    (upsampled) result."""
    _, big_h, big_w = photo.shape
    up = F.interpolate(offsets[None].float(), size=(big_h, big_w), mode="nearest")[0]
    oy = (up[0] * big_h / level_hw[0]).round().long()
    ox = (up[1] * big_w / level_hw[1]).round().long()
    hy, hx = torch.nonzero(hole, as_tuple=True)
    total = torch.zeros(photo.shape[0], len(hy))
    count = torch.zeros(len(hy))
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            ny, nx = (hy + dy).clamp(0, big_h - 1), (hx + dx).clamp(0, big_w - 1)
            cy, cx = (hy + oy[ny, nx]).clamp(0, big_h - 1), (hx + ox[ny, nx]).clamp(0, big_w - 1)
            lands = known[cy, cx]
            total += photo[:, cy, cx] * lands
            count += lands
    coarse = F.interpolate(level_img[None], size=(big_h, big_w), mode="bilinear", align_corners=False)[0]
    out = photo.clone()
    out[:, hy, hx] = torch.where(count > 0, total / count.clamp(min=1), coarse[:, hy, hx])
    return out


__all__ = ["fill_plate"]
