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

import torch
import torch.nn.functional as F
from torch import Tensor

from fewshotv2v.errors import ConfigError, InputError
from fewshotv2v.models import body_parts as parts
from fewshotv2v.models.flow import warp
from fewshotv2v.semantics import keypoints as kp

_FALLOFF = 0.5  # the flow: 1 up to a part's radius r, then a Gaussian fall-off of sigma _FALLOFF * r
_EDGE = 0.15  # the coverage: a logistic edge at d = r, of width _EDGE * r
# Arms lie in front of the body: inside an arm's radius its blend logit gets this much more, so its
# transform wins over the torso's, whose distance is 0 all over its quadrilateral (a hand moved in front
# of the chest took the chest's motion and vanished into it).
_ARM_FRONT = 3.0
# What no part explains (loose shorts, a held object, the torso of a half-body photo) is kept where it lies
# about as far beyond the target's parts as it lay beyond the reference's (within _UNEXPLAINED_SLACK of
# the person's size, a logistic edge _UNEXPLAINED_EDGE wide), not at its old place once the body has
# moved away: a lunging footballer driven by a walker left his shorts and leg behind.
_UNEXPLAINED_SLACK = 0.1
_UNEXPLAINED_EDGE = 0.02
# A head keeps its size against the torso's: a fit that scales it by more than this factor against the
# torso's comes from points that disagree (a walker seen from behind, whose eyes and ears mediapipe
# places mirrored: least squares shrank the footballer's head to a third, magnified 3x into a smear), and
# the head then takes the torso's scale and rotation, its nose on the reference's nose. Its turn is no
# test: the torso's own fit turns 180 degrees for a back view of a half-body photo (shoulders swapped,
# no hips), and a head turned against it is then the upright one (the astronaut's head went upside down).
_HEAD_SCALE = 1.6


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


def _spacing(x: Tensor, y: Tensor, h: int, w: int) -> float:
    """Pixels per sample of a `_grid` (x (1, w'), y (h', 1)) over an (h, w) image, the coarser axis."""
    return max((w - 1) / max(x.shape[1] - 1, 1), (h - 1) / max(y.shape[0] - 1, 1))


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
    return r2 * torch.log(r2)


def _border_anchors(h: int, w: int, per_side: int = 4) -> Tensor:
    """(4 * per_side, 2) points evenly spaced along the border of the grid (pixel edges), corners included."""
    t = torch.arange(per_side, dtype=torch.float32) / per_side  # [0, 1)
    x0, y0, x1, y1 = -0.5, -0.5, w - 0.5, h - 0.5
    top = torch.stack([x0 + t * (x1 - x0), torch.full_like(t, y0)], -1)
    right = torch.stack([torch.full_like(t, x1), y0 + t * (y1 - y0)], -1)
    bottom = torch.stack([x1 - t * (x1 - x0), torch.full_like(t, y1)], -1)
    left = torch.stack([torch.full_like(t, x0), y1 - t * (y1 - y0)], -1)
    return torch.cat([top, right, bottom, left])


# Jaw points 2..14 (iBUG 0..16 is the jaw) mirrored across the line through the jaw's ends (0 and 16,
# about eye level): an outline of the skull above the brows, where the landmarks stop and the hair begins.
_JAW = list(range(17))
_SKULL_FROM = list(range(2, 15))


