"""Keypoint retargeting (SPEC §5): driving motion on the reference's body / face proportions."""

from __future__ import annotations

import numpy as np
import pytest

from fewshotv2v.semantics.keypoints import BODY, FACE, LEFT_HAND, NUM_KEYPOINTS, RIGHT_HAND
from fewshotv2v.semantics.retarget import (
    BODY_25_PARENTS,
    FACE_PARTS,
    FaceRetargeter,
    PoseRetargeter,
    bone_lengths,
    make_retargeter,
)

# A standing person (BODY_25, unit-ish coordinates, y down), neck at the origin.
_STAND = {
    0: (0, -1.0), 1: (0, 0), 2: (-0.8, 0), 3: (-1.0, 1.2), 4: (-1.1, 2.3), 5: (0.8, 0), 6: (1.0, 1.2),
    7: (1.1, 2.3), 8: (0, 2.8), 9: (-0.5, 2.8), 10: (-0.55, 4.5), 11: (-0.6, 6.2), 12: (0.5, 2.8),
    13: (0.55, 4.5), 14: (0.6, 6.2), 15: (-0.2, -1.2), 16: (0.2, -1.2), 17: (-0.45, -1.1), 18: (0.45, -1.1),
    19: (0.8, 6.5), 20: (0.95, 6.45), 21: (0.55, 6.35), 22: (-0.8, 6.5), 23: (-0.95, 6.45), 24: (-0.55, 6.35),
}  # fmt: skip


def _person(scale=40.0, offset=(100.0, 60.0), leg=1.0, arm=1.0, seed=0) -> np.ndarray:
    """(137, 3) keypoints: the standing body with leg/arm proportions, a 70-point face and two hands."""
    rng = np.random.default_rng(seed)
    kps = np.zeros((NUM_KEYPOINTS, 3), np.float32)
    body = np.array([_STAND[j] for j in range(25)], np.float64)
    # Stretch limbs: rebuild the tree with per-bone factors.
    out = np.zeros_like(body)
    from fewshotv2v.semantics.retarget import BODY_25_ORDER

    for j in BODY_25_ORDER[1:]:
        p = BODY_25_PARENTS[j]
        f = leg if j in (10, 11, 13, 14) else arm if j in (3, 4, 6, 7) else 1.0
        out[j] = out[p] + (body[j] - body[p]) * f
    kps[BODY, :2] = out * scale + offset
    kps[BODY, 2] = 0.9
    nose = kps[0, :2]
    face = rng.normal(size=(70, 2)) * 0.25 * scale + nose
    kps[FACE, :2], kps[FACE, 2] = face, 0.8
    for part, wrist in ((LEFT_HAND, 7), (RIGHT_HAND, 4)):
        kps[part, :2] = kps[wrist, :2] + rng.normal(size=(21, 2)) * 0.2 * scale
        kps[part, 2] = 0.7
    return kps


def _directions(body: np.ndarray) -> np.ndarray:
    d = np.zeros((25, 2))
    for j, p in enumerate(BODY_25_PARENTS):
        if p >= 0:
            v = body[j, :2] - body[p, :2]
            d[j] = v / np.linalg.norm(v)
    return d


def _bent(kps: np.ndarray, angle: float) -> np.ndarray:
    """Rotate the right arm about the shoulder (a different pose, same bone lengths)."""
    kps = kps.copy()
    c, s = np.cos(angle), np.sin(angle)
    rot = np.array([[c, -s], [s, c]])
    sh = kps[2, :2].copy()
    for j in (3, 4):
        kps[j, :2] = (kps[j, :2] - sh) @ rot.T + sh
    kps[RIGHT_HAND, :2] = (kps[RIGHT_HAND, :2] - sh) @ rot.T + sh
    return kps


def test_bone_lengths_match_reference_and_directions_kept():
    ref = _person(scale=30, offset=(64, 40), leg=1.0, arm=1.0)
    drive0 = _person(scale=55, offset=(300, 200), leg=1.6, arm=0.7, seed=1)  # other proportions
    rt = PoseRetargeter(ref)
    out0 = rt(drive0)
    ref_len = bone_lengths(ref[BODY])
    np.testing.assert_allclose(bone_lengths(out0[BODY])[1:], ref_len[1:], rtol=1e-4)
    drive1 = _bent(drive0, 0.9)
    out1 = rt(drive1)
    np.testing.assert_allclose(bone_lengths(out1[BODY])[1:], ref_len[1:], rtol=1e-4)
    np.testing.assert_allclose(_directions(out1[BODY]), _directions(drive1[BODY]), atol=1e-5)
    # Confidences pass through, the output is in reference-crop pixels (near the reference).
    np.testing.assert_array_equal(out1[:, 2], drive1[:, 2])
    assert np.abs(out0[BODY, :2].mean(0) - ref[BODY, :2].mean(0)).max() < 1e-3


