"""Motion retargeting: driving keypoints -> the reference person's proportions, in reference-crop pixels.

Few-shot vid2vid (Wang et al., 2019, SPEC §5) synthesizes the *reference* person, so the label maps fed
to the generator must show the reference's body, not the driving actor's: a skeleton with the driver's
long legs makes the generator paint long legs. Face mode rescales the driving landmarks part by part to the
reference face's proportions; pose mode retargets limb lengths to the reference body.

All arrays are canonical keypoints `(137, 3)` = `(x, y, confidence)` (docs/architecture.md). Driving
keypoints come in the driving frame's pixels; the retargeted keypoints come out in the pixels of the
reference crop (the model's output canvas), so the rendered label map lines up with the reference image.

Pose (`PoseRetargeter`):

1. body scale `k` = median over bones of (reference bone length / first driving frame's bone length);
2. walk the BODY_25 tree from the neck: each bone keeps the driving direction and gets length
   `reference length x s_t`, where `s_t` (global scale) is the median ratio of the frame's bone lengths to the
   first frame's ones (the driver walking towards the camera grows);
3. position: the neck follows the driving neck's motion since the first frame (times `k`); the first frame's
   skeleton is placed so that the centroid of the joints both skeletons have matches the reference's;
4. hands and face move rigidly with their wrist / nose anchors, scaled by `k` (face: by the ratio of face
   sizes, when the reference shows a face);
5. joints the tree walk cannot reach (a missing parent) and bones the reference lacks (a half-body photo)
   fall back to the uniform map `neck_out + (p - neck_drive) * k`.
Before all this, a driver facing the other way from the reference (`facing`, `FACING_MIN`) has left and
right exchanged (body and hands).

Face (`FaceRetargeter`): a global map of the first driving face's centre / size onto the reference's, then
part by part (jaw, brows, nose, eyes, lips) each part's centre and per-axis spread are corrected to the
reference's, so the driver's expression changes move the reference face's parts.
"""

from __future__ import annotations

import numpy as np

from fewshotv2v.semantics import keypoints as kp
from fewshotv2v.semantics.keypoints import (
    BODY,
    BODY_LIMBS,
    FACE,
    INNER_LOWER_LIP,
    INNER_UPPER_LIP,
    L_PUPIL,
    L_SHOULDER,
    L_WRIST,
    LEFT_HAND,
    LOWER_LIP,
    MOUTH_CORNERS,
    NECK,
    NOSE,
    NUM_BODY,
    NUM_KEYPOINTS,
    R_PUPIL,
    R_SHOULDER,
    R_WRIST,
    RIGHT_HAND,
    spread,
)


def _parents_from_limbs(limbs, num: int) -> np.ndarray:
    """BODY_25 limbs are (parent, child) pairs of a tree rooted at the neck -> parent per joint (-1: root)."""
    parents = np.full(num, -1, dtype=np.int64)
    for a, b in limbs:
        parents[b] = a
    return parents


# BODY_25_PARENTS[j] = parent joint of j in the tree rooted at the neck (-1 for the neck itself).
BODY_25_PARENTS = _parents_from_limbs(BODY_LIMBS, NUM_BODY)


def _tree_order(parents: np.ndarray) -> list[int]:
    """Joints in breadth-first order from the root, so every parent comes before its children."""
    order = [int(np.flatnonzero(parents < 0)[0])]
    for j in order:
        order.extend(int(c) for c in np.flatnonzero(parents == j))
    return order


BODY_25_ORDER = _tree_order(BODY_25_PARENTS)

# 68 iBUG landmarks + 2 pupils (face-local indices), grouped into the parts face retargeting scales.
FACE_PARTS: dict[str, list[int]] = {
    "jaw": list(range(0, 17)),
    "right_brow": list(range(17, 22)),
    "left_brow": list(range(22, 27)),
    "nose": list(range(27, 36)),
    "right_eye": [*range(36, 42), R_PUPIL],
    "left_eye": [*range(42, 48), L_PUPIL],
    "mouth": list(range(48, 68)),
}