def _skull_outline(drive_xy: Tensor, valid: Tensor, size: tuple[int, int], margin: float = 0.04):
    """(B, 13, 2) points on the top of the head in target pixels, and (B, 13) bool: usable.

    The jaw's reflection across its end-to-end line (eyes sit about halfway up a head, so the chin's
    mirror image is about the top of the skull; `semantics.rendering.upper_face_arc` is the same mirror,
    shrunk to the forehead, for face edge maps; 2/3 or 1.2 of the height here measured the same on a
    real talking head): these points move with the face's similarity, so the
    forehead and hair follow the head instead of staying with the still border. A point needs its jaw
    point and both ends, and must lie inside the grid by `margin` of its side (near the border it would
    fight the border anchors).
    """
    jaw = drive_xy[:, _JAW]  # (B, 17, 2)
    a, b = jaw[:, :1], jaw[:, 16:17]  # (B, 1, 2) the jaw's ends
    d = b - a
    d = d / d.norm(dim=-1, keepdim=True).clamp_min(1e-6)
    p = jaw[:, _SKULL_FROM] - a  # (B, 13, 2)
    along = (p * d).sum(-1, keepdim=True) * d
    mirrored = a + 2 * along - p  # reflection across the line a + t d
    ok = valid[:, _SKULL_FROM] & valid[:, :1] & valid[:, 16:17]
    h, w = size
    pad_x, pad_y = margin * w, margin * h
    inside = (
        (mirrored[..., 0] > pad_x - 0.5)
        & (mirrored[..., 0] < w - 0.5 - pad_x)
        & (mirrored[..., 1] > pad_y - 0.5)
        & (mirrored[..., 1] < h - 0.5 - pad_y)
    )
    return mirrored, ok & inside


