"""Person / face crop boxes (SPEC §1), resampling with padding, keypoint transforms and paste-back."""

from __future__ import annotations

import numpy as np
import pytest

from fewshotv2v.errors import InputError, NoPersonError
from fewshotv2v.semantics import crops as C
from fewshotv2v.semantics import keypoints as kp


def standing(top=40.0, bottom=200.0, x=100.0) -> np.ndarray:
    """Nose, neck and ankles: head top = nose - 0.5 * (neck - nose)."""
    k = kp.empty()
    nose_y = top + 10.0
    k[kp.NOSE] = (x, nose_y, 1)
    k[kp.NECK] = (x, nose_y + 20, 1)
    k[kp.R_WRIST] = (x - 30, (top + bottom) / 2, 1)
    k[kp.L_WRIST] = (x + 10, (top + bottom) / 2, 1)
    k[kp.R_ANKLE] = (x - 5, bottom, 1)
    k[kp.L_ANKLE] = (x + 5, bottom, 1)
    return k


def test_pose_box_geometry():
    k = standing()  # person height 160, x span 70..110 -> centre 90
    box = C.pose_crop_box(k, (1000, 1000))
    x0, y0, x1, y1 = box
    assert y1 - y0 == pytest.approx(240)  # 1.5 x height
    assert (x1 - x0) / (y1 - y0) == pytest.approx(0.5)
    assert (x0 + x1) / 2 == pytest.approx(90.5)  # middle of the valid points (+0.5: edge coordinates)
    assert (y0 + y1) / 2 == pytest.approx(120.5)
    box2 = C.pose_crop_box(k, (1000, 1000), scale=2.0, aspect=0.75)
    assert box2[3] - box2[1] == pytest.approx(320) and box2[2] - box2[0] == pytest.approx(240)


def test_pose_box_clamps_and_pads():
    k = standing(top=10, bottom=100, x=10)  # near the top-left corner
    box = C.pose_crop_box(k, (400, 300))
    assert box[0] == 0 and box[1] == 0  # shifted inside the frame, size kept
    assert box[3] - box[1] == pytest.approx(1.5 * 90)  # head top 10 .. ankles 100
    k = standing(top=10, bottom=390, x=150)  # box 570 tall > frame 400: cannot clamp -> padded, centred
    box = C.pose_crop_box(k, (400, 300))
    assert box[1] < 0 and box[3] > 400
    assert (box[1] + box[3]) / 2 == pytest.approx(200.5)
    with pytest.raises(NoPersonError):
        C.pose_crop_box(kp.empty(), (400, 300))


def test_pose_box_jitter():
    k = standing()
    heights, centres = [], []
    for seed in range(200):
        box = C.pose_crop_box(k, (2000, 2000), rng=np.random.default_rng(seed))
        heights.append(box[3] - box[1])
        centres.append((box[0] + box[2]) / 2)
    heights, centres = np.array(heights), np.array(centres)
    assert heights.min() >= 1.4 * 160 - 1e-3 and heights.max() <= 1.6 * 160 + 1e-3
    assert heights.std() > 5  # actually jittered
    assert np.abs(centres - 90.5).max() <= 0.05 * 0.5 * heights.max() + 1e-3
    # Same rng seed -> same box.
    a = C.pose_crop_box(k, (2000, 2000), rng=np.random.default_rng(3))
    np.testing.assert_array_equal(a, C.pose_crop_box(k, (2000, 2000), rng=np.random.default_rng(3)))


def test_face_box():
    face = np.zeros((68, 3), np.float32)
    face[:, 2] = 1
    face[:, 0] = np.linspace(100, 140, 68)  # face width 40
    face[:, 1] = np.linspace(200, 240, 68)  # centre y = 220
    box = C.face_crop_box(face, (1000, 1000))
    assert box[2] - box[0] == pytest.approx(80) and box[3] - box[1] == pytest.approx(80)
    assert (box[0] + box[2]) / 2 == pytest.approx(120.5)
    assert box[1] == pytest.approx(220.5 - 1.25 * 40)  # top = centre - 1.25 w
    k = kp.empty()
    k[25:93] = face
    np.testing.assert_allclose(C.face_crop_box(k, (1000, 1000)), box)
    with pytest.raises(NoPersonError):
        C.face_crop_box(kp.empty(), (100, 100))


