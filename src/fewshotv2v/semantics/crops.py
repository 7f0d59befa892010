"""Person and face crops (SPEC §1) and the resampling that goes with them.

Box convention: ``(x0, y0, x1, y1)`` float in *edge* coordinates of the source frame, where pixel column
``j`` spans ``[j, j + 1)``; the whole frame is ``(0, 0, W, H)``. Keypoints use pixel-centre coordinates
(pixel ``j`` is at ``x = j``), i.e. edge coordinate ``x + 0.5``. A box may extend outside the frame: those
parts are padded (black for images) when cropping.

Resampling is separable: a few weighted taps per output pixel and axis (triangle filter widened by the
down-scaling factor, i.e. anti-aliased bilinear, or nearest for label maps), so no OpenCV is needed and
padding falls out of the maths (weights on out-of-frame pixels are zero).
"""

from __future__ import annotations

import numpy as np

from fewshotv2v.errors import InputError, NoPersonError
from fewshotv2v.semantics import keypoints as kp

MIN_BOX = 16.0  # px: never build a box smaller than this (a single valid point would give 0)


# ------------------------------------------------------------------------------------------------ boxes
def _place(start: float, size: float, limit: float) -> float:
    """Clamp a 1-D interval inside ``[0, limit]``; an interval larger than the frame stays where it is
    (centred on the person) and gets padded when cropped."""
    if size <= limit:
        return float(np.clip(start, 0.0, limit - size))
    return start


def pose_crop_box(
    kps: np.ndarray,
    frame_hw: tuple[int, int],
    *,
    scale: float = 1.5,
    aspect: float = 0.5,
    jitter: tuple[float, float] | None = None,
    offset: float = 0.05,
    rng: np.random.Generator | None = None,
    threshold: float = 0.01,
    clamp: bool = True,
) -> np.ndarray:
    """Person-centred crop box ``(4,)`` float32 (SPEC §1).

    Centre x = middle of the valid keypoints; vertical extent = head top to ankles (see
    :func:`keypoints.person_extent`); box height = ``scale`` x person height, width = ``aspect`` x height.
    With an ``rng`` (training), ``scale`` is drawn from ``jitter`` (default 1.4..1.6) and the centre moves
    by up to ``offset`` (5 %) of the box size in x and y. The box is then shifted inside the frame; where
    it is larger than the frame it stays centred on the person (padded when cropped).
    Raises :class:`NoPersonError` when no keypoint is valid.
    """
    ext = kp.person_extent(kps, threshold)
    if ext is None:
        raise NoPersonError("no valid keypoint: cannot place a person crop")
    top, bottom, x_min, x_max = ext
    # Edge coordinates: keypoint centres + 0.5.
    cx, cy = (x_min + x_max) / 2 + 0.5, (top + bottom) / 2 + 0.5
    if rng is not None:
        lo, hi = jitter if jitter is not None else (1.4, 1.6)
        scale = float(rng.uniform(lo, hi))
    height = max(MIN_BOX, scale * (bottom - top))
    width = aspect * height
    if rng is not None:
        cx += float(rng.uniform(-offset, offset)) * width
        cy += float(rng.uniform(-offset, offset)) * height
    x0, y0 = cx - width / 2, cy - height / 2
    if clamp:
        x0 = _place(x0, width, frame_hw[1])
        y0 = _place(y0, height, frame_hw[0])
    return np.array([x0, y0, x0 + width, y0 + height], np.float32)


def face_crop_box(
    kps: np.ndarray,
    frame_hw: tuple[int, int],
    *,
    scale: float = 2.0,
    up: float = 1.25,
    offset: float = 0.05,
    rng: np.random.Generator | None = None,
    threshold: float = 0.1,
    clamp: bool = True,
) -> np.ndarray:
    """Square face crop box ``(4,)`` float32 (SPEC §1): side ``scale`` x face width (width of the 68
    landmarks' box), horizontally centred on it, top = box centre - ``up`` x width (so the forehead fits).

    ``kps``: canonical ``(137, 3)`` or face-only ``(68|70, 2|3)``. With an ``rng`` the side is scaled by
    0.95..1.05 and the box moved by up to ``offset`` of its side.
    Raises :class:`NoPersonError` without a face.
    """
    face = kp.face_points(kps)[:68]
    ok = kp.valid_mask(face, threshold)
    if ok.sum() < 2:
        raise NoPersonError("no face landmarks: cannot place a face crop")
    p = face[ok, :2] + 0.5  # edge coordinates
    x_lo, y_lo = p.min(0)
    x_hi, y_hi = p.max(0)
    w = max(float(x_hi - x_lo), MIN_BOX / scale)
    cx, cy = float(x_lo + x_hi) / 2, float(y_lo + y_hi) / 2
    side = scale * w
    top = cy - up * w * scale / 2.0
    if rng is not None:
        side *= float(rng.uniform(0.95, 1.05))
        cx += float(rng.uniform(-offset, offset)) * side
        top += float(rng.uniform(-offset, offset)) * side
    x0 = cx - side / 2
    if clamp:
        x0 = _place(x0, side, frame_hw[1])
        top = _place(top, side, frame_hw[0])
    return np.array([x0, top, x0 + side, top + side], np.float32)