def face_prior_flow(
    ref_kps: Tensor,
    drive_kps: Tensor,
    size: tuple[int, int],
    *,
    threshold: float = 0.1,
    regularization: float = 1e-3,
    stride: int | None = None,
    border: str = "similarity",
    skull: bool = True,
) -> Tensor:
    """Backward flow (B, 2, H, W) in pixels: for each target (driving) pixel p, where to sample the reference.

    Thin-plate spline through the face landmarks (SPEC §7): T(p) = S(p) + TPS residual, where S is the
    least-squares similarity of the valid landmarks drive -> ref (Umeyama) and the residual interpolates
    ref_j - S(drive_j) at the landmarks and 0 at 16 anchors on the grid border, so a global similarity is
    recovered exactly and the border moves rigidly with the face. Valid landmark = conf >= threshold in
    both ref and drive (68 iBUG points + 2 pupils); a missing one is decoupled from the system (its row and
    column are replaced by the identity), so a batch with different missing points is one batched solve of
    ``(N + 3) x (N + 3)`` (N = 70 + 13 + 16). Coordinates are divided by max(H, W) inside the solve for
    conditioning; ``regularization`` is added to the kernel diagonal (in those units). The smooth residual
    is evaluated every ``stride`` pixels (default: about 128 samples along the longer side) and upsampled;
    S is exact at every pixel.

    ``border="static"`` pins the border anchors to themselves instead (T(anchor) = anchor): the head moves
    inside a still frame, as a head in front of a static background does (the face's crop pasted back
    into the photo then meets the photo at its border).

    ``skull``: 13 more control points on the top of the head (`_skull_outline`: the jaw mirrored above
    the eyes) with residual 0, so the forehead, hair and a hat move rigidly with the face; without them
    everything above the brows is pulled towards the still border and a head that moves is sheared.
    """
    if border not in ("similarity", "static"):
        raise ValueError(f"border must be 'similarity' or 'static', got {border!r}")
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
    if border == "static":  # the anchors' residual undoes S there: T(anchor) = anchor
        anchor_values = anchors - (_rotate(a_sim[:, None], anchors) + b_sim[:, None])
    else:
        anchor_values = torch.zeros_like(anchors)
    points, used, values = [drive_xy], [valid], [residual]
    if skull:  # the top of the head moves with S (residual 0); N grows by 13
        top, top_ok = _skull_outline(drive_xy, valid, (h, w))
        points, used, values = points + [top], used + [top_ok], values + [torch.zeros_like(top)]
    ones = torch.ones(anchors.shape[:2], dtype=torch.bool, device=device)
    ctrl = torch.cat(points + [anchors], 1) / scale  # (B, N, 2) normalised control points (target space)
    used = torch.cat(used + [ones], 1)  # (B, N)
    values = torch.cat(values + [anchor_values], 1)  # (B, N, 2) pixels

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
def pose_prior_flow(
    ref_kps: Tensor,
    drive_kps: Tensor,
    size: tuple[int, int],
    *,
    ref_mask: Tensor | None = None,
    ref_explained: Tensor | None = None,
    ref_crown: Tensor | None = None,
    threshold: float = 0.05,
    stride: int | None = None,
) -> tuple[Tensor, Tensor]:
    """Linear-blend skinning over body parts (SPEC §7) -> flow (B, 2, H, W) pixels, coverage (B, 1, H, W).

    Each of the 14 `body_parts.PARTS` gets a similarity T_i from its target (driving) points to its
    reference points (exact for two points, least squares for more); a part without a usable fit (two
    valid points in both frames, spread, scale change below 16x) uses its parent's transform (the torso
    falls back to the similarity of all valid body points, else the identity). With d_i(p) the distance
    from pixel p to part i's target segments (0 inside the torso quadrilateral) and r_i its radius:

    - blend weights: softmax_i(-d_i^2 / (2 r_i^2) + 3 front_i), i.e. normalised exp(-d^2 / 2 sigma^2)
      with sigma = r, and for the arms front_i = sigmoid((r_i - d_i) / (0.25 r_i)) (0 for the rest): the
      arms ahead of the rest within their radius, as they lie in front of the body;
    - flow = falloff * sum_i weight_i (T_i(p) - p), falloff = 1 - prod_i (1 - f_i) with
      f_i = exp(-max(d_i - r_i, 0)^2 / (2 (r_i / 2)^2)): the exact part motion over the whole limb and a
      smooth decay to 0 within about one radius outside it (the background stays);
    - coverage = 1 - prod_i (1 - sigmoid((r_i - d_i) / (0.15 r_i))): a soft person mask in the target,
      0.5 at the limb's edge (the composite mask of the no-network baseline); the edge is at least half a
      sample wide.

    r_i = a fraction (listed in `PARTS`) of the driving person's height (`body_parts.person_size`): the
    limb's half-width. With ``ref_mask`` (B, 1, H, W) in [0, 1] (also (H, W) or (B, H, W); resized to
    ``size`` if needed) the arm, leg and head radii are measured in the reference mask instead
    (`body_parts.mask_radius`) and mapped to the target by the part's scale. Weights and coverage are
    smooth: they are evaluated every ``stride`` pixels (default: about 256 samples along the longer side)
    and upsampled; the blended similarity is then applied at every pixel.

    ``ref_explained`` (B, 1, H, W), `parts_coverage` of the reference (with ``ref_mask``): the reference
    person's pixels that no part covers (the torso of a half-body photo whose hips are out of the frame, a
    held object beyond the hand) are added to the coverage where the flow takes them: the flow leaves
    them about in place, and they stay instead of giving way to the background; but only where they lie
    about as far beyond the target's parts as they lay beyond the reference's, not at their old place
    once the body has moved away (`_UNEXPLAINED_SLACK`).

    The head's upward bone runs from the nose to its crown: ``ref_crown`` (B, 2) in reference pixels, by
    default measured in ``ref_mask`` (`body_parts.head_top`: hair far above a bent head's nose), else
    the nose + CROWN_RISE x the neck -> nose bone; the target's crown is where the head's similarity
    takes it. A caller whose reference lies outside the frame the prior is computed in measures it in
    the reference's own crop (`reference_crown`, as `models.generator.keypoint_prior` does).
    """
    ref = _as_batch(ref_kps, "ref_kps")
    drive = _as_batch(drive_kps, "drive_kps").to(ref.device)
    h, w = int(size[0]), int(size[1])
    device = ref.device
    tab = parts.tables(device)
    ref_xy, ref_ok = _split(ref, threshold)
    drive_xy, drive_ok = _split(drive, threshold)
    both = (ref_ok & drive_ok).float()  # (B, 137)

    # Per-part similarities drive -> ref: (B, P, 2) each; missing parts inherit their parent's.
    weight = both[:, None] * tab["members"]  # (B, P, 137)
    a, t, ok = _similarity(drive_xy[:, None].expand(-1, len(parts.PARTS), -1, -1), ref_xy[:, None], weight)
    body = both[:, kp.BODY]
    root_a, root_t, _ = _similarity(drive_xy[:, kp.BODY], ref_xy[:, kp.BODY], body)
    # (no in-place writes: the prior stays differentiable with respect to the keypoints)
    a = torch.cat([torch.where(ok[:, :1], a[:, 0], root_a)[:, None], a[:, 1:]], 1)
    t = torch.cat([torch.where(ok[:, :1], t[:, 0], root_t)[:, None], t[:, 1:]], 1)
    ok = torch.cat([torch.ones_like(ok[:, :1]), ok[:, 1:]], 1)
    a, t = _plausible_head(a, t, drive_xy, ref_xy, both)
    for _ in range(parts.DEPTH):
        a = torch.where(ok[..., None], a, a[:, tab["parent"]])
        t = torch.where(ok[..., None], t, t[:, tab["parent"]])
        ok = ok | ok[:, tab["parent"]]

    size = parts.person_size(drive_xy, drive_ok)  # (B,) pixels
    radius = (tab["radius"] * size[:, None]).clamp(min=1.0)  # (B, P) pixels
    if ref_mask is not None:
        scale = a[:, tab["measured"]].norm(dim=-1).clamp(min=1e-3)  # ref length / target length
        mask = _as_mask(ref_mask, ref.shape[0], (h, w), device)
        radius = parts.with_measured(radius, mask, ref_xy, ref_ok, tab, scale)

    drive_crown = None
    if ref_crown is None and ref_mask is not None:
        ref_crown = parts.head_top(ref_xy, ref_ok, mask)
    if ref_crown is not None:  # carried to the target by the head's similarity (target -> ref, inverted)
        ref_crown = ref_crown.to(device, ref_xy.dtype).reshape(-1, 2).expand(ref_xy.shape[0], 2)
        drive_crown = _inverse(a[:, parts.HEAD_PART], t[:, parts.HEAD_PART], ref_crown)
    x, y = _grid(h, w, device, _auto_stride(h, w, stride, samples=256))
    d = parts.part_distance(drive_xy, drive_ok, tab, x, y, drive_crown)  # (B, P, h', w')
    r = radius[..., None, None]
    present = d < parts.FAR
    spacing = _spacing(x, y, h, w)
    # exponents are clamped at -80 (e^-80 ~ 1e-35): no float32 denormals, which are slow on CPUs; this
    # only changes weights that are ~0 anyway
    logits = torch.where(present, (-(d / r).square() / 2).clamp(min=-80), -1e30)
    front = torch.where(present, torch.sigmoid((r - d) / (0.25 * r)), 0.0)  # scale-free, unlike `inside`
    logits = logits + _ARM_FRONT * front * tab["is_arm"][None, :, None, None]
    blend = torch.softmax(logits, 1)  # (B, P, h', w')
    keep = torch.exp((-((d - r).clamp(min=0) / (_FALLOFF * r)).square() / 2).clamp(min=-80))
    keep = torch.where(present, keep, 0.0)
    inside = _inside(d, r, spacing)
    union = torch.cat([keep, inside], 1).unflatten(1, (2, -1))  # (B, 2, P, h', w')
    falloff, coverage = _upsample(1 - torch.prod(1 - union, 2), h, w).split(1, 1)  # (B, 1, H, W) each

    coef = torch.cat([a - torch.tensor([1.0, 0.0], device=device), t], -1)  # (B, P, 4): T(p) - p terms
    coef = _upsample(torch.einsum("bphw,bpk->bkhw", blend, coef), h, w)  # (B, 4, H, W)
    flow = _affine_flow(coef, h, w) * falloff
    if ref_explained is not None and ref_mask is not None:
        unexplained = mask * (1 - ref_explained.to(mask.dtype))
        s = size[:, None, None, None]  # (B, 1, 1, 1)
        # how far beyond the nearest part: in the target, and in the reference (its parts' distances on
        # the same grid, radii as in the target), read where the flow takes each target pixel; capped at
        # 4 s so that the FAR of missing parts does not reach the bilinear upsampling
        d_ref = parts.part_distance(ref_xy, ref_ok, tab, x, y, ref_crown)
        beyond = [(dist - r).amin(1, keepdim=True).clamp(min=0).minimum(4 * s) for dist in (d, d_ref)]
        beyond_t, beyond_r = _upsample(torch.cat(beyond, 1), h, w).split(1, 1)
        farther = beyond_t - warp(beyond_r, flow)  # (B, 1, H, W): > 0 where the body has moved away
        near = torch.sigmoid((_UNEXPLAINED_SLACK * s - farther) / (_UNEXPLAINED_EDGE * s))
        coverage = torch.maximum(coverage, warp(unexplained, flow) * near)
    return flow, coverage