MIN_CONF = 0.05  # keypoints below this confidence count as missing
_SCALE_LIMITS = (0.25, 4.0)  # a frame's global scale is clamped: a detector glitch must not explode it
_PART_LIMITS = (0.5, 2.0)  # per-part face corrections stay moderate (closed eyes on frame 0, ...)
# A driver facing the other way from the reference (a walker seen from behind, a front-facing photo): the
# driver's left and right are exchanged before retargeting (body and hands; face points stay in image
# order), so the limb on the image's right drives the reference's limb on the image's right. Without it
# the torso's similarity turned 180 degrees and drew the astronaut's suit upside down with a second head.
# Decided where the shoulders show it clearly (|facing| above this), kept in between (a side view).
FACING_MIN = 0.3
_SHOULDER_WIDTH = 0.6  # of the neck -> mid-hip length (the synthetic people's proportions: 1.6 / 2.8)
_SIDE_SWAP = kp.side_swap(face=False)


def facing(kps: np.ndarray, min_conf: float = MIN_CONF) -> float | None:
    """Which way a body faces, from `(137, 3)` keypoints, in [-1, 1]: the shoulder line (right -> left
    shoulder) across the body's down direction (neck -> mid-hip, else the image's down), as a fraction of
    the usual shoulder width (0.6 of the neck -> mid-hip length; without hips, of the line's own length).
    About +1 for a person facing the camera (their right shoulder on the image's left), -1 seen from
    behind, near 0 in profile. None without both shoulders."""
    ok = _valid(kps[BODY], min_conf)
    if not (ok[R_SHOULDER] and ok[L_SHOULDER]):
        return None
    across = kps[L_SHOULDER, :2] - kps[R_SHOULDER, :2]
    down, width = np.array([0.0, 1.0]), float(np.linalg.norm(across))
    if ok[NECK] and ok[kp.MID_HIP]:
        d = kps[kp.MID_HIP, :2] - kps[NECK, :2]
        if np.linalg.norm(d) > 1e-6:
            down, width = d / np.linalg.norm(d), _SHOULDER_WIDTH * float(np.linalg.norm(d))
    if width < 1e-6:
        return None
    return float(np.clip((across[0] * down[1] - across[1] * down[0]) / width, -1.0, 1.0))  # 2D cross


def _valid(kps: np.ndarray, min_conf: float = MIN_CONF) -> np.ndarray:
    """(N,) bool: which keypoints are present."""
    return kps[:, 2] >= min_conf


def bone_lengths(body: np.ndarray, min_conf: float = MIN_CONF) -> np.ndarray:
    """(25,) length of the bone ending at each BODY_25 joint (NaN: an end is missing, or the neck)."""
    out = np.full(len(BODY_25_PARENTS), np.nan, dtype=np.float64)
    ok = _valid(body, min_conf)
    for j, p in enumerate(BODY_25_PARENTS):
        if p >= 0 and ok[j] and ok[p]:
            out[j] = float(np.linalg.norm(body[j, :2] - body[p, :2]))
    return out


def _median_ratio(num: np.ndarray, den: np.ndarray) -> float | None:
    """Median of num/den over entries where both are finite and positive (None if there are none)."""
    ok = np.isfinite(num) & np.isfinite(den) & (num > 1e-6) & (den > 1e-6)
    return float(np.median(num[ok] / den[ok])) if ok.any() else None


def _root(body: np.ndarray, min_conf: float = MIN_CONF) -> np.ndarray | None:
    """The tree root: the neck, else the middle of the shoulders, else the centroid of the body joints."""
    ok = _valid(body, min_conf)
    if ok[NECK]:
        return body[NECK, :2].astype(np.float64)
    if ok[R_SHOULDER] and ok[L_SHOULDER]:
        return (body[R_SHOULDER, :2] + body[L_SHOULDER, :2]).astype(np.float64) / 2
    return body[ok, :2].mean(axis=0).astype(np.float64) if ok.any() else None


