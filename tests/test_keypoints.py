"""Canonical keypoint layout and OpenPose JSON reading / writing."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fewshotv2v.errors import InputError
from fewshotv2v.semantics import keypoints as kp


def test_layout_constants():
    assert kp.NUM_KEYPOINTS == 137
    assert (kp.BODY.stop - kp.BODY.start, kp.FACE.stop - kp.FACE.start) == (25, 70)
    assert (kp.LEFT_HAND.start, kp.RIGHT_HAND.start, kp.RIGHT_HAND.stop) == (95, 116, 137)
    assert len(kp.BODY_LIMBS) == 24 and len(kp.BODY_NAMES) == 25
    assert len(kp.HAND_LIMBS) == 20 and kp.HAND_FINGERS[4] == (0, 17, 18, 19, 20)
    assert kp.BODY_NAMES[kp.NECK] == "neck" and kp.BODY_NAMES[kp.R_HEEL] == "r_heel"


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
    kps = kp.read_openpose_json(path)
    assert kps.shape == (2, 137, 3) and kps.dtype == np.float32
    body = np.asarray(doc["people"][1]["pose_keypoints_2d"], np.float32).reshape(25, 3)
    np.testing.assert_allclose(kps[1, kp.BODY], body)
    face = np.asarray(doc["people"][0]["face_keypoints_2d"], np.float32).reshape(70, 3)
    np.testing.assert_allclose(kps[0, kp.FACE], face)
    assert (kps[:, kp.RIGHT_HAND] == 0).all()  # empty list -> missing


def test_read_openpose_json_edge_cases(tmp_path):
    p = tmp_path / "empty.json"
    p.write_text(json.dumps({"version": 1.3, "people": []}))
    assert kp.read_openpose_json(p).shape == (0, 137, 3)
    # COCO-18 body: mid-hip derived from the hips, feet missing.
    coco = np.zeros((18, 3), np.float32)
    coco[8], coco[11], coco[1] = (10, 50, 0.9), (30, 52, 0.8), (20, 10, 1.0)
    p.write_text(json.dumps({"people": [{"pose_keypoints_2d": coco.ravel().tolist()}]}))
    k = kp.read_openpose_json(p)[0]
    np.testing.assert_allclose(k[kp.MID_HIP], (20, 51, 0.8))
    np.testing.assert_allclose(k[kp.R_HIP], (10, 50, 0.9))
    assert (k[19:25, 2] == 0).all()
    p.write_text(json.dumps({"people": [{"pose_keypoints_2d": [1, 2, 3, 4]}]}))
    with pytest.raises(InputError, match="expected 75"):
        kp.read_openpose_json(p)
    p.write_text("{not json")
    with pytest.raises(InputError):
        kp.read_openpose_json(p)
    with pytest.raises(InputError, match="not found"):
        kp.read_openpose_json(tmp_path / "missing.json")


def test_write_read_roundtrip(tmp_path):
    rng = np.random.default_rng(1)
    kps = rng.uniform(0, 50, (3, 137, 3)).astype(np.float32)
    kp.write_keypoints_json(tmp_path / "k.json", kps)
    np.testing.assert_allclose(kp.read_keypoints_json(tmp_path / "k.json"), kps, rtol=1e-6)
    kp.write_keypoints_json(tmp_path / "one.json", kps[0])
    assert kp.read_keypoints_json(tmp_path / "one.json").shape == (1, 137, 3)
    with pytest.raises(InputError):
        kp.write_keypoints_json(tmp_path / "bad.json", np.zeros((2, 25, 3)))


def test_person_extent_and_height():
    k = kp.empty()
    k[kp.NOSE] = (50, 20, 1)
    k[kp.NECK] = (50, 40, 1)
    k[kp.R_ANKLE] = (45, 180, 1)
    k[kp.L_ANKLE] = (55, 182, 0.005)  # below the 0.01 threshold: ignored
    top, bottom, x_min, x_max = kp.person_extent(k)
    assert top == pytest.approx(20 - 0.5 * 20)  # head top above the nose by half the nose-neck distance
    assert bottom == 180 and (x_min, x_max) == (45, 50)
    assert kp.person_height(k) == pytest.approx(170)
    assert kp.person_extent(kp.empty()) is None and kp.person_height(kp.empty()) == 0
    np.testing.assert_allclose(kp.bbox(k), (45, 20, 50, 180))


def test_face_points_accepts_68_points():
    pts = np.arange(136, dtype=np.float32).reshape(68, 2)
    f = kp.face_points(pts)
    assert f.shape == (70, 3) and (f[:68, 2] == 1).all() and (f[68:, 2] == 0).all()
    with pytest.raises(InputError):
        kp.face_points(np.zeros((10, 3)))