def reference_crown(ref_kps, ref_mask, threshold: float = 0.05) -> Tensor:
    """(B, 2): the head's top of references `ref_kps (B, 137, 3)` measured in their person masks
    `ref_mask (B, 1, H, W)` (`body_parts.head_top`), in their own pixels: for a caller that computes the
    prior in another frame, where the reference may lie outside (`models.generator.keypoint_prior`)."""
    xy, ok = _split(_as_batch(ref_kps, "ref_kps"), threshold)
    mask = torch.as_tensor(ref_mask)
    return parts.head_top(xy, ok, _as_mask(mask, xy.shape[0], tuple(mask.shape[-2:]), xy.device))


def _inverse_of(a: Tensor, z: Tensor) -> Tensor:
    """z / a for (..., 2) complex-form tensors (the inverse scale + rotation of `a` applied to `z`)."""
    conj = a * torch.tensor([1.0, -1.0], device=a.device)
    return _rotate(conj, z) / a.square().sum(-1, keepdim=True).clamp(min=1e-12)


def _inverse(a: Tensor, t: Tensor, q: Tensor) -> Tensor:
    """p with a * p + t = q, for (B, 2) complex-form `a`, `t`, `q`."""
    return _inverse_of(a, q - t)


def _plausible_head(a: Tensor, t: Tensor, drive_xy: Tensor, ref_xy: Tensor, both: Tensor):
    """The parts' similarities `a, t (B, P, 2)` with the head's replaced where its fit is implausible
    against the torso's (see `_HEAD_SCALE`): then the torso's `a`, and `t` putting the target's nose on the
    reference's (the torso's own `t` where a nose is missing)."""
    head, torso = a[:, parts.HEAD_PART], a[:, 0]  # (B, 2) each
    ratio = _inverse_of(torso, head).norm(dim=-1)  # the head's scale against the torso's
    plausible = (ratio < _HEAD_SCALE) & (ratio > 1 / _HEAD_SCALE)
    nose = both[:, kp.NOSE] > 0
    to_nose = ref_xy[:, kp.NOSE] - _rotate(torso, drive_xy[:, kp.NOSE])
    fallback_t = torch.where(nose[:, None], to_nose, t[:, 0])
    keep = plausible[:, None]
    new_a = torch.where(keep, head, torso)[:, None]
    new_t = torch.where(keep, t[:, parts.HEAD_PART], fallback_t)[:, None]
    i = parts.HEAD_PART
    return torch.cat([a[:, :i], new_a, a[:, i + 1 :]], 1), torch.cat([t[:, :i], new_t, t[:, i + 1 :]], 1)