class PoseRetargeter:
    """Maps driving whole-body keypoints onto the reference body (see the module docstring).

    `ref_kps`: `(137, 3)` reference keypoints in reference-crop pixels. The first call with a person fixes
    the driving statistics (frame 0); `reset()` forgets them (a new driving video).
    """

    def __init__(self, ref_kps: np.ndarray, *, min_conf: float = MIN_CONF, keep_position: bool = False):
        ref_kps = np.asarray(ref_kps, dtype=np.float32)
        if ref_kps.shape != (NUM_KEYPOINTS, 3):
            raise ValueError(f"expected reference keypoints (137, 3), got {ref_kps.shape}")
        self.min_conf = min_conf
        self.keep_position = keep_position  # True: the body stays where frame 0 put it (no global motion)
        self.ref = ref_kps
        self.ref_body = ref_kps[BODY]
        self.ref_lengths = bone_lengths(self.ref_body, min_conf)
        face = ref_kps[FACE]
        face_ok = _valid(face, min_conf)
        self.ref_face_size = spread(face[face_ok, :2]) if face_ok.sum() >= 3 else None
        self.ref_facing = facing(ref_kps, min_conf)
        self.reset()

    def reset(self) -> None:
        self._lengths0: np.ndarray | None = None  # driving bone lengths in frame 0
        self._root0: np.ndarray | None = None  # driving root (neck) in frame 0
        self._root_out0: np.ndarray | None = None  # where the root lands in frame 0 (reference pixels)
        self.k = 1.0  # body scale: reference pixels per driving pixel
        self.face_k = 1.0
        self._scale = 1.0  # last global scale s_t (held when a frame has no common bone)
        self._last_map: tuple[np.ndarray, np.ndarray] | None = None  # (driving root, output root)
        self.swapped = False  # the driver faces the other way: their left and right are exchanged

    # -- frame 0 ---------------------------------------------------------------------------------------
    def _fit(self, body: np.ndarray, face: np.ndarray) -> None:
        lengths0 = bone_lengths(body, self.min_conf)
        k = _median_ratio(self.ref_lengths, lengths0)
        if k is None:  # no bone in common: fall back to the ratio of the bounding-box heights
            ref_ok, ok = _valid(self.ref_body, self.min_conf), _valid(body, self.min_conf)
            ref_h = np.ptp(self.ref_body[ref_ok, 1]) if ref_ok.sum() >= 2 else 0.0
            drive_h = np.ptp(body[ok, 1]) if ok.sum() >= 2 else 0.0
            k = ref_h / drive_h if ref_h > 0 and drive_h > 0 else 1.0
        self.k = float(k)
        self._lengths0 = lengths0
        self._root0 = _root(body, self.min_conf)
        face_ok = _valid(face, self.min_conf)
        if self.ref_face_size is not None and face_ok.sum() >= 3:
            self.face_k = self.ref_face_size / max(spread(face[face_ok, :2]), 1e-6)
        else:
            self.face_k = self.k
        # Place frame 0: centroid of the joints present in both skeletons -> the reference's centroid.
        rel = self._body_relative(body, 1.0)
        common = _valid(self.ref_body, self.min_conf) & _valid(body, self.min_conf)
        if common.any():
            self._root_out0 = self.ref_body[common, :2].mean(axis=0) - rel[common].mean(axis=0)
        else:
            root_ref = _root(self.ref_body, self.min_conf)
            self._root_out0 = root_ref if root_ref is not None else np.zeros(2)

    # -- per frame -------------------------------------------------------------------------------------
    def _body_relative(self, body: np.ndarray, scale: float) -> np.ndarray:
        """(25, 2) retargeted body joints relative to the output root (the tree walk)."""
        ok = _valid(body, self.min_conf)
        root = _root(body, self.min_conf)
        rel = np.zeros((len(BODY_25_PARENTS), 2), dtype=np.float64)
        placed = np.zeros(len(BODY_25_PARENTS), dtype=bool)
        placed[NECK] = True  # rel[NECK] = 0: the root (a missing neck is estimated by `_root`)
        for j in BODY_25_ORDER[1:]:
            if not ok[j]:
                continue
            p = BODY_25_PARENTS[j]
            ref_len = self.ref_lengths[j]
            if placed[p] and (ok[p] or p == NECK) and np.isfinite(ref_len):
                parent_drive = body[p, :2] if ok[p] else root
                d = body[j, :2] - parent_drive
                norm = np.linalg.norm(d)
                direction = d / norm if norm > 1e-6 else np.zeros(2)
                rel[j] = rel[p] + direction * ref_len * scale
            else:  # unreachable or a bone the reference lacks: uniform map around the root
                rel[j] = (body[j, :2] - root) * self.k
            placed[j] = True
        return rel

    def _global_scale(self, body: np.ndarray) -> float:
        ratio = _median_ratio(bone_lengths(body, self.min_conf), self._lengths0)
        if ratio is not None:
            self._scale = float(np.clip(ratio, *_SCALE_LIMITS))
        return self._scale

    def __call__(self, drive_kps: np.ndarray) -> np.ndarray:
        """`(137, 3)` driving keypoints (driving-frame pixels) -> `(137, 3)` in reference-crop pixels."""
        drive_kps = np.asarray(drive_kps, dtype=np.float32)
        drive_kps = self._facing_the_reference(drive_kps)
        body, face = drive_kps[BODY], drive_kps[FACE]
        root = _root(body, self.min_conf)
        out = np.zeros_like(drive_kps)
        if root is None:  # no body joint at all: nothing to retarget
            return out
        if self._lengths0 is None:
            self._fit(body, face)
        scale = self._global_scale(body)
        root_out = self._root_out0 + (0.0 if self.keep_position else (root - self._root0) * self.k)
        self._last_map = (root, root_out)
        ok = _valid(body, self.min_conf)
        body_out = self._body_relative(body, scale) + root_out
        out[BODY, :2] = np.where(ok[:, None], body_out, 0.0)
        out[BODY, 2] = np.where(ok, body[:, 2], 0.0)

        def uniform(points: np.ndarray) -> np.ndarray:
            return root_out + (points - root) * self.k

        # Hands and face: rigid, anchored at the body joint they hang from, scaled about it.
        for part, anchor, k in (
            (LEFT_HAND, L_WRIST, self.k),
            (RIGHT_HAND, R_WRIST, self.k),
            (FACE, NOSE, self.face_k),
        ):
            pts = drive_kps[part]
            pok = _valid(pts, self.min_conf)
            if not pok.any():
                continue
            if ok[anchor]:
                moved = body_out[anchor] + (pts[:, :2] - body[anchor, :2]) * k
            else:
                moved = uniform(pts[:, :2])
            out[part, :2] = np.where(pok[:, None], moved, 0.0)
            out[part, 2] = np.where(pok, pts[:, 2], 0.0)
        return out

    def _facing_the_reference(self, drive_kps: np.ndarray) -> np.ndarray:
        """`drive_kps` with left and right exchanged while the driver faces the other way from the
        reference (`FACING_MIN`; in profile the last decision holds)."""
        now = facing(drive_kps, self.min_conf)
        clear = now is not None and abs(now) >= FACING_MIN
        if clear and self.ref_facing is not None and abs(self.ref_facing) >= FACING_MIN:
            self.swapped = (now > 0) != (self.ref_facing > 0)
        return drive_kps[_SIDE_SWAP] if self.swapped else drive_kps

    def driving_box(self, out_hw: tuple[int, int]) -> np.ndarray | None:
        """The box `(x0, y0, x1, y1)` (edge coordinates of the driving frame) that the uniform map of the
        last call sends onto the `out_hw` output canvas: `crops.crop_image(mask, box, out_hw)` brings a
        driving-frame person mask into reference-crop pixels. None before the first person."""
        if self._last_map is None:
            return None
        root, root_out = self._last_map
        # pixel centres: q = root_out + (p - root) * k  <=>  edges: q + 0.5 = (p + 0.5 - x0) * k
        x0, y0 = root + 0.5 - (root_out + 0.5) / self.k
        return np.array([x0, y0, x0 + out_hw[1] / self.k, y0 + out_hw[0] / self.k], np.float32)