def test_global_scale_and_translation_follow_the_driver():
    ref = _person(scale=30, offset=(64, 40))
    drive0 = _person(scale=50, offset=(300, 200), leg=1.3)
    rt = PoseRetargeter(ref)
    out0 = rt(drive0)
    k = rt.k
    # The driver comes 1.5x closer (scaled about the neck) and walks right by 40 px.
    drive1 = drive0.copy()
    drive1[:, :2] = (drive0[:, :2] - drive0[1, :2]) * 1.5 + drive0[1, :2] + [40.0, 0.0]
    out1 = rt(drive1)
    np.testing.assert_allclose(bone_lengths(out1[BODY])[1:], 1.5 * bone_lengths(ref[BODY])[1:], rtol=1e-4)
    np.testing.assert_allclose(out1[1, :2] - out0[1, :2], [40.0 * k, 0.0], atol=1e-3)


def test_hands_and_face_move_rigidly_with_their_anchors():
    ref = _person(scale=30, offset=(64, 40))
    drive0 = _person(scale=50, offset=(300, 200), arm=1.4, seed=3)
    rt = PoseRetargeter(ref)
    rt(drive0)
    drive1 = _bent(drive0, -0.6)
    out1 = rt(drive1)
    # Hand shape = driving hand shape around the wrist, scaled by k, anchored at the retargeted wrist.
    rel_in = drive1[RIGHT_HAND, :2] - drive1[4, :2]
    rel_out = out1[RIGHT_HAND, :2] - out1[4, :2]
    np.testing.assert_allclose(rel_out, rel_in * rt.k, atol=1e-3)
    rel_face_in = drive1[FACE, :2] - drive1[0, :2]
    rel_face_out = out1[FACE, :2] - out1[0, :2]
    np.testing.assert_allclose(rel_face_out, rel_face_in * rt.face_k, atol=1e-3)


def test_missing_joints_stay_missing_and_half_body_reference_falls_back():
    ref = _person(scale=30, offset=(64, 40))
    ref[[10, 11, 13, 14, 19, 20, 21, 22, 23, 24], 2] = 0  # a half-body photo: no lower legs / feet
    drive = _person(scale=50, offset=(300, 200), leg=1.5)
    drive[[3], 2] = 0  # right elbow lost: the wrist hangs off the uniform map
    rt = PoseRetargeter(ref)
    out = rt(drive)
    assert out[3, 2] == 0 and np.all(out[3, :2] == 0)
    assert np.all(out[[4, 10, 11, 14], 2] > 0)
    assert np.all(np.isfinite(out))
    # Upper-body bones present in both keep the reference lengths.
    upper = [2, 5, 6, 7, 8]
    np.testing.assert_allclose(bone_lengths(out[BODY])[upper], bone_lengths(ref[BODY])[upper], rtol=1e-4)
    # No person -> all missing.
    assert not rt(np.zeros((NUM_KEYPOINTS, 3), np.float32)).any()


def _face(scale, centre, seed=0, distort=0.0):
    """A random 70-point face; `distort` stretches each part about its centre by up to that fraction."""
    rng = np.random.default_rng(0)
    pts = rng.normal(size=(70, 2))
    part_rng = np.random.default_rng(seed)
    for idx in FACE_PARTS.values():
        c = pts[idx].mean(0)
        pts[idx] = c + (pts[idx] - c) * (1 + part_rng.uniform(-distort, distort, size=2))
    kps = np.zeros((NUM_KEYPOINTS, 3), np.float32)
    kps[FACE, :2] = pts * scale + centre
    kps[FACE, 2] = 1.0
    return kps


def test_face_parts_take_the_reference_proportions():
    ref = _face(20, (128, 128))
    drive0 = _face(45, (400, 300), seed=1, distort=0.3)  # other proportions, part by part
    rt = make_retargeter("face", ref)
    assert isinstance(rt, FaceRetargeter)
    out0 = rt(drive0)[FACE, :2]
    ref_face = ref[FACE, :2]
    for name, idx in FACE_PARTS.items():
        if name == "mouth":  # matched with both mouths closed (random points open them at random)
            continue
        np.testing.assert_allclose(out0[idx].mean(0), ref_face[idx].mean(0), atol=1e-3)
        np.testing.assert_allclose(out0[idx].std(0), ref_face[idx].std(0), rtol=1e-3)
    # The driver opens the mouth: the output mouth opens too, other parts stay put.
    drive1 = drive0.copy()
    mouth = [25 + i for i in FACE_PARTS["mouth"]]
    centre = drive1[mouth, :2].mean(0)
    drive1[mouth, 1] = (drive1[mouth, 1] - centre[1]) * 1.8 + centre[1]
    out1 = rt(drive1)[FACE, :2]
    mouth_idx = FACE_PARTS["mouth"]
    assert out1[mouth_idx, 1].std() > 1.5 * out0[mouth_idx, 1].std()
    np.testing.assert_allclose(out1[FACE_PARTS["jaw"]], out0[FACE_PARTS["jaw"]], atol=1e-3)