def _inside(d: Tensor, r: Tensor, spacing: float) -> Tensor:
    """(B, P, h', w') soft inside-the-part of distances `d` to parts of radius `r` (B, P, 1, 1): a logistic
    edge at d = r, no sharper than the sampling grid (aliasing); 0 for missing parts."""
    edge = (_EDGE * r).clamp(min=0.5 * spacing)
    return torch.where(d < parts.FAR, torch.sigmoid((r - d) / edge), 0.0)


def parts_radius(kps: Tensor, size: tuple[int, int], *, mask: Tensor | None = None, threshold: float = 0.05):
    """(B, P) half-widths in pixels of the body parts of `kps` (B, 137, 3): the `PARTS` fractions of the
    person's size, the limbs' and head's measured in the person `mask` when one is given (as
    `pose_prior_flow` does for a reference standing still)."""
    xy, ok = _split(_as_batch(kps, "kps"), threshold)
    tab = parts.tables(xy.device)
    radius = (tab["radius"] * parts.person_size(xy, ok)[:, None]).clamp(min=1.0)  # (B, P)
    if mask is not None:
        mask = _as_mask(mask, xy.shape[0], (int(size[0]), int(size[1])), xy.device)
        radius = parts.with_measured(radius, mask, xy, ok, tab)
    return radius