_BLINK = 0.5  # a driving eye on frame 0 flatter than this fraction of the reference's is taken as closed


def _aspect(points: np.ndarray) -> float:
    """Height over width of a point set `(N, 2)` (their spreads): an eye's opening."""
    std = points.std(axis=0)
    return float(std[1] / max(std[0], 1e-6))


def _closed_mouth(face: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """`face (70, 2)` landmarks with the mouth closed: the lower lip raised by the opening between the inner
    lips (their mean vertical gap), the corners by a third of it (they follow the jaw part of the way, as
    `data.synthetic` draws them); nothing changes when the lips touch or one of them is missing."""
    if not ok[INNER_UPPER_LIP + INNER_LOWER_LIP].all():
        return face
    gap = float(face[INNER_LOWER_LIP, 1].mean() - face[INNER_UPPER_LIP, 1].mean())
    if gap <= 0:
        return face
    closed = face.copy()
    closed[LOWER_LIP, 1] -= gap
    closed[MOUTH_CORNERS, 1] -= gap / 3
    return closed


class FaceRetargeter:
    """Maps driving face landmarks onto the reference face's proportions, part by part (face mode).

    `ref_kps`: `(137, 3)` reference keypoints in reference-crop pixels (only the face slice is used).
    """

    def __init__(self, ref_kps: np.ndarray, *, min_conf: float = MIN_CONF, keep_position: bool = False):
        ref_kps = np.asarray(ref_kps, dtype=np.float32)
        if ref_kps.shape != (NUM_KEYPOINTS, 3):
            raise ValueError(f"expected reference keypoints (137, 3), got {ref_kps.shape}")
        self.min_conf = min_conf
        self.keep_position = keep_position  # True: the face centre stays on the reference's
        self.ref_face = ref_kps[FACE].astype(np.float64)
        ok = _valid(self.ref_face, min_conf)
        if ok.sum() < 3:
            raise ValueError("the reference has no face landmarks to retarget to")
        self.ref_centre = self.ref_face[ok, :2].mean(axis=0)
        self.ref_size = spread(self.ref_face[ok, :2])
        self.reset()

    def reset(self) -> None:
        self._centre0: np.ndarray | None = None
        self.k = 1.0
        self._parts: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}  # offset, gain, centre0

    def _map(self, face: np.ndarray, ok: np.ndarray | None = None) -> np.ndarray:
        """Global similarity map (frame 0's face centre / size -> the reference's), (70, 2); with
        `keep_position` the frame's own centre is used, so head translation is removed."""
        centre = self._centre0
        if self.keep_position and ok is not None and ok.any():
            centre = face[ok, :2].mean(axis=0)
        return self.ref_centre + (face[:, :2] - centre) * self.k

    def _fit(self, face: np.ndarray, ok: np.ndarray) -> None:
        # Frame 0 is matched to the reference with both mouths closed: a driving video that starts mid-word
        # must not make its open mouth the reference's closed one (every later mouth squashed, the closed
        # lips thinned, the face's centre and size measured with the jaw dropped).
        face = _closed_mouth(face[:, :2], ok)
        self._centre0 = face[ok].mean(axis=0)
        self.k = self.ref_size / max(spread(face[ok]), 1e-6)
        ref_ok = _valid(self.ref_face, self.min_conf)
        mapped = self._map(face)
        ref_face = _closed_mouth(self.ref_face[:, :2], ref_ok)
        for name, idx in FACE_PARTS.items():
            idx = np.array(idx)
            both = idx[ok[idx] & ref_ok[idx]]
            if len(both) < 2:
                continue
            ref_pts, drv_pts = ref_face[both], mapped[both]
            # Per-axis spread ratio: a part keeps the reference's width and height.
            gain = np.clip(ref_pts.std(axis=0) / np.maximum(drv_pts.std(axis=0), 1e-3), *_PART_LIMITS)
            gain = np.where(drv_pts.std(axis=0) < 1e-3, 1.0, gain)  # a flat part (a line) has no spread
            lids = both[both < min(R_PUPIL, L_PUPIL)]  # an eye's lids (not its pupil)
            if (
                name.endswith("_eye")
                and len(lids) >= 4
                and _aspect(mapped[lids]) < _BLINK * _aspect(ref_face[lids])
            ):
                # The driver blinks on frame 0: its closed eye is not the reference's open one (every later
                # open eye drawn up to twice its height); the eye is scaled by its width alone.
                gain[1] = gain[0]
            self._parts[name] = (ref_pts.mean(axis=0) - drv_pts.mean(axis=0), gain, drv_pts.mean(axis=0))

    def __call__(self, drive_kps: np.ndarray) -> np.ndarray:
        """`(137, 3)` driving keypoints -> `(137, 3)` with the face slice in reference-crop pixels."""
        drive_kps = np.asarray(drive_kps, dtype=np.float32)
        face = drive_kps[FACE].astype(np.float64)
        ok = _valid(face, self.min_conf)
        out = np.zeros_like(drive_kps)
        if ok.sum() < 3:
            return out
        if self._centre0 is None:
            self._fit(face, ok)
        mapped = self._map(face, ok)
        result = mapped.copy()
        for name, idx in FACE_PARTS.items():
            if name not in self._parts:
                continue
            idx = np.array(idx)
            present = idx[ok[idx]]
            if len(present) == 0:
                continue
            offset, gain, _ = self._parts[name]
            centre = mapped[present].mean(axis=0)
            # Part moves with the face; its shape is rescaled about its own centre.
            result[present] = centre + offset + (mapped[present] - centre) * gain
        out[FACE, :2] = np.where(ok[:, None], result, 0.0)
        out[FACE, 2] = np.where(ok, face[:, 2], 0.0)
        return out


def make_retargeter(mode: str, ref_kps: np.ndarray, **kw):
    """The retargeter for a model mode: `PoseRetargeter` (pose), `FaceRetargeter` (face)."""
    if mode == "pose":
        return PoseRetargeter(ref_kps, **kw)
    if mode == "face":
        return FaceRetargeter(ref_kps, **kw)
    raise ValueError(f"no keypoint retargeting for mode {mode!r}")
