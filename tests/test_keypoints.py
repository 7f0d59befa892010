"""Canonical keypoint layout and OpenPose JSON reading / writing."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fewshotv2v.errors import InputError
from fewshotv2v.semantics import keypoints as K


def test_layout_constants():
    assert K.NUM_KEYPOINTS == 137
    assert (K.BODY.stop - K.BODY.start, K.FACE.stop - K.FACE.start) == (25, 70)
    assert (K.LEFT_HAND.start, K.RIGHT_HAND.start, K.RIGHT_HAND.stop) == (95, 116, 137)
    assert len(K.BODY_LIMBS) == 24 and len(K.BODY_NAMES) == 25
    assert len(K.HAND_LIMBS) == 20 and K.HAND_FINGERS[4] == (0, 17, 18, 19, 20)
    assert K.BODY_NAMES[K.NECK] == "neck" and K.BODY_NAMES[K.R_HEEL] == "r_heel"


def _openpose_doc(rng):
    people = []
    for _ in range(2):
        people.append(
            {
                "person_id": [-1],
                "pose_keypoints_2d": rng.uniform(1, 100, 75).round(2).tolist(),
                "face_keypoints_2d": rng.uniform(1, 100, 210).round(2).tolist(),
                "hand_left_keypoints_2d": rng.uniform(1, 100, 63).round(2).tolist(),
                "hand_right_keypoints_2d": [],
            }
        )
    return {"version": 1.3, "people": people}


def test_read_openpose_json(tmp_path):
    doc = _openpose_doc(np.random.default_rng(0))
    path = tmp_path / "frame_000000_keypoints.json"
    path.write_text(json.dumps(doc))
    kps = K.read_openpose_json(path)
    assert kps.shape == (2, 137, 3) and kps.dtype == np.float32
    body = np.asarray(doc["people"][1]["pose_keypoints_2d"], np.float32).reshape(25, 3)
    np.testing.assert_allclose(kps[1, K.BODY], body)
    face = np.asarray(doc["people"][0]["face_keypoints_2d"], np.float32).reshape(70, 3)
    np.testing.assert_allclose(kps[0, K.FACE], face)
    assert (kps[:, K.RIGHT_HAND] == 0).all()  # empty list -> missing


def test_read_openpose_json_edge_cases(tmp_path):
    p = tmp_path / "empty.json"
    p.write_text(json.dumps({"version": 1.3, "people": []}))
    assert K.read_openpose_json(p).shape == (0, 137, 3)
    # COCO-18 body: mid-hip derived from the hips, feet missing.
    coco = np.zeros((18, 3), np.float32)
    coco[8], coco[11], coco[1] = (10, 50, 0.9), (30, 52, 0.8), (20, 10, 1.0)
    p.write_text(json.dumps({"people": [{"pose_keypoints_2d": coco.ravel().tolist()}]}))
    k = K.read_openpose_json(p)[0]
    np.testing.assert_allclose(k[K.MID_HIP], (20, 51, 0.8))
    np.testing.assert_allclose(k[K.R_HIP], (10, 50, 0.9))
    assert (k[19:25, 2] == 0).all()
    p.write_text(json.dumps({"people": [{"pose_keypoints_2d": [1, 2, 3, 4]}]}))
    with pytest.raises(InputError, match="expected 75"):
        K.read_openpose_json(p)
    p.write_text("{not json")
    with pytest.raises(InputError):
        K.read_openpose_json(p)
    with pytest.raises(InputError, match="not found"):
        K.read_openpose_json(tmp_path / "missing.json")


def test_write_read_roundtrip(tmp_path):
    rng = np.random.default_rng(1)
    kps = rng.uniform(0, 50, (3, 137, 3)).astype(np.float32)
    K.write_keypoints_json(tmp_path / "k.json", kps)
    np.testing.assert_allclose(K.read_keypoints_json(tmp_path / "k.json"), kps, rtol=1e-6)
    K.write_keypoints_json(tmp_path / "one.json", kps[0])
    assert K.read_keypoints_json(tmp_path / "one.json").shape == (1, 137, 3)
    with pytest.raises(InputError):
        K.write_keypoints_json(tmp_path / "bad.json", np.zeros((2, 25, 3)))


def test_person_extent_and_height():
    k = K.empty()
    k[K.NOSE] = (50, 20, 1)
    k[K.NECK] = (50, 40, 1)
    k[K.R_ANKLE] = (45, 180, 1)
    k[K.L_ANKLE] = (55, 182, 0.005)  # below the 0.01 threshold: ignored
    top, bottom, x_min, x_max = K.person_extent(k)
    assert top == pytest.approx(20 - 0.5 * 20)  # head top above the nose by half the nose-neck distance
    assert bottom == 180 and (x_min, x_max) == (45, 50)
    assert K.person_height(k) == pytest.approx(170)
    assert K.person_extent(K.empty()) is None and K.person_height(K.empty()) == 0
    np.testing.assert_allclose(K.bbox(k), (45, 20, 50, 180))


def test_face_points_accepts_68_points():
    pts = np.arange(136, dtype=np.float32).reshape(68, 2)
    f = K.face_points(pts)
    assert f.shape == (70, 3) and (f[:68, 2] == 1).all() and (f[68:, 2] == 0).all()
    with pytest.raises(InputError):
        K.face_points(np.zeros((10, 3)))