def parts_coverage(
    kps: Tensor, size: tuple[int, int], *, mask: Tensor | None = None, threshold: float = 0.05,
    stride: int | None = None, radius: Tensor | None = None, only: tuple[int, ...] | None = None,
    groups: list[tuple[int, ...] | None] | None = None,
) -> Tensor | list[Tensor]:  # fmt: skip
    """(B, 1, H, W) in [0, 1]: where the body parts of `kps` (B, 137, 3) lie (1 - prod_i (1 - inside_i),
    the coverage of `pose_prior_flow` for a person standing still). Radii: `radius (B, P)` when given,
    else `parts_radius` (with `mask`, the person mask, the limbs' and head's are measured in it). `only`:
    indices of `body_parts.PARTS` to cover (default all); `groups`: several such (None: all parts), one
    coverage each from one distance computation, as a list. Computed once per reference
    (`pose_prior_flow(ref_explained=...)`, the arms' layer of `inference.framing`)."""
    xy_kps = _as_batch(kps, "kps")
    h, w = int(size[0]), int(size[1])
    xy, ok = _split(xy_kps, threshold)
    if radius is None:
        radius = parts_radius(xy_kps, size, mask=mask, threshold=threshold)
    tab = parts.tables(xy.device)
    x, y = _grid(h, w, xy.device, _auto_stride(h, w, stride, samples=256))
    inside = _inside(parts.part_distance(xy, ok, tab, x, y), radius[..., None, None], _spacing(x, y, h, w))

    def union(group: tuple[int, ...] | None) -> Tensor:
        chosen = inside if group is None else inside[:, list(group)]
        return _upsample(1 - torch.prod(1 - chosen, 1, keepdim=True), h, w)

    return [union(g) for g in groups] if groups is not None else union(only)


# ----------------------------------------------------------------------------------------- dispatch
def prior_flow(mode: str, ref_kps, drive_kps, size: tuple[int, int], **kw) -> tuple[Tensor, Tensor]:
    """Prior flow and coverage for a mode (SPEC §7): "pose" -> `pose_prior_flow`; "face" ->
    (`face_prior_flow`, coverage), the coverage being ``warp(ref_mask, flow)`` when a ``ref_mask``
    (B, 1, H, W) is given, else ones, and zero for a sample with fewer than two valid landmarks."""
    if mode == "pose":
        return pose_prior_flow(ref_kps, drive_kps, size, **kw)
    if mode != "face":
        raise ConfigError(f"no keypoint flow prior for mode {mode!r} (use pose or face)")
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


def closest_reference(ref_kps: torch.Tensor, kps: torch.Tensor, threshold: float = 0.05) -> torch.Tensor:
    """(B,) index of the reference whose body pose is closest to the target's: mean distance of the
    BODY_25 joints present in both, each skeleton centred on its joints' mean (position does not count).

    ref_kps (B, K, 137, 3), kps (B, 137, 3). A reference sharing no joint with the target scores last."""
    ref_body, body = ref_kps[..., :25, :], kps[:, None, :25, :]  # (B, K, 25, 3), (B, 1, 25, 3)
    both = ((ref_body[..., 2] >= threshold) & (body[..., 2] >= threshold)).float()  # (B, K, 25)
    count = both.sum(-1, keepdim=True).clamp_min(1)

    def centred(points):
        mean = (points[..., :2] * both[..., None]).sum(-2, keepdim=True) / count[..., None]
        return points[..., :2] - mean

    dist = ((centred(ref_body) - centred(body)).norm(dim=-1) * both).sum(-1) / count[..., 0]
    dist = torch.where(both.sum(-1) > 0, dist, torch.full_like(dist, float("inf")))
    return dist.argmin(dim=1)