# --------------------------------------------------------------------------------------- resampling
def _taps(n_out: int, start: float, stop: float, n_in: int, mode: str, antialias: bool, edge: bool = False):
    """Resampling taps for one axis: source indices ``(n_out, T)`` (clipped into range) and weights
    ``(n_out, T)``. Output pixel ``j`` reads the source edge interval
    ``[start + j * step, start + (j + 1) * step)``; weights on pixels outside ``[0, n_in)`` are zero, or
    with ``edge`` the outputs beyond the image read its border pixel (the source position clamped)."""
    step = (stop - start) / n_out
    s = start + (np.arange(n_out) + 0.5) * step - 0.5  # source pixel-centre coordinate of each output
    if edge:
        s = np.clip(s, 0.0, n_in - 1.0)
    if mode == "nearest":
        idx = np.floor(s + 0.5).astype(np.int64)[:, None]
        wts = ((idx >= 0) & (idx < n_in)).astype(np.float32)
        return np.clip(idx, 0, n_in - 1), wts
    support = max(1.0, abs(step)) if antialias else 1.0
    k = np.arange(-int(np.ceil(support)) - 1, int(np.ceil(support)) + 2)
    idx = np.floor(s).astype(np.int64)[:, None] + k[None, :]  # (n_out, taps)
    inside = (idx >= 0) & (idx < n_in)
    wts = np.clip(1.0 - np.abs(idx - s[:, None]) / support, 0.0, None) * inside
    wts /= np.maximum(wts.sum(1, keepdims=True), 1e-12)  # renormalised over the taps inside the image
    if not edge:
        # Then scaled by the share of the output pixel's source interval that lies inside the image: 1 for
        # a box inside the frame (no dark rim), 0 in the padding, a soft ramp on the frame border.
        lo = start + np.arange(n_out) * step
        cover = np.clip(np.minimum(lo + step, n_in) - np.maximum(lo, 0.0), 0.0, None) / step
        wts *= cover[:, None]
    keep = wts.any(0)  # drop tap columns that are zero everywhere (keep one: box wholly outside)
    keep[0] = keep[0] or not keep.any()
    return np.clip(idx[:, keep], 0, n_in - 1), wts[:, keep].astype(np.float32)


def crop_image(
    image: np.ndarray,
    box,
    out_hw: tuple[int, int],
    *,
    interpolation: str = "bilinear",
    antialias: bool = True,
    fill: float = 0.0,
    edge: bool = False,
) -> np.ndarray:
    """Crop ``box`` out of ``image (H, W[, C])`` and resize it to ``out_hw``; same dtype out.

    Parts of the box outside the image are filled with ``fill`` (black by default; street labels use 255),
    or with ``edge=True`` continue the image's border pixels (a photo a warp samples near its edge: the
    black beyond it darkened the face crop's top rows, and drew a black arc where the head moved down).
    ``interpolation``: ``"bilinear"`` (anti-aliased when shrinking unless ``antialias=False``) or
    ``"nearest"`` (label maps, masks that must stay binary). Cost: a few taps per output pixel and axis
    (vertical pass first, on the needed columns only).
    """
    if interpolation not in ("bilinear", "nearest"):
        raise InputError(f"unknown interpolation {interpolation!r} (use 'bilinear' or 'nearest')")
    img = np.asarray(image)
    squeeze = img.ndim == 2
    if squeeze:
        img = img[..., None]
    x0, y0, x1, y1 = (float(v) for v in box)
    if not (x1 > x0 and y1 > y0):
        raise InputError(f"empty crop box {tuple(box)}")
    h_out, w_out = int(out_hw[0]), int(out_hw[1])
    iy, wy = _taps(h_out, y0, y1, img.shape[0], interpolation, antialias, edge)  # (h_out, Ty)
    ix, wx = _taps(w_out, x0, x1, img.shape[1], interpolation, antialias, edge)  # (w_out, Tx)
    c_lo, c_hi = int(ix.min()), int(ix.max()) + 1  # only the columns some output reads
    src = img[:, c_lo:c_hi]
    tmp = np.zeros((h_out, c_hi - c_lo, img.shape[2]), np.float32)  # vertical pass: (h_out, w, C)
    for t in range(iy.shape[1]):
        tmp += wy[:, t, None, None] * src[iy[:, t]]
    out = np.zeros((h_out, w_out, img.shape[2]), np.float32)  # horizontal pass: (h_out, w_out, C)
    for t in range(ix.shape[1]):
        out += wx[None, :, t, None] * tmp[:, ix[:, t] - c_lo]
    if fill:
        cover = wy.sum(1)[:, None, None] * wx.sum(1)[None, :, None]  # share of each output inside
        out += fill * (1.0 - cover)
    if np.issubdtype(img.dtype, np.integer):
        info = np.iinfo(img.dtype)
        out = np.clip(np.rint(out), info.min, info.max).astype(img.dtype)
    else:
        out = out.astype(img.dtype, copy=False)
    return out[..., 0] if squeeze else out