def test_crop_image_identity_padding_and_downscale():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
    np.testing.assert_array_equal(C.crop_image(img, (0, 0, 16, 12), (12, 16)), img)
    # Integer shift with padding: 2 black columns then the image.
    out = C.crop_image(img, (-2, 0, 14, 12), (12, 16))
    assert (out[:, :2] == 0).all()
    np.testing.assert_array_equal(out[:, 2:], img[:, :14])
    # Fill value (street labels pad with 255) and nearest keeps label ids.
    lab = rng.integers(0, 19, (8, 8), dtype=np.uint8)
    out = C.crop_image(lab, (-4, 0, 4, 8), (8, 8), interpolation="nearest", fill=255)
    assert (out[:, :4] == 255).all() and set(np.unique(out[:, 4:])) <= set(np.unique(lab))
    # 2x downscale of a constant region stays constant (no dark rim inside the frame).
    flat = np.full((20, 20, 3), 100, np.uint8)
    np.testing.assert_array_equal(C.crop_image(flat, (0, 0, 20, 20), (10, 10)), 100)
    # Anti-aliasing: a 1-px checkerboard shrunk 4x becomes grey, not aliased black/white.
    checker = ((np.indices((32, 32)).sum(0) % 2) * 255).astype(np.uint8)
    small = C.crop_image(checker, (0, 0, 32, 32), (8, 8))
    assert np.abs(small.astype(int) - 128).max() <= 40
    with pytest.raises(InputError):
        C.crop_image(img, (5, 5, 5, 9), (4, 4))
    with pytest.raises(InputError):
        C.crop_image(img, (0, 0, 4, 4), (4, 4), interpolation="cubic")


def test_transform_keypoints_matches_crop_image():
    # A bright pixel at (x=13, y=7) must land where transform_keypoints says after cropping.
    img = np.zeros((40, 60), np.float32)
    img[7, 13] = 1.0
    box = (5.0, 3.0, 25.0, 13.0)  # 20 x 10 -> 80 x 40: 4x upscale
    out = C.crop_image(img, box, (40, 80))
    iy, ix = np.unravel_index(np.argmax(out), out.shape)
    k = np.array([[13.0, 7.0, 1.0]])
    t = C.transform_keypoints(k, box, (40, 80))
    assert abs(t[0, 0] - ix) <= 0.5 + 1e-6 and abs(t[0, 1] - iy) <= 0.5 + 1e-6
    np.testing.assert_allclose(C.untransform_keypoints(t, box, (40, 80)), k, atol=1e-5)
    missing = C.transform_keypoints(np.array([[13.0, 7.0, 0.0]]), box, (40, 80))
    assert (missing == 0).all()


def test_paste_back_roundtrip():
    yy, xx = np.mgrid[0:48, 0:64]
    frame = np.stack([xx * 4, yy * 5, 128 + 60 * np.sin(xx / 5.0)], -1).astype(np.uint8)  # smooth image
    box = (16.0, 8.0, 32.0, 40.0)  # 16 x 32 region
    patch = C.crop_image(frame, box, (64, 32))  # 2x upscale
    back = C.paste_back(np.zeros_like(frame), patch, box)
    assert back[:8].sum() == 0 and back[:, :16].sum() == 0  # outside the box untouched
    err = np.abs(back[10:38, 18:30].astype(int) - frame[10:38, 18:30]).mean()
    assert err < 2  # bilinear up then anti-aliased down: close to the original
    # Box partly outside the frame: only the inside part is written; mask blends.
    half = np.full((10, 10, 3), 200, np.uint8)
    out = C.paste_back(np.zeros((20, 20, 3), np.uint8), half, (-5, -5, 5, 5), mask=np.full((10, 10), 0.5))
    assert out[2, 2, 0] == 100 and out[10, 10].sum() == 0