def test_a_driving_video_that_starts_mid_word_does_not_squash_the_mouth():
    """The driver's first frame has the mouth open: its parts are matched to the reference's with both
    mouths closed, so the driver's closed mouth later is drawn as the reference's closed mouth (matching
    the open one squashed every later mouth and thinned the closed lips to 0.6 of their height)."""
    from fewshotv2v.data.synthetic import _face_shape

    def face(mouth: float, scale, centre) -> np.ndarray:
        kps = np.zeros((NUM_KEYPOINTS, 3), np.float32)
        kps[FACE, :2] = _face_shape(mouth) * scale + centre
        kps[FACE, 2] = 1.0
        return kps

    ref = face(0.0, 40, (128, 128))
    ref_mouth = ref[FACE, :2][FACE_PARTS["mouth"]]
    mouth = FACE_PARTS["mouth"]
    for shape in ((90, 90), (110, 80)):  # the driver's face as the reference's, or wider and shorter
        rt = make_retargeter("face", ref)
        opened = rt(face(1.0, shape, (300, 260)))[FACE, :2]
        closed = rt(face(0.0, shape, (300, 260)))[FACE, :2]
        np.testing.assert_allclose(closed[mouth].std(0), ref_mouth.std(0), rtol=0.01)
        np.testing.assert_allclose(closed[mouth].mean(0), ref_mouth.mean(0), atol=0.3)
        assert opened[mouth, 1].std() > 1.5 * ref_mouth[:, 1].std()  # the first frame's open mouth shows


def test_face_retargeter_needs_a_reference_face():
    with pytest.raises(ValueError):
        FaceRetargeter(np.zeros((NUM_KEYPOINTS, 3), np.float32))
    with pytest.raises(ValueError):
        make_retargeter("street", np.zeros((NUM_KEYPOINTS, 3), np.float32))


def test_driving_box_maps_the_driving_frame_onto_the_output_canvas():
    from fewshotv2v.semantics.crops import transform_keypoints

    ref = _person(scale=6, offset=(16, 12))
    drive = _person(scale=50, offset=(300, 200), leg=1.3)
    rt = PoseRetargeter(ref)
    assert rt.driving_box((64, 32)) is None
    out = rt(drive)
    box = rt.driving_box((64, 32))
    mapped = transform_keypoints(drive, box, (64, 32))  # the uniform map: scale k about the neck
    np.testing.assert_allclose(mapped[1, :2], out[1, :2], atol=1e-3)
    np.testing.assert_allclose(box[2] - box[0], 32 / rt.k, rtol=1e-5)


def test_facing_tells_front_from_back_and_a_back_view_is_retargeted_like_the_front():
    """A walker seen from behind has their right shoulder on the image's right: the retargeter exchanges
    the driver's left and right (body and hands), so the limb on the image's right drives the reference's
    limb there. Without it the torso's similarity turned 180 degrees. In profile the decision holds."""
    from fewshotv2v.semantics import keypoints as kp
    from fewshotv2v.semantics.retarget import facing

    ref = _person()
    front = _person(scale=50, offset=(300, 200), arm=1.3)
    front[FACE, 2] = 0  # seen from behind there is no face; the same front, for the comparison
    back = front[kp.side_swap(face=False)]  # the same points, labels of a body seen from behind
    assert facing(ref) > 0.9 and facing(back) < -0.9
    profile = back.copy()
    neck_x = back[kp.NECK, 0]
    profile[[kp.R_SHOULDER, kp.L_SHOULDER], 0] = neck_x + 3.0, neck_x - 3.0  # one behind the other
    assert abs(facing(profile)) < 0.3

    expected = PoseRetargeter(ref)(front)
    rt = PoseRetargeter(ref)
    np.testing.assert_allclose(rt(back), expected, atol=1e-4)
    assert rt.swapped
    rt(profile)
    assert rt.swapped  # in profile: the last decision
    same_way = PoseRetargeter(ref)
    same_way(front)
    assert not same_way.swapped


def test_a_driver_who_blinks_on_the_first_frame_does_not_get_bulging_eyes():
    """Frame 0 with the driver's eyes shut: matching the shut eye to the reference's open one drew every
    later open eye at twice its height (the gain's limit); a flat driving eye is scaled by its width."""
    from fewshotv2v.data.synthetic import _face_shape

    def face(eyes: float, scale, centre) -> np.ndarray:
        kps = np.zeros((NUM_KEYPOINTS, 3), np.float32)
        kps[FACE, :2] = _face_shape(0.0, eyes) * scale + centre
        kps[FACE, 2] = 1.0
        return kps

    ref = face(1.0, 40, (128, 128))
    lids = list(range(36, 42))
    for first in (1.0, 0.05):  # the driver's eyes open on frame 0, or shut
        rt = make_retargeter("face", ref)
        rt(face(first, 90, (300, 260)))
        opened = rt(face(1.0, 90, (300, 260)))[FACE, :2]
        height, ref_height = opened[lids, 1].std(), ref[FACE, 1][lids].std()
        assert height == pytest.approx(ref_height, rel=0.05), first