def transform_keypoints(kps: np.ndarray, box, out_hw: tuple[int, int]) -> np.ndarray:
    """Keypoints in frame pixels -> pixels of the crop ``box`` resized to ``out_hw`` (confidence kept)."""
    kps = np.array(kps, np.float32, copy=True)
    x0, y0, x1, y1 = (float(v) for v in box)
    sx, sy = out_hw[1] / (x1 - x0), out_hw[0] / (y1 - y0)
    kps[..., 0] = (kps[..., 0] + 0.5 - x0) * sx - 0.5
    kps[..., 1] = (kps[..., 1] + 0.5 - y0) * sy - 0.5
    kps[kps[..., 2] <= 0, :2] = 0.0  # keep missing points at a neutral place
    return kps


def untransform_keypoints(kps: np.ndarray, box, out_hw: tuple[int, int]) -> np.ndarray:
    """Inverse of :func:`transform_keypoints`: crop pixels -> frame pixels."""
    kps = np.array(kps, np.float32, copy=True)
    x0, y0, x1, y1 = (float(v) for v in box)
    sx, sy = out_hw[1] / (x1 - x0), out_hw[0] / (y1 - y0)
    kps[..., 0] = (kps[..., 0] + 0.5) / sx + x0 - 0.5
    kps[..., 1] = (kps[..., 1] + 0.5) / sy + y0 - 0.5
    return kps


def box_transform(target_box, ref_box, out_hw: tuple[int, int], *, flip: bool = False) -> np.ndarray:
    """The camera map between two crops of one frame-space scene: `(a, cx, cy)` float32 such that the
    target-crop pixel p shows the point the reference-crop pixel `a * p + c` shows (SPEC §7: a static
    background moves by it). Crops have the output aspect, so one scale `a` serves both axes; `flip`: both
    crops were mirrored (x -> W - 1 - x)."""
    tx0, ty0, tx1, _ = (float(v) for v in target_box)
    rx0, ry0, rx1, _ = (float(v) for v in ref_box)
    st, sr = (tx1 - tx0) / out_hw[1], (rx1 - rx0) / out_hw[1]  # frame pixels per crop pixel
    a = st / sr
    cx = (tx0 - rx0) / sr + 0.5 * a - 0.5
    cy = (ty0 - ry0) / sr + 0.5 * a - 0.5
    if flip:
        cx = (out_hw[1] - 1) * (1 - a) - cx
    return np.array([a, cx, cy], np.float32)


def paste_back(frame: np.ndarray, patch: np.ndarray, box, *, mask: np.ndarray | None = None) -> np.ndarray:
    """Place ``patch (h, w, C)`` (a result made for crop ``box``) back into a copy of ``frame (H, W, C)``.

    ``mask (h, w)`` in [0, 1] blends it (e.g. a person mask); without it the whole box is replaced.
    Frame pixels only partly covered by the box edge are blended by their coverage.
    """
    frame = np.asarray(frame)
    out = frame.astype(np.float32, copy=True)
    H, W = frame.shape[:2]
    x0, y0, x1, y1 = (float(v) for v in box)
    fx0, fy0 = max(0, int(np.floor(x0))), max(0, int(np.floor(y0)))
    fx1, fy1 = min(W, int(np.ceil(x1))), min(H, int(np.ceil(y1)))
    if fx0 >= fx1 or fy0 >= fy1:
        return frame.copy()
    h, w = patch.shape[:2]
    sx, sy = w / (x1 - x0), h / (y1 - y0)
    # The frame region expressed as a box in the patch's edge coordinates.
    inv = ((fx0 - x0) * sx, (fy0 - y0) * sy, (fx1 - x0) * sx, (fy1 - y0) * sy)
    region_hw = (fy1 - fy0, fx1 - fx0)
    values = crop_image(np.asarray(patch, np.float32), inv, region_hw)
    if values.ndim == 2:
        values = values[..., None]
    cover = crop_image(np.ones((h, w), np.float32), inv, region_hw)[..., None]  # (h', w', 1) box share
    values = values / np.maximum(cover, 1e-6)  # undo the edge fade: alpha carries it
    alpha = cover if mask is None else crop_image(np.asarray(mask, np.float32), inv, region_hw)[..., None]
    region = out[fy0:fy1, fx0:fx1]
    region_view = region if region.ndim == 3 else region[..., None]
    region_view *= 1.0 - alpha
    region_view += values * alpha
    if np.issubdtype(frame.dtype, np.integer):
        return np.clip(np.rint(out), 0, np.iinfo(frame.dtype).max).astype(frame.dtype)
    return out.astype(frame.dtype)
