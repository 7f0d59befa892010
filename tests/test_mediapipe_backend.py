"""mediapipe Holistic -> canonical keypoints: the mapping on fixed arrays, and a real run on a photo."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from fewshotv2v.errors import ConfigError, DependencyError
from fewshotv2v.semantics import keypoints as kp
from fewshotv2v.semantics.backends import get_backend, register_backend, unregister_backend
from fewshotv2v.semantics.backends.base import Backend, Detection
from fewshotv2v.semantics.backends.mediapipe_backend import (
    MESH_TO_IBUG68,
    holistic_to_canonical,
)

H, W = 200, 100


def fake_pose() -> np.ndarray:
    """33 mediapipe body points (normalised x, y, z, visibility); point i sits at a recognisable place."""
    pose = np.zeros((33, 4), np.float32)
    pose[:, 0] = np.linspace(0.1, 0.9, 33)
    pose[:, 1] = np.linspace(0.05, 0.95, 33)
    pose[:, 3] = 0.9
    pose[11, :2], pose[12, :2] = (0.7, 0.3), (0.3, 0.3)  # left / right shoulder
    pose[23, :2], pose[24, :2] = (0.6, 0.6), (0.4, 0.6)  # hips
    pose[29, :2], pose[31, :2] = (0.6, 0.9), (0.6, 0.95)  # left heel, left foot index (toe towards camera)
    pose[30, :2], pose[32, :2] = (0.4, 0.9), (0.4, 0.95)
    pose[12, 3] = 0.4
    return pose


def test_body_mapping():
    k = holistic_to_canonical(fake_pose(), None, None, None, (H, W), min_visibility=0.0)
    assert k.shape == (137, 3)
    scale = np.array([W, H])
    pose = fake_pose()
    np.testing.assert_allclose(k[kp.NOSE, :2], pose[0, :2] * scale)
    np.testing.assert_allclose(k[kp.R_SHOULDER], (30, 60, 0.4), rtol=1e-6)
    np.testing.assert_allclose(k[kp.L_SHOULDER, :2], (70, 60))
    np.testing.assert_allclose(k[kp.NECK], (50, 60, 0.4), rtol=1e-6)  # mid-shoulders, min visibility
    np.testing.assert_allclose(k[kp.MID_HIP, :2], (50, 120))
    np.testing.assert_allclose(k[kp.R_EYE, :2], pose[5, :2] * scale)
    np.testing.assert_allclose(k[kp.L_EAR, :2], pose[7, :2] * scale)
    np.testing.assert_allclose(k[kp.R_KNEE, :2], pose[26, :2] * scale)
    np.testing.assert_allclose(k[kp.L_ANKLE, :2], pose[27, :2] * scale)
    np.testing.assert_allclose(k[kp.L_HEEL, :2], (60, 180))
    np.testing.assert_allclose(k[kp.L_BIG_TOE, :2], (60, 190))
    # Small toes: 80 % from heel to toe, pushed outwards (away from the mid-hip x = 50).
    heel_to_toe = 10.0
    np.testing.assert_allclose(k[kp.L_SMALL_TOE, :2], (60 + 0.25 * heel_to_toe, 188), atol=1e-4)
    np.testing.assert_allclose(k[kp.R_SMALL_TOE, :2], (40 - 0.25 * heel_to_toe, 188), atol=1e-4)
    assert (k[25:, 2] == 0).all()  # no face, no hands
    # By default, points under mediapipe's 0.5 visibility are missing (and so is the neck built on one).
    k = holistic_to_canonical(fake_pose(), None, None, None, (H, W))
    assert (k[kp.R_SHOULDER] == 0).all() and (k[kp.NECK] == 0).all()
    assert k[kp.L_SHOULDER, 2] == pytest.approx(0.9)


def test_face_and_hand_mapping():
    mesh = np.zeros((478, 3), np.float32)
    mesh[:, 0] = np.arange(478) / 1000.0  # x encodes the vertex index
    mesh[:, 1] = 0.5
    lh = np.tile(np.linspace(0, 1, 21)[:, None], (1, 3)).astype(np.float32)
    rh = lh * 0.5
    k = holistic_to_canonical(None, mesh, lh, rh, (H, W))
    face = k[kp.FACE]
    np.testing.assert_allclose(face[:68, 0], np.array(MESH_TO_IBUG68) / 1000.0 * W, rtol=1e-5)
    assert MESH_TO_IBUG68[8] == 152 and MESH_TO_IBUG68[36] == 33 and MESH_TO_IBUG68[45] == 263  # chin, eyes
    np.testing.assert_allclose(face[68, 0], 468 / 1000.0 * W, rtol=1e-5)  # right pupil = right iris centre
    np.testing.assert_allclose(face[69, 0], 473 / 1000.0 * W, rtol=1e-5)
    assert (face[:, 2] == 1).all() and (k[kp.BODY, 2] == 0).all()
    np.testing.assert_allclose(k[kp.LEFT_HAND, :2], lh[:, :2] * [W, H])
    np.testing.assert_allclose(k[kp.RIGHT_HAND, :2], rh[:, :2] * [W, H])
    # Unrefined mesh (468 points): no pupils.
    k = holistic_to_canonical(None, mesh[:468], None, None, (H, W))
    assert k[25 + 68, 2] == 0 and k[25 + 67, 2] == 1


def test_registry_and_missing_dependency(monkeypatch):
    class Fake(Backend):
        def __init__(self, value=1.0):
            self.value = value

        def detect(self, image):
            return [Detection(kp.empty() + self.value)]

    register_backend("fake", Fake)
    try:
        with get_backend("fake", value=2.0) as b:
            assert b.detect(np.zeros((4, 4, 3), np.uint8))[0].keypoints[0, 0] == 2.0
    finally:
        unregister_backend("fake")
    with pytest.raises(ConfigError, match="unknown keypoint backend 'fake'"):
        get_backend("fake")
    monkeypatch.setitem(sys.modules, "mediapipe", None)  # import fails as if not installed
    with pytest.raises(DependencyError, match=r"fewshotv2v\[pose\]"):
        get_backend("mediapipe")


def test_astronaut_photo():
    pytest.importorskip("mediapipe")
    data = pytest.importorskip("skimage.data")
    img = data.astronaut()  # (512, 512, 3) uint8, head and upper body
    with get_backend("mediapipe", static_image_mode=True) as backend:
        found = backend.detect(img)
    assert len(found) == 1
    det = found[0]
    k = det.keypoints
    assert (k[25:93, 2] > 0).all()  # a face
    face = k[25:93, :2]
    assert 150 < face[:, 0].mean() < 300 and 60 < face[:, 1].mean() < 200  # where her face is
    assert face[8, 1] > face[27, 1] > face[19, 1]  # chin below the nose bridge below the brows
    assert face[36, 0] < face[45, 0]  # person's right eye is on the image's left
    for i in (kp.NOSE, kp.NECK, kp.R_SHOULDER, kp.L_SHOULDER):
        assert k[i, 2] > 0.5
    assert k[kp.R_SHOULDER, 0] < k[kp.NECK, 0] < k[kp.L_SHOULDER, 0]
    assert k[kp.NOSE, 1] < k[kp.NECK, 1]
    assert det.mask is not None and det.mask.shape == (512, 512)
    assert det.mask[k[kp.NECK, 1].astype(int), k[kp.NECK, 0].astype(int)] > 0.5  # on the person
    assert det.mask[20, 480] < 0.5  # background, top right


def _small_astronaut(side: int = 96, at=(560, 400)) -> tuple[np.ndarray, np.ndarray]:
    """The astronaut shrunk to `side` px on a grey 768 x 576 frame (a street scene's walker size) and
    where her nose lands, from a detection on the photo itself."""
    data = pytest.importorskip("skimage.data")
    from fewshotv2v.video import resize_image

    photo = data.astronaut()
    with get_backend("mediapipe", static_image_mode=True) as backend:
        nose = backend.detect(photo)[0].keypoints[kp.NOSE, :2]
    frame = np.full((576, 768, 3), 120, np.uint8)
    frame[at[1] : at[1] + side, at[0] : at[0] + side] = resize_image(photo, side, side)
    return frame, (nose + 0.5) * side / photo.shape[0] - 0.5 + np.asarray(at)


def test_a_person_too_small_for_the_whole_frame_is_found_in_zoomed_crops(monkeypatch):
    pytest.importorskip("mediapipe")
    from fewshotv2v.semantics.backends import mediapipe_backend as mb

    frame, nose = _small_astronaut()
    with get_backend("mediapipe", static_image_mode=True, small_people=False) as backend:
        assert backend.detect(frame) == []  # Holistic alone misses her
    searched = []
    real_tiles = mb.tiles
    monkeypatch.setattr(mb, "tiles", lambda hw: searched.append(hw) or real_tiles(hw))
    with get_backend("mediapipe") as backend:  # video mode: found once by the tiles, then tracked
        for shift in range(0, 12, 3):
            moved = np.roll(frame, shift, axis=1)
            found = backend.detect(moved)
            assert len(found) == 1
            k = found[0].keypoints
            assert np.abs(k[kp.NOSE, :2] - (nose + [shift, 0])).max() < 4  # in frame pixels
            assert (k[k[:, 2] > 0, :2] >= 0).all()  # missing points are not moved off the origin
            mask = found[0].mask
            assert mask.shape == frame.shape[:2]
            assert mask[int(nose[1]) + 12, int(nose[0]) + shift] > 0.5 and mask[50, 50] == 0
    assert searched == [(576, 768)]  # one tile search; the next frames looked around her


def test_tiles_cover_the_frame_half_overlapping():
    from fewshotv2v.semantics.backends.mediapipe_backend import tiles

    boxes = np.stack(tiles((576, 768)))
    assert (boxes[:, 2] - boxes[:, 0] == 288).all() and (boxes[:, 3] - boxes[:, 1] == 288).all()
    assert boxes[:, :2].min() == 0 and boxes[:, 2].max() == 768 and boxes[:, 3].max() == 576
    covered = np.zeros((576, 768), int)
    for x0, y0, x1, y1 in boxes.astype(int):
        covered[y0:y1, x0:x1] += 1
    assert covered.min() >= 1 and len(boxes) == 15  # x at 0, 144, 288, 432, 480; y at 0, 144, 288


def test_after_losing_someone_the_search_takes_the_person_nearest_to_where_they_were():
    from fewshotv2v.semantics.backends.mediapipe_backend import SmallPersonSearch

    def person(x0, y0, x1, y1):
        return Detection(kp.empty(), bbox=np.array([x0, y0, x1, y1], np.float32))

    near, tall = person(110, 100, 140, 170), person(600, 50, 640, 250)
    search = SmallPersonSearch(make_detector=None)  # _pick needs no detector
    search._lost = np.array([90, 90, 170, 170], np.float32)  # the square the lost person was followed in
    assert search._pick([tall, near]) is near
    assert search._lost is None  # used once
    assert search._pick([tall, near]) is tall  # nobody lost: the tallest
    search._lost = np.array([90, 90, 170, 170], np.float32)
    assert search._pick([tall]) is tall  # nobody near where they were: the tallest


def test_still_images_are_searched_each_and_nobody_is_followed_into_the_next():
    pytest.importorskip("mediapipe")
    frame, nose = _small_astronaut()
    elsewhere, nose2 = _small_astronaut(at=(40, 60))
    with get_backend("mediapipe", static_image_mode=True) as backend:
        for image, where in ((frame, nose), (elsewhere, nose2), (frame, nose)):
            found = backend.detect(image)
            assert len(found) == 1
            assert np.abs(found[0].keypoints[kp.NOSE, :2] - where).max() < 4
        assert not backend._small.tracking


def test_detect_near_finds_the_person_followed_beside_someone_else_and_keeps_to_them():
    """Two walkers; the backend reports one (Holistic keeps to whom it found). `detect_near` with the
    other's last box finds the other, and the next frames follow them."""
    pytest.importorskip("mediapipe")
    left, left_nose = _small_astronaut(at=(120, 300))
    right, right_nose = _small_astronaut(at=(560, 300))
    both = np.where(right != 120, right, left)  # both on one grey frame
    with get_backend("mediapipe") as backend:
        first = backend.detect(both)
        assert len(first) == 1
        seen = first[0].keypoints[kp.NOSE, :2]
        other_nose = right_nose if np.abs(seen - left_nose).max() < 4 else left_nose
        other_at = (560, 300) if other_nose is right_nose else (120, 300)
        box = np.array([other_at[0], other_at[1], other_at[0] + 96, other_at[1] + 96], np.float32)
        near = backend.detect_near(both, box)
        assert len(near) == 1 and np.abs(near[0].keypoints[kp.NOSE, :2] - other_nose).max() < 4
        again = backend.detect(both)  # followed from now on
        assert len(again) == 1 and np.abs(again[0].keypoints[kp.NOSE, :2] - other_nose).max() < 4
        assert backend.detect_near(np.full_like(both, 120), box) == []  # nobody there
