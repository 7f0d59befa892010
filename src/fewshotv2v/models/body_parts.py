"""Body parts of the pose flow prior (SPEC §7): which keypoints drive each part, where it lies.

`PARTS` lists the 14 parts of `fewshotv2v.models.prior.pose_prior_flow` with their parent, the keypoints
their similarity is fitted to, their bones (segments in the driving frame) and their radius as a fraction
of the person's height. The functions here measure, all vectorised over batch, bones and pixels: the
distance from every pixel to every part (`part_distance`), the person's height (`person_size`) and the
limbs' half-widths in a reference person mask (`mask_radius`).
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import Tensor

from fewshotv2v.semantics import keypoints as kp

FAR = 1e6  # "no segment" distance in pixels: its weight and coverage underflow to exactly 0


def _hand(wrist: int, first: int) -> tuple[tuple[int, ...], tuple[tuple[int, int], ...]]:
    """Hand part: fit points (wrist + 21 hand points), segments wrist -> knuckle -> fingertip per finger."""
    segs = []
    for chain in kp.HAND_FINGERS:
        segs += [(wrist, first + chain[1]), (first + chain[1], first + chain[4])]
    return (wrist, *range(first, first + kp.NUM_HAND)), tuple(segs)


R_HAND, L_HAND = _hand(kp.R_WRIST, kp.RIGHT_HAND.start), _hand(kp.L_WRIST, kp.LEFT_HAND.start)
TORSO_QUAD = (kp.R_SHOULDER, kp.L_SHOULDER, kp.L_HIP, kp.R_HIP)
CROWN = kp.NUM_KEYPOINTS  # virtual point above the nose, nose + CROWN_RISE (nose - neck): the head's top
# 0.5 stopped the head's bone at the forehead: the top of a big hairdo lay beyond its radius, no part
# explained it, and it stayed where it was when the head moved (a wisp of the astronaut's hair at her
# first place when she walks)
CROWN_RISE = 0.8
HEAD = (kp.NOSE, kp.R_EYE, kp.L_EYE, kp.R_EAR, kp.L_EAR, kp.NECK, *range(kp.FACE.start, kp.FACE.stop))

# (name, parent index, fit points, target segments, radius as a fraction of the person's size).
# Parents come before their children. Radii follow the proportions of the synthetic people
# (`data.synthetic._BODY`: limb radii 0.022-0.045 of the height, head half-width 0.054).
PARTS = (
    ("torso", -1, (kp.NECK, *TORSO_QUAD, kp.MID_HIP),
     tuple(zip(TORSO_QUAD, TORSO_QUAD[1:] + TORSO_QUAD[:1], strict=True))
     + ((kp.NECK, kp.MID_HIP), (kp.NECK, kp.R_SHOULDER), (kp.NECK, kp.L_SHOULDER)), 0.03),
    ("head", 0, HEAD, ((kp.NECK, kp.NOSE), (kp.NOSE, CROWN), (kp.NOSE, kp.R_EYE), (kp.NOSE, kp.L_EYE),
                        (kp.R_EYE, kp.R_EAR), (kp.L_EYE, kp.L_EAR)), 0.05),
    ("r_upper_arm", 0, (kp.R_SHOULDER, kp.R_ELBOW), ((kp.R_SHOULDER, kp.R_ELBOW),), 0.03),
    ("r_forearm", 2, (kp.R_ELBOW, kp.R_WRIST), ((kp.R_ELBOW, kp.R_WRIST),), 0.025),
    ("r_hand", 3, *R_HAND, 0.02),
    ("l_upper_arm", 0, (kp.L_SHOULDER, kp.L_ELBOW), ((kp.L_SHOULDER, kp.L_ELBOW),), 0.03),
    ("l_forearm", 5, (kp.L_ELBOW, kp.L_WRIST), ((kp.L_ELBOW, kp.L_WRIST),), 0.025),
    ("l_hand", 6, *L_HAND, 0.02),
    ("r_thigh", 0, (kp.R_HIP, kp.R_KNEE), ((kp.R_HIP, kp.R_KNEE),), 0.045),
    ("r_shin", 8, (kp.R_KNEE, kp.R_ANKLE), ((kp.R_KNEE, kp.R_ANKLE),), 0.035),
    ("r_foot", 9, (kp.R_ANKLE, kp.R_HEEL, kp.R_BIG_TOE, kp.R_SMALL_TOE),
     ((kp.R_ANKLE, kp.R_HEEL), (kp.R_ANKLE, kp.R_BIG_TOE), (kp.R_ANKLE, kp.R_SMALL_TOE)), 0.025),
    ("l_thigh", 0, (kp.L_HIP, kp.L_KNEE), ((kp.L_HIP, kp.L_KNEE),), 0.045),
    ("l_shin", 11, (kp.L_KNEE, kp.L_ANKLE), ((kp.L_KNEE, kp.L_ANKLE),), 0.035),
    ("l_foot", 12, (kp.L_ANKLE, kp.L_HEEL, kp.L_BIG_TOE, kp.L_SMALL_TOE),
     ((kp.L_ANKLE, kp.L_HEEL), (kp.L_ANKLE, kp.L_BIG_TOE), (kp.L_ANKLE, kp.L_SMALL_TOE)), 0.025),
)  # fmt: skip
DEPTH = 3  # longest parent chain (torso -> upper arm -> forearm -> hand)
LIMBS = tuple(i for i, p in enumerate(PARTS) if len(p[3]) == 1)  # single-bone parts
HEAD_PART = next(i for i, p in enumerate(PARTS) if p[0] == "head")
# The arms (upper arms, forearms, hands): in front of the body, so where one moves away the body behind it
# shows (`inference.framing`'s arms layer); the others are the body they lie on.
ARMS = tuple(i for i, p in enumerate(PARTS) if p[0].endswith(("upper_arm", "forearm", "hand")))
NOT_ARMS = tuple(i for i in range(len(PARTS)) if i not in ARMS)
_NAMES = {p[0]: i for i, p in enumerate(PARTS)}
# What an arm may lie in front of, each filled from its own pixels: torso, head, each leg.
BEHIND_ARMS = tuple(
    tuple(_NAMES[n] for n in group)
    for group in (("torso",), ("head",), ("r_thigh", "r_shin", "r_foot"), ("l_thigh", "l_shin", "l_foot"))
)
# Parts whose radius is measured in the reference mask (`mask_radius`): the limbs across their bone, and
# the head across its upward bone (nose -> crown), so that hair wider than a head moves with it.
MEASURED = (*LIMBS, HEAD_PART)
MEASURED_BONES = (*(PARTS[i][3][0] for i in LIMBS), (kp.NOSE, CROWN))


@functools.lru_cache(maxsize=8)
def tables(device: torch.device) -> dict[str, Tensor]:
    """Index tensors of PARTS: fit membership (P, 137), parents (P,), segments (S, 2), their part (S,) and
    (S, P) one-hot, radius fractions (P,), the measured parts' bones (M, 2), part indices (M,) and which
    of them are limbs (M,), which parts are arms (P,). Cached per device (read-only); made outside
    inference mode so that a cache filled under `torch.inference_mode` (synthesis) still serves autograd
    (training)."""
    with torch.inference_mode(False):
        return _make_tables(device)


def _make_tables(device: torch.device) -> dict[str, Tensor]:
    members = torch.zeros(len(PARTS), kp.NUM_KEYPOINTS, device=device)
    for i, part in enumerate(PARTS):
        members[i, list(part[2])] = 1.0
    segs = [(s, i) for i, part in enumerate(PARTS) for s in part[3]]
    return {
        "members": members,
        "parent": torch.tensor([max(p[1], 0) for p in PARTS], device=device),
        "seg": torch.tensor([s for s, _ in segs], device=device),
        "seg_part": torch.tensor([i for _, i in segs], device=device),
        "seg_onehot": F.one_hot(torch.tensor([i for _, i in segs]), len(PARTS)).float().to(device),
        "radius": torch.tensor([p[4] for p in PARTS], device=device),
        "bone": torch.tensor(MEASURED_BONES, device=device),
        "measured": torch.tensor(MEASURED, device=device),
        "is_limb": torch.tensor([i in LIMBS for i in MEASURED], device=device),  # (M,) not the head
        "is_arm": torch.tensor([float(i in ARMS) for i in range(len(PARTS))], device=device),  # (P,)
    }


def part_distance(
    xy: Tensor, valid: Tensor, tab: dict[str, Tensor], x: Tensor, y: Tensor, crown: Tensor | None = None
) -> Tensor:
    """Distance (B, P, h, w) in pixels from each sample (x (1, w), y (h, 1)) to each part's target segments
    (FAR: none valid); 0 inside the torso quadrilateral. Evaluated in row blocks to bound memory.
    xy (B, 137, 2), valid (B, 137); the virtual CROWN point is added here (`with_crown`)."""
    b, s = xy.shape[0], tab["seg"].shape[0]
    xy, valid = with_crown(xy, valid, crown)  # (B, 138, 2), (B, 138)
    p0, p1 = xy[:, tab["seg"][:, 0]], xy[:, tab["seg"][:, 1]]  # (B, S, 2)
    seg_ok = (valid[:, tab["seg"][:, 0]] & valid[:, tab["seg"][:, 1]])[..., None]  # (B, S, 1)
    # a missing segment becomes a far-away point (cheaper than masking every pixel); its part is masked
    # below from part_ok
    p0, ab = torch.where(seg_ok, p0, 1e5), torch.where(seg_ok, p1 - p0, 0.0)
    part_ok = (seg_ok[..., 0].float() @ tab["seg_onehot"] > 0)[..., None, None]  # (B, P, 1, 1)
    length = ab.norm(dim=-1)  # (B, S)
    along = torch.where(
        length[..., None] > 1e-6, ab / length.clamp(min=1e-6)[..., None], ab.new_tensor([1.0, 0])
    )
    ex, ey = along[..., 0, None, None], along[..., 1, None, None]  # (B, S, 1, 1) unit bone direction
    length = length[..., None, None]
    quad = xy[:, list(TORSO_QUAD)]  # (B, 4, 2)
    quad_ok = valid[:, list(TORSO_QUAD)].all(-1)  # (B,)
    h, w = y.shape[0], x.shape[1]
    rows = max(1, min(h, (1 << 22) // max(1, b * s * w)))
    index = tab["seg_part"][None, :, None, None]
    out = []
    for r0 in range(0, h, rows):
        yy = y[r0 : r0 + rows]  # (R, 1)
        dx = x - p0[..., 0, None, None]  # (B, S, 1, W)
        dy = yy - p0[..., 1, None, None]  # (B, S, R, 1)
        u = dx * ex + dy * ey  # (B, S, R, W): coordinate along the bone, 0 at p0, length at p1
        v = dy * ex - dx * ey  # across the bone
        d2 = (u - torch.minimum(u.clamp(min=0), length)).square() + v.square()  # (beyond the ends)^2 + v^2
        part = d2.new_full((b, len(PARTS), *d2.shape[2:]), FAR**2)
        part = (part.scatter_reduce(1, index.expand_as(d2), d2, "amin") + 1e-12).sqrt()  # (B, P, R, W)
        part = torch.where(part_ok, part, FAR)
        # even-odd rule against the 4 edges of the torso quadrilateral
        qa, qb = quad[..., None, None, :], quad.roll(-1, 1)[..., None, None, :]  # (B, 4, 1, 1, 2)
        crosses = (qa[..., 1] > yy) != (qb[..., 1] > yy)  # (B, 4, R, 1)
        dqy = qb[..., 1] - qa[..., 1]
        x_cross = qa[..., 0] + (yy - qa[..., 1]) * (qb[..., 0] - qa[..., 0]) / torch.where(dqy == 0, 1.0, dqy)
        inside = ((crosses & (x < x_cross)).sum(1) % 2 == 1) & quad_ok[:, None, None]  # (B, R, W)
        out.append(torch.cat([torch.where(inside, 0.0, part[:, 0])[:, None], part[:, 1:]], 1))
    return torch.cat(out, 2)


# Bones and their length as a fraction of the standing height (adult proportions, close to
# `data.synthetic._BODY`).
SIZE_BONES = (
    ((kp.NECK, kp.MID_HIP), 0.30),
    ((kp.R_SHOULDER, kp.R_ELBOW), 0.18), ((kp.L_SHOULDER, kp.L_ELBOW), 0.18),
    ((kp.R_ELBOW, kp.R_WRIST), 0.15), ((kp.L_ELBOW, kp.L_WRIST), 0.15),
    ((kp.R_HIP, kp.R_KNEE), 0.24), ((kp.L_HIP, kp.L_KNEE), 0.24),
    ((kp.R_KNEE, kp.R_ANKLE), 0.235), ((kp.L_KNEE, kp.L_ANKLE), 0.235),
)  # fmt: skip


def person_size(xy: Tensor, valid: Tensor) -> Tensor:
    """Person height estimate (B,) in pixels of the driving frame: the largest bone length / its fraction
    of the height (foreshortening only shortens bones, so the max is the least foreshortened one); the
    larger side of the box of the valid points when no bone is visible; 0 without any point."""
    bones = torch.tensor([b for b, _ in SIZE_BONES], device=xy.device)  # (L, 2)
    frac = torch.tensor([f for _, f in SIZE_BONES], device=xy.device)
    length = (xy[:, bones[:, 1]] - xy[:, bones[:, 0]]).norm(dim=-1)  # (B, L)
    length = torch.where(valid[:, bones[:, 0]] & valid[:, bones[:, 1]], length, 0.0)
    from_bones = (length / frac).amax(-1)
    lo = torch.where(valid[..., None], xy, torch.inf).amin(1)  # (B, 2)
    hi = torch.where(valid[..., None], xy, -torch.inf).amax(1)
    extent = torch.where(valid.any(1), (hi - lo).amax(-1), 0.0)
    return torch.where(from_bones > 0, from_bones, extent)


def with_crown(xy: Tensor, valid: Tensor, crown: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """xy (B, 137, 2), valid (B, 137) with the virtual CROWN point appended (index 137): `crown (B, 2)`
    when given (the head's top as the prior measured it, `head_top`), else the nose + CROWN_RISE x the
    neck -> nose bone; the head's upward bone runs from the nose to it."""
    if crown is None:
        crown = (1 + CROWN_RISE) * xy[:, kp.NOSE] - CROWN_RISE * xy[:, kp.NECK]  # (B, 2)
    ok = valid[:, kp.NOSE] & valid[:, kp.NECK]
    return torch.cat([xy, crown[:, None]], 1), torch.cat([valid, ok[:, None]], 1)


def head_top(xy: Tensor, valid: Tensor, mask: Tensor) -> Tensor:
    """(B, 2): where a reference's head ends above its nose, measured in its person `mask (B, 1, H, W)`.

    The topmost person pixels above the nose within 1.5 nose-to-neck lengths of it across and at most
    three lengths up (as `inference.placement.head_rise` frames the canvas; across, the middle of those
    within a quarter length of the top), when that lies beyond the usual crown (nose + CROWN_RISE x the
    neck -> nose bone, which is kept otherwise). A head bent forward has a short neck -> nose bone and
    its hair far above the nose: with the usual crown a footballer driven upright lost the top of his
    head."""
    default, _ = with_crown(xy, valid)
    default = default[:, -1]  # (B, 2)
    _, _, h, w = mask.shape
    nose, neck = xy[:, kp.NOSE], xy[:, kp.NECK]  # (B, 2)
    length = (nose - neck).norm(dim=-1)  # (B,)
    ys = torch.arange(h, device=mask.device, dtype=xy.dtype).view(1, h, 1)
    xs = torch.arange(w, device=mask.device, dtype=xy.dtype).view(1, 1, w)
    lx, ly = nose[:, 0].view(-1, 1, 1), nose[:, 1].view(-1, 1, 1)
    reach = length.view(-1, 1, 1)
    window = ((xs - lx).abs() <= 1.5 * reach) & (ys <= ly) & (ys >= ly - 3 * reach)  # (B, H, W)
    person = (mask[:, 0] > 0.5) & window
    top = torch.where(person, ys.expand_as(person), torch.inf).flatten(1).amin(1)  # (B,) row, inf: none
    rise = torch.where(torch.isfinite(top), nose[:, 1] - top, 0.0)
    ok = valid[:, kp.NOSE] & valid[:, kp.NECK] & (length > 1e-3) & (rise > CROWN_RISE * length)
    # across: the middle of the person's pixels in the top quarter neck-nose length (the hair's top
    # may lie to one side of the nose, on a bent or turned head)
    band = person & (ys <= top.view(-1, 1, 1) + 0.25 * reach)
    count = band.flatten(1).sum(1).clamp(min=1)
    across = (band * xs).flatten(1).sum(1) / count
    measured = torch.stack([across, nose[:, 1] - rise], -1)
    return torch.where(ok[:, None], measured, default)


def with_measured(radius: Tensor, mask: Tensor, ref_xy: Tensor, ref_ok: Tensor, tab, scale=1.0) -> Tensor:
    """Part radii `radius (B, P)` with the `MEASURED` parts' taken from the reference person `mask`
    (`mask_radius`). `scale (B, M)`: reference length / target length of each measured part, when the
    radii are the target's (the prior): measured in the reference, mapped back by it. At least 1 px."""
    measured = mask_radius(mask, ref_xy, ref_ok, radius[:, tab["measured"]] * scale, tab)
    return radius.index_copy(1, tab["measured"], (measured / scale).clamp(min=1.0))


def mask_radius(mask: Tensor, ref_xy: Tensor, ref_ok: Tensor, default: Tensor, tab: dict[str, Tensor]):
    """Half-widths (B, M) in reference pixels of the `MEASURED` parts (limbs, head) in the reference
    person mask (B, 1, H, W).

    At 30 / 50 / 70 % along each part's bone, walk along the bone's normal on both sides (16 steps up to
    2x the default radius) and count the consecutive samples inside the mask (> 0.5); per position take
    the thinner side (the other may run into the torso, or a raised hand beside the head; inside all the
    way on both sides, a limb lies across the body: the default), then the median over positions.
    Clamped to [0.5, 2] x the default; the default is kept where the bone is missing or not inside the
    mask.
    """
    _, _, h, w = mask.shape
    ref_xy, ref_ok = with_crown(ref_xy, ref_ok)
    a, b = ref_xy[:, tab["bone"][:, 0]], ref_xy[:, tab["bone"][:, 1]]  # (B, M, 2)
    ok = ref_ok[:, tab["bone"][:, 0]] & ref_ok[:, tab["bone"][:, 1]]
    along = b - a
    length = along.norm(dim=-1, keepdim=True)
    normal = torch.stack([-along[..., 1], along[..., 0]], -1) / length.clamp(min=1e-6)  # (B, L, 2)
    t = torch.tensor([0.3, 0.5, 0.7], device=mask.device)
    # the head's across its forehead and temples, as low as when its bone rose half the neck-nose length
    # (measured higher, where the skull narrows, it came out below the head's half-width)
    t = torch.where(tab["is_limb"][:, None], t, t * 0.5 / CROWN_RISE)  # (L, 3)
    centre = a[:, :, None] + t[None, :, :, None] * along[:, :, None]  # (B, L, 3, 2)
    steps = 16
    k = torch.arange(steps + 1, device=mask.device) / steps  # (K,), 0 = the bone itself
    side = torch.tensor([-1.0, 1.0], device=mask.device)
    reach = 2 * default  # (B, L)
    offset = side[:, None] * k  # (2, K) in units of reach
    pos = centre[:, :, :, None, None] + (
        offset[..., None] * normal[:, :, None, None, None] * reach[..., None, None, None, None]
    )  # (B, L, 3, 2, K, 2)
    grid = torch.stack([pos[..., 0] / max(w - 1, 1), pos[..., 1] / max(h - 1, 1)], -1) * 2 - 1
    inside = F.grid_sample(mask.float(), grid.flatten(1, 4)[:, None], align_corners=True)[:, 0, 0] > 0.5
    inside = inside.reshape(pos.shape[:-1]).float()  # (B, L, 3, 2, K)
    # consecutive inside samples; the edge lies on average half a step past the last one
    run = (inside[..., 1:].cumprod(-1).sum(-1) + 0.5) * (reach / steps)[..., None, None]  # (B, L, 3, 2)
    radius = run.amin(-1)  # (B, L, 3)
    # Inside all the way on both sides: the limb lies in front of the body (an arm across the chest) and
    # the mask cannot tell its width; the default it is (measured, it was the 2x clamp, and the arm took
    # a band of the chest with it). Not the head's: there it is hair, which is the head's.
    across_body = (inside[..., 1:].amin((-1, -2)) > 0) & tab["is_limb"][None, :, None]  # (B, L, 3)
    radius = torch.where(across_body, default[..., None], radius).median(-1).values  # (B, L)
    ok = ok & (inside[..., 0].amin((-1, -2)) > 0) & (length[..., 0] > 1e-3)
    return torch.where(ok, radius.clamp(0.5 * default, 2 * default), default)
