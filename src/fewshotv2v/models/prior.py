"""Keypoint flow prior: an analytic reference warp computed from the keypoints (SPEC §7).

Both priors return a *backward* flow ``(B, 2, H, W)`` in pixels ``(x, y)``, the convention of
`fewshotv2v.models.flow.warp`: for each target (driving) pixel ``p`` the flow says where to sample the
reference, so ``warp(ref_image, flow)`` is the reference re-posed into the driving pose. Keypoints are the
canonical ``(B, 137, 3)`` layout of `fewshotv2v.semantics.keypoints` (``(x, y, conf)``, conf 0 = missing)
in pixels of the ``size = (H, W)`` grid the flow is wanted at.

- face: a thin-plate spline through the 70 face landmarks (drive -> ref) on top of their least-squares
  similarity, pinned to that similarity by anchors on the grid border (`face_prior_flow`);
- pose: 2D linear-blend skinning of similarity transforms of 14 body parts (`pose_prior_flow`).

Everything is float32, vectorised over batch, points, parts and pixels, and runs on the keypoints' device.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import Tensor

from fewshotv2v.errors import ConfigError, InputError
from fewshotv2v.semantics import keypoints as kp

_FAR = 1e6  # "no segment" distance in pixels: its weight and coverage underflow to exactly 0
_FALLOFF = 0.5  # the flow: 1 up to a part's radius r, then a Gaussian fall-off of sigma _FALLOFF * r
_EDGE = 0.15  # the coverage: a logistic edge at d = r, of width _EDGE * r


# ------------------------------------------------------------------------------------------ helpers
def _as_batch(kps, name: str) -> Tensor:
    """(137, 3) or (B, 137, 3), any float dtype / array -> float32 (B, 137, 3)."""
    kps = torch.as_tensor(kps)
    if kps.ndim == 2:
        kps = kps[None]
    if kps.ndim != 3 or kps.shape[1:] != (kp.NUM_KEYPOINTS, 3):
        raise InputError(f"{name}: expected (B, {kp.NUM_KEYPOINTS}, 3) keypoints, got {tuple(kps.shape)}")
    return kps.float()


def _as_mask(mask, batch: int, size: tuple[int, int], device) -> Tensor:
    """Person mask (H, W), (B, H, W) or (B | 1, 1, H, W), any resolution -> float32 (B, 1, H, W) at size."""
    mask = torch.as_tensor(mask).to(device=device, dtype=torch.float32)
    mask = mask[None, None] if mask.ndim == 2 else mask[:, None] if mask.ndim == 3 else mask
    if mask.ndim != 4 or mask.shape[1] != 1 or mask.shape[0] not in (1, batch):
        raise InputError(f"ref_mask: expected (B, 1, H, W) with B = {batch}, got {tuple(mask.shape)}")
    if tuple(mask.shape[-2:]) != tuple(size):
        mask = F.interpolate(mask, size=tuple(size), mode="bilinear", align_corners=False)
    return mask.expand(batch, -1, -1, -1)


def _split(kps: Tensor, threshold: float) -> tuple[Tensor, Tensor]:
    """(B, N, 3) -> positions (B, N, 2) with missing points zeroed (no NaN leaks), valid (B, N) bool."""
    xy = kps[..., :2]
    valid = (kps[..., 2] >= threshold) & torch.isfinite(xy).all(-1) & torch.isfinite(kps[..., 2])
    return torch.where(valid[..., None], xy, torch.zeros_like(xy)), valid


def _similarity(src: Tensor, dst: Tensor, weight: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Weighted least-squares similarity dst ~ a * src + b in complex form (Umeyama in 2D, no reflection).

    src, dst (..., N, 2); weight (..., N) in {0, 1}. Returns a (..., 2) = (scale cos, scale sin),
    b (..., 2), ok (...) = the fit is usable (see below). Where not ok: a = 1 and b = the mean
    translation (or 0 without any point), so the result is always a usable transform.
    """
    n = weight.sum(-1, keepdim=True)  # (..., 1)
    safe_n = n.clamp(min=1.0)
    ms = (src * weight[..., None]).sum(-2) / safe_n  # (..., 2)
    md = (dst * weight[..., None]).sum(-2) / safe_n
    s = (src - ms[..., None, :]) * weight[..., None]  # centred, zero where not weighted
    d = dst - md[..., None, :]
    # sum d * conj(s): real = dx sx + dy sy, imag = dy sx - dx sy; denominator sum |s|^2
    real = (d[..., 0] * s[..., 0] + d[..., 1] * s[..., 1]).sum(-1)
    imag = (d[..., 1] * s[..., 0] - d[..., 0] * s[..., 1]).sum(-1)
    den = (s * s).sum((-1, -2))
    a = torch.stack([real, imag], -1) / den.clamp(min=1e-6)[..., None]
    # usable: two points at least, spread by >= 0.5 px rms, and a scale change within 16x either way
    # (beyond that the points are collapsed or wrong, and the caller's fallback is safer)
    scale = a.norm(dim=-1)
    ok = (n[..., 0] >= 2) & (den >= 0.25 * n[..., 0]) & (scale > 1 / 16) & (scale < 16)
    a = torch.where(ok[..., None], a, torch.tensor([1.0, 0.0], device=a.device))
    b = md - _rotate(a, ms)
    return a, b, ok


def _rotate(a: Tensor, z: Tensor) -> Tensor:
    """Complex product a * z for (..., 2) tensors (scale + rotation)."""
    real = a[..., 0] * z[..., 0] - a[..., 1] * z[..., 1]
    return torch.stack([real, a[..., 1] * z[..., 0] + a[..., 0] * z[..., 1]], -1)


def _grid(h: int, w: int, device, stride: int = 1) -> tuple[Tensor, Tensor]:
    """Sample coordinates x (1, w') and y (h', 1), float32, spanning pixel centres 0..W-1 and 0..H-1
    (pixel (i, j) is at x = j, y = i): every pixel for stride 1, else about every `stride`-th pixel, laid
    out so that `_upsample` (bilinear, align_corners=True) puts each sample back at its own position."""

    def axis(n: int) -> Tensor:
        count = n if stride <= 1 else -(-(n - 1) // stride) + 1
        return torch.linspace(0, n - 1, max(count, 1), device=device, dtype=torch.float32)

    return axis(w)[None], axis(h)[:, None]


def _upsample(field: Tensor, h: int, w: int) -> Tensor:
    """(B, C, h', w') smooth field sampled by `_grid` -> (B, C, H, W)."""
    if field.shape[-2:] == (h, w):
        return field
    return F.interpolate(field, size=(h, w), mode="bilinear", align_corners=True)


def _auto_stride(h: int, w: int, stride: int | None, samples: int) -> int:
    """Smooth fields (TPS residual, skinning weights) are evaluated on a grid of about `samples` points
    along the longer side and upsampled (e.g. samples = 256: stride 1 below 512 px, 2 at 512, 4 at 1024)."""
    return max(1, max(h, w) // samples) if stride is None else max(1, int(stride))


def _affine_flow(coef: Tensor, h: int, w: int) -> Tensor:
    """Flow (B, 2, H, W) of similarity coefficients coef (B, 4, H, W) or (B, 4, 1, 1) = (ar - 1, ai, bx, by):
    at p = (x, y), T(p) - p = (a - 1) p + b in complex form."""
    x, y = _grid(h, w, coef.device)  # every pixel
    fx = coef[:, 0] * x - coef[:, 1] * y + coef[:, 2]
    fy = coef[:, 1] * x + coef[:, 0] * y + coef[:, 3]
    return torch.stack([fx, fy], 1)


# --------------------------------------------------------------------------------------------- face
def _tps_kernel(r2: Tensor) -> Tensor:
    """TPS radial basis U = r^2 log r^2 (0 at r = 0; r2 >= 0 up to rounding)."""
    r2 = r2.clamp(min=1e-12)
    return r2.mul_(torch.log(r2))


def _border_anchors(h: int, w: int, per_side: int = 4) -> Tensor:
    """(4 * per_side, 2) points evenly spaced along the border of the grid (pixel edges), corners included."""
    t = torch.arange(per_side, dtype=torch.float32) / per_side  # [0, 1)
    x0, y0, x1, y1 = -0.5, -0.5, w - 0.5, h - 0.5
    top = torch.stack([x0 + t * (x1 - x0), torch.full_like(t, y0)], -1)
    right = torch.stack([torch.full_like(t, x1), y0 + t * (y1 - y0)], -1)
    bottom = torch.stack([x1 - t * (x1 - x0), torch.full_like(t, y1)], -1)
    left = torch.stack([torch.full_like(t, x0), y1 - t * (y1 - y0)], -1)
    return torch.cat([top, right, bottom, left])


def face_prior_flow(
    ref_kps: Tensor,
    drive_kps: Tensor,
    size: tuple[int, int],
    *,
    threshold: float = 0.1,
    regularization: float = 1e-3,
    stride: int | None = None,
) -> Tensor:
    """Backward flow (B, 2, H, W) in pixels: for each target (driving) pixel p, where to sample the reference.

    Thin-plate spline through the face landmarks (SPEC §7): T(p) = S(p) + TPS residual, where S is the
    least-squares similarity of the valid landmarks drive -> ref (Umeyama) and the residual interpolates
    ref_j - S(drive_j) at the landmarks and 0 at 16 anchors on the grid border, so a global similarity is
    recovered exactly and the border moves rigidly with the face. Valid landmark = conf >= threshold in
    both ref and drive (68 iBUG points + 2 pupils); a missing one is decoupled from the system (its row and
    column are replaced by the identity), so a batch with different missing points is one batched solve of
    ``(N + 3) x (N + 3)`` (N = 70 + 16). Coordinates are divided by max(H, W) inside the solve for
    conditioning; ``regularization`` is added to the kernel diagonal (in those units). The smooth residual
    is evaluated every ``stride`` pixels (default: about 128 samples along the longer side) and upsampled;
    S is exact at every pixel.
    """
    ref = _as_batch(ref_kps, "ref_kps")[:, kp.FACE]
    drive = _as_batch(drive_kps, "drive_kps").to(ref.device)[:, kp.FACE]
    h, w = int(size[0]), int(size[1])
    ref_xy, ref_ok = _split(ref, threshold)
    drive_xy, drive_ok = _split(drive, threshold)
    valid = ref_ok & drive_ok  # (B, 70)
    b, device = ref.shape[0], ref.device

    a_sim, b_sim, _ = _similarity(drive_xy, ref_xy, valid.float())  # drive -> ref, (B, 2) each
    mapped = _rotate(a_sim[:, None], drive_xy) + b_sim[:, None]  # S(drive_j), (B, 70, 2)
    residual = torch.where(valid[..., None], ref_xy - mapped, 0.0)

    scale = float(max(h, w))
    anchors = _border_anchors(h, w).to(device).expand(b, -1, -1)  # (B, M, 2)
    ctrl = torch.cat([drive_xy, anchors], 1) / scale  # (B, N, 2) normalised control points (target space)
    used = torch.cat([valid, torch.ones(anchors.shape[:2], dtype=torch.bool, device=device)], 1)  # (B, N)
    values = torch.cat([residual, torch.zeros_like(anchors)], 1)  # (B, N, 2) pixels

    n = ctrl.shape[1]
    m = used.float()
    kern = _tps_kernel(torch.cdist(ctrl, ctrl).square()) * (m[:, :, None] * m[:, None, :])  # (B, N, N)
    # decoupled (unused) points: equation w_j = 0; used points: ridge on the diagonal
    kern = kern + torch.diag_embed(torch.where(used, regularization, 1.0))
    poly = torch.cat([torch.ones_like(ctrl[..., :1]), ctrl], -1) * m[..., None]  # (B, N, 3)
    system = torch.zeros(b, n + 3, n + 3, device=device)
    system[:, :n, :n] = kern
    system[:, :n, n:] = poly
    system[:, n:, :n] = poly.transpose(1, 2)
    rhs = torch.cat([values, torch.zeros(b, 3, 2, device=device)], 1)  # (B, N + 3, 2)
    sol = torch.linalg.solve(system, rhs)  # (B, N + 3, 2): kernel weights, then affine (1, x, y)

    # Evaluate on the (strided) grid: U(|p - c_j|) (B, hw, N) @ weights + affine (1, x, y) @ its weights.
    # r^2 = |p|^2 - 2 p.c + |c|^2 as one matmul of (|p|^2, x, y, 1) with (1, -2 cx, -2 cy, |c|^2).
    x, y = _grid(h, w, device, _auto_stride(h, w, stride, samples=128))  # a TPS is very smooth
    gh, gw = y.shape[0], x.shape[1]
    pts = torch.stack([x.expand(gh, gw).reshape(-1), y.expand(gh, gw).reshape(-1)], -1) / scale  # (hw, 2)
    ones = torch.ones_like(pts[:, :1])
    p_aug = torch.cat([pts.square().sum(-1, keepdim=True), pts, ones], -1)  # (hw, 4)
    c_aug = torch.cat([torch.ones_like(ctrl[..., :1]), -2 * ctrl, ctrl.square().sum(-1, keepdim=True)], -1)
    r2 = p_aug @ c_aug.transpose(1, 2)  # (B, hw, N)
    nonrigid = _tps_kernel(r2) @ sol[:, :n] + torch.cat([ones, pts], -1) @ sol[:, n:]  # (B, hw, 2)
    nonrigid = _upsample(nonrigid.transpose(1, 2).reshape(b, 2, gh, gw), h, w)  # (B, 2, H, W) pixels

    coef = torch.cat([a_sim - torch.tensor([1.0, 0.0], device=device), b_sim], -1)  # (B, 4)
    return _affine_flow(coef[:, :, None, None], h, w) + nonrigid


# --------------------------------------------------------------------------------------------- pose
def _hand(wrist: int, first: int) -> tuple[tuple[int, ...], tuple[tuple[int, int], ...]]:
    """Hand part: fit points (wrist + 21 hand points), segments wrist -> knuckle -> fingertip per finger."""
    segs = []
    for chain in kp.HAND_FINGERS:
        segs += [(wrist, first + chain[1]), (first + chain[1], first + chain[4])]
    return (wrist, *range(first, first + kp.NUM_HAND)), tuple(segs)


_R_HAND, _L_HAND = _hand(kp.R_WRIST, kp.RIGHT_HAND.start), _hand(kp.L_WRIST, kp.LEFT_HAND.start)
_TORSO_QUAD = (kp.R_SHOULDER, kp.L_SHOULDER, kp.L_HIP, kp.R_HIP)
_CROWN = kp.NUM_KEYPOINTS  # virtual point above the nose, nose + 0.5 (nose - neck): the head's upward bone
_HEAD = (kp.NOSE, kp.R_EYE, kp.L_EYE, kp.R_EAR, kp.L_EAR, kp.NECK, *range(kp.FACE.start, kp.FACE.stop))

# (name, parent index, fit points, target segments, radius as a fraction of the person's size).
# Parents come before their children. Radii follow the proportions of the synthetic people
# (`data.synthetic._BODY`: limb radii 0.022-0.045 of the height, head half-width 0.054).
PARTS = (
    ("torso", -1, (kp.NECK, *_TORSO_QUAD, kp.MID_HIP),
     tuple(zip(_TORSO_QUAD, _TORSO_QUAD[1:] + _TORSO_QUAD[:1], strict=True))
     + ((kp.NECK, kp.MID_HIP), (kp.NECK, kp.R_SHOULDER), (kp.NECK, kp.L_SHOULDER)), 0.03),
    ("head", 0, _HEAD, ((kp.NECK, kp.NOSE), (kp.NOSE, _CROWN), (kp.NOSE, kp.R_EYE), (kp.NOSE, kp.L_EYE),
                        (kp.R_EYE, kp.R_EAR), (kp.L_EYE, kp.L_EAR)), 0.05),
    ("r_upper_arm", 0, (kp.R_SHOULDER, kp.R_ELBOW), ((kp.R_SHOULDER, kp.R_ELBOW),), 0.03),
    ("r_forearm", 2, (kp.R_ELBOW, kp.R_WRIST), ((kp.R_ELBOW, kp.R_WRIST),), 0.025),
    ("r_hand", 3, *_R_HAND, 0.02),
    ("l_upper_arm", 0, (kp.L_SHOULDER, kp.L_ELBOW), ((kp.L_SHOULDER, kp.L_ELBOW),), 0.03),
    ("l_forearm", 5, (kp.L_ELBOW, kp.L_WRIST), ((kp.L_ELBOW, kp.L_WRIST),), 0.025),
    ("l_hand", 6, *_L_HAND, 0.02),
    ("r_thigh", 0, (kp.R_HIP, kp.R_KNEE), ((kp.R_HIP, kp.R_KNEE),), 0.045),
    ("r_shin", 8, (kp.R_KNEE, kp.R_ANKLE), ((kp.R_KNEE, kp.R_ANKLE),), 0.035),
    ("r_foot", 9, (kp.R_ANKLE, kp.R_HEEL, kp.R_BIG_TOE, kp.R_SMALL_TOE),
     ((kp.R_ANKLE, kp.R_HEEL), (kp.R_ANKLE, kp.R_BIG_TOE), (kp.R_ANKLE, kp.R_SMALL_TOE)), 0.025),
    ("l_thigh", 0, (kp.L_HIP, kp.L_KNEE), ((kp.L_HIP, kp.L_KNEE),), 0.045),
    ("l_shin", 11, (kp.L_KNEE, kp.L_ANKLE), ((kp.L_KNEE, kp.L_ANKLE),), 0.035),
    ("l_foot", 12, (kp.L_ANKLE, kp.L_HEEL, kp.L_BIG_TOE, kp.L_SMALL_TOE),
     ((kp.L_ANKLE, kp.L_HEEL), (kp.L_ANKLE, kp.L_BIG_TOE), (kp.L_ANKLE, kp.L_SMALL_TOE)), 0.025),
)  # fmt: skip
_DEPTH = 3  # longest parent chain (torso -> upper arm -> forearm -> hand)
_LIMBS = tuple(i for i, p in enumerate(PARTS) if len(p[3]) == 1)  # single-bone parts: radius from the mask


@functools.lru_cache(maxsize=8)
def _tables(device: torch.device) -> dict[str, Tensor]:
    """Index tensors of PARTS: fit membership (P, 137), parents (P,), segments (S, 2), their part (S,) and
    (S, P) one-hot, radius fractions (P,), the limbs' bones (L, 2) and part indices (L,). Cached per
    device (read-only)."""
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
        "bone": torch.tensor([PARTS[i][3][0] for i in _LIMBS], device=device),
        "limbs": torch.tensor(_LIMBS, device=device),
    }


def _part_distance(xy: Tensor, valid: Tensor, tab: dict[str, Tensor], x: Tensor, y: Tensor) -> Tensor:
    """Distance (B, P, h, w) in pixels from each sample (x (1, w), y (h, 1)) to each part's target segments
    (_FAR: none valid); 0 inside the torso quadrilateral. Evaluated in row blocks to bound memory.
    xy (B, 137, 2), valid (B, 137); the virtual _CROWN point is added here."""
    b, s = xy.shape[0], tab["seg"].shape[0]
    crown = 1.5 * xy[:, kp.NOSE] - 0.5 * xy[:, kp.NECK]  # (B, 2)
    xy = torch.cat([xy, crown[:, None]], 1)  # (B, 138, 2)
    valid = torch.cat([valid, (valid[:, kp.NOSE] & valid[:, kp.NECK])[:, None]], 1)
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
    quad = xy[:, list(_TORSO_QUAD)]  # (B, 4, 2)
    quad_ok = valid[:, list(_TORSO_QUAD)].all(-1)  # (B,)
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
        d2 = (u - torch.minimum(u.clamp(min=0), length)).square_() + v.square_()  # (beyond the ends)^2 + v^2
        part = d2.new_full((b, len(PARTS), *d2.shape[2:]), _FAR**2)
        part = part.scatter_reduce(1, index.expand_as(d2), d2, "amin").sqrt()  # (B, P, R, W)
        part = torch.where(part_ok, part, _FAR)
        # even-odd rule against the 4 edges of the torso quadrilateral
        qa, qb = quad[..., None, None, :], quad.roll(-1, 1)[..., None, None, :]  # (B, 4, 1, 1, 2)
        crosses = (qa[..., 1] > yy) != (qb[..., 1] > yy)  # (B, 4, R, 1)
        dqy = qb[..., 1] - qa[..., 1]
        x_cross = qa[..., 0] + (yy - qa[..., 1]) * (qb[..., 0] - qa[..., 0]) / torch.where(dqy == 0, 1.0, dqy)
        inside = ((crosses & (x < x_cross)).sum(1) % 2 == 1) & quad_ok[:, None, None]  # (B, R, W)
        part[:, 0] = torch.where(inside, 0.0, part[:, 0])
        out.append(part)
    return torch.cat(out, 2)


# Bones and their length as a fraction of the standing height (adult proportions, close to `_BODY`).
_SIZE_BONES = (
    ((kp.NECK, kp.MID_HIP), 0.30),
    ((kp.R_SHOULDER, kp.R_ELBOW), 0.18), ((kp.L_SHOULDER, kp.L_ELBOW), 0.18),
    ((kp.R_ELBOW, kp.R_WRIST), 0.15), ((kp.L_ELBOW, kp.L_WRIST), 0.15),
    ((kp.R_HIP, kp.R_KNEE), 0.24), ((kp.L_HIP, kp.L_KNEE), 0.24),
    ((kp.R_KNEE, kp.R_ANKLE), 0.235), ((kp.L_KNEE, kp.L_ANKLE), 0.235),
)  # fmt: skip


def _person_size(xy: Tensor, valid: Tensor) -> Tensor:
    """Person height estimate (B,) in pixels of the driving frame: the largest bone length / its fraction
    of the height (foreshortening only shortens bones, so the max is the least foreshortened one); the
    larger side of the box of the valid points when no bone is visible; 0 without any point."""
    bones = torch.tensor([b for b, _ in _SIZE_BONES], device=xy.device)  # (L, 2)
    frac = torch.tensor([f for _, f in _SIZE_BONES], device=xy.device)
    length = (xy[:, bones[:, 1]] - xy[:, bones[:, 0]]).norm(dim=-1)  # (B, L)
    length = torch.where(valid[:, bones[:, 0]] & valid[:, bones[:, 1]], length, 0.0)
    from_bones = (length / frac).amax(-1)
    lo = torch.where(valid[..., None], xy, torch.inf).amin(1)  # (B, 2)
    hi = torch.where(valid[..., None], xy, -torch.inf).amax(1)
    extent = torch.where(valid.any(1), (hi - lo).amax(-1), 0.0)
    return torch.where(from_bones > 0, from_bones, extent)


def _mask_radius(mask: Tensor, ref_xy: Tensor, ref_ok: Tensor, default: Tensor, tab: dict[str, Tensor]):
    """Limb half-widths (B, L) in reference pixels measured in the reference person mask (B, 1, H, W).

    At 30 / 50 / 70 % along each limb's bone, walk along the bone's normal on both sides (16 steps up to
    2x the default radius) and count the consecutive samples inside the mask (> 0.5); per position take
    the thinner side (the other may run into the torso), then the median over positions. Clamped to
    [0.5, 2] x the default; the default is kept where the bone is missing or not inside the mask.
    """
    _, _, h, w = mask.shape
    a, b = ref_xy[:, tab["bone"][:, 0]], ref_xy[:, tab["bone"][:, 1]]  # (B, L, 2)
    ok = ref_ok[:, tab["bone"][:, 0]] & ref_ok[:, tab["bone"][:, 1]]
    along = b - a
    length = along.norm(dim=-1, keepdim=True)
    normal = torch.stack([-along[..., 1], along[..., 0]], -1) / length.clamp(min=1e-6)  # (B, L, 2)
    t = torch.tensor([0.3, 0.5, 0.7], device=mask.device)
    centre = a[:, :, None] + t[:, None] * along[:, :, None]  # (B, L, 3, 2)
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
    radius = run.amin(-1).median(-1).values  # (B, L)
    ok = ok & (inside[..., 0].amin((-1, -2)) > 0) & (length[..., 0] > 1e-3)
    return torch.where(ok, radius.clamp(0.5 * default, 2 * default), default)


def pose_prior_flow(
    ref_kps: Tensor,
    drive_kps: Tensor,
    size: tuple[int, int],
    *,
    ref_mask: Tensor | None = None,
    threshold: float = 0.05,
    stride: int | None = None,
) -> tuple[Tensor, Tensor]:
    """Linear-blend skinning over body parts (SPEC §7) -> flow (B, 2, H, W) pixels, coverage (B, 1, H, W).

    Each of the 14 `PARTS` gets a similarity T_i from its target (driving) points to its reference points
    (exact for two points, least squares for more); a part without two valid points in both frames uses
    its parent's transform (the torso falls back to the similarity of all valid body points, else the
    identity). With d_i(p) the distance from pixel p to part i's target segments (0 inside the torso
    quadrilateral) and r_i its radius:

    - blend weights: softmax_i(-d_i^2 / (2 r_i^2)), i.e. normalised exp(-d^2 / 2 sigma^2) with sigma = r;
    - flow = falloff * sum_i weight_i (T_i(p) - p), falloff = 1 - prod_i (1 - f_i) with
      f_i = exp(-max(d_i - r_i, 0)^2 / (2 (r_i / 2)^2)): the exact part motion over the whole limb and a
      smooth decay to 0 within about one radius outside it (the background stays);
    - coverage = 1 - prod_i (1 - sigmoid((r_i - d_i) / (0.15 r_i))): a soft person mask in the target,
      0.5 at the limb's edge (the composite mask of the no-network baseline); the edge is at least half a
      sample wide.

    r_i = a fraction (listed in `PARTS`) of the driving person's height (`_person_size`); with
    ``ref_mask`` (B, 1, H, W) in [0, 1] (also (H, W) or (B, H, W), resized to ``size`` if needed) the
    arm and leg radii are measured in the reference mask instead
    (`_mask_radius`) and mapped to the target by the part's scale (radius = the limb's half-width).
    Weights and coverage are smooth: they are evaluated every ``stride`` pixels (default: about 256
    samples along the longer side)
    and upsampled, the blended similarity is then applied at every pixel.
    """
    ref = _as_batch(ref_kps, "ref_kps")
    drive = _as_batch(drive_kps, "drive_kps").to(ref.device)
    h, w = int(size[0]), int(size[1])
    device = ref.device
    tab = _tables(device)
    ref_xy, ref_ok = _split(ref, threshold)
    drive_xy, drive_ok = _split(drive, threshold)
    both = (ref_ok & drive_ok).float()  # (B, 137)

    # Per-part similarities drive -> ref: (B, P, 2) each; missing parts inherit their parent's.
    weight = both[:, None] * tab["members"]  # (B, P, 137)
    a, t, ok = _similarity(drive_xy[:, None].expand(-1, len(PARTS), -1, -1), ref_xy[:, None], weight)
    body = both[:, kp.BODY]
    root_a, root_t, _ = _similarity(drive_xy[:, kp.BODY], ref_xy[:, kp.BODY], body)
    a[:, 0] = torch.where(ok[:, :1], a[:, 0], root_a)
    t[:, 0] = torch.where(ok[:, :1], t[:, 0], root_t)
    ok[:, 0] = True
    for _ in range(_DEPTH):
        a = torch.where(ok[..., None], a, a[:, tab["parent"]])
        t = torch.where(ok[..., None], t, t[:, tab["parent"]])
        ok = ok | ok[:, tab["parent"]]

    radius = (tab["radius"] * _person_size(drive_xy, drive_ok)[:, None]).clamp(min=1.0)  # (B, P) pixels
    if ref_mask is not None:
        scale = a[:, tab["limbs"]].norm(dim=-1).clamp(min=1e-3)  # ref length / target length
        mask = _as_mask(ref_mask, ref.shape[0], (h, w), device)
        limb = _mask_radius(mask, ref_xy, ref_ok, radius[:, tab["limbs"]] * scale, tab)
        radius = radius.index_copy(1, tab["limbs"], (limb / scale).clamp(min=1.0))

    x, y = _grid(h, w, device, _auto_stride(h, w, stride, samples=256))
    d = _part_distance(drive_xy, drive_ok, tab, x, y)  # (B, P, h', w')
    r = radius[..., None, None]
    present = d < _FAR
    # exponents are clamped at -80 (e^-80 ~ 1e-35): no float32 denormals, which are slow on CPUs; this
    # only changes weights that are ~0 anyway
    logits = torch.where(present, (-(d / r).square() / 2).clamp(min=-80), -1e30)
    blend = torch.softmax(logits, 1)  # (B, P, h', w')
    keep = torch.exp((-((d - r).clamp(min=0) / (_FALLOFF * r)).square() / 2).clamp(min=-80))
    keep = torch.where(present, keep, 0.0)
    spacing = max((w - 1) / max(x.shape[1] - 1, 1), (h - 1) / max(y.shape[0] - 1, 1))  # pixels per sample
    edge = (_EDGE * r).clamp(min=0.5 * spacing)  # no edge sharper than the sampling grid (aliasing)
    inside = torch.where(present, torch.sigmoid((r - d) / edge), 0.0)
    union = torch.cat([keep, inside], 1).unflatten(1, (2, -1))  # (B, 2, P, h', w')
    falloff, coverage = _upsample(1 - torch.prod(1 - union, 2), h, w).split(1, 1)  # (B, 1, H, W) each

    coef = torch.cat([a - torch.tensor([1.0, 0.0], device=device), t], -1)  # (B, P, 4): T(p) - p terms
    coef = _upsample(torch.einsum("bphw,bpk->bkhw", blend, coef), h, w)  # (B, 4, H, W)
    flow = _affine_flow(coef, h, w) * falloff
    return flow, coverage


# ----------------------------------------------------------------------------------------- dispatch
def prior_flow(mode: str, ref_kps, drive_kps, size: tuple[int, int], **kw) -> tuple[Tensor, Tensor]:
    """Prior flow and coverage for a mode (SPEC §7): "pose" -> `pose_prior_flow`; "face" ->
    (`face_prior_flow`, coverage), the coverage being ``warp(ref_mask, flow)`` when a ``ref_mask``
    (B, 1, H, W) is given, else ones, and zero for a sample with fewer than two valid landmarks."""
    if mode == "pose":
        return pose_prior_flow(ref_kps, drive_kps, size, **kw)
    if mode != "face":
        raise ConfigError(f"no keypoint flow prior for mode {mode!r} (use pose or face)")
    from fewshotv2v.models.flow import warp

    ref_mask = kw.pop("ref_mask", None)
    flow = face_prior_flow(ref_kps, drive_kps, size, **kw)
    threshold = kw.get("threshold", 0.1)
    ref, drive = _as_batch(ref_kps, "ref_kps"), _as_batch(drive_kps, "drive_kps")
    enough = (_split(ref[:, kp.FACE], threshold)[1] & _split(drive[:, kp.FACE], threshold)[1]).sum(1) >= 2
    enough = enough.to(flow.device).float()[:, None, None, None]
    if ref_mask is None:
        coverage = torch.ones_like(flow[:, :1])
    else:
        coverage = warp(_as_mask(ref_mask, flow.shape[0], size, flow.device), flow).clamp(0, 1)
    return flow, coverage * enough
