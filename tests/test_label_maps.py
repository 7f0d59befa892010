"""build_label_map: the model input for each mode (pose skeleton + mask, face edges, street one-hot)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from fewshotv2v.errors import ConfigError, InputError
from fewshotv2v.semantics import crops as C
from fewshotv2v.semantics import keypoints as kp
from fewshotv2v.semantics.label_maps import build_label_map


def frame_person() -> np.ndarray:
    """A person standing in a 240 x 320 (H x W) frame."""
    k = kp.empty()
    pts = {
        kp.NOSE: (160, 40), kp.NECK: (160, 64), kp.R_SHOULDER: (144, 64), kp.L_SHOULDER: (176, 64),
        kp.R_ELBOW: (138, 96), kp.L_ELBOW: (182, 96), kp.R_WRIST: (134, 124), kp.L_WRIST: (186, 124),
        kp.MID_HIP: (160, 130), kp.R_HIP: (150, 130), kp.L_HIP: (170, 130), kp.R_KNEE: (150, 170),
        kp.L_KNEE: (170, 170), kp.R_ANKLE: (150, 210), kp.L_ANKLE: (170, 210),
    }  # fmt: skip
    for i, p in pts.items():
        k[i] = (*p, 1.0)
    return k


def test_pose_label_map_with_mask():
    k = frame_person()
    box = C.pose_crop_box(k, (240, 320))
    kc = C.transform_keypoints(k, box, (64, 32))
    mask = np.zeros((64, 32), np.uint8)
    mask[10:50, 8:24] = 255
    cfg = SimpleNamespace(label_nc=4, use_person_mask=True)
    lab = build_label_map("pose", kc, (64, 32), config=cfg, mask=mask)
    assert lab.shape == (4, 64, 32) and lab.dtype == np.float32
    assert lab.min() >= 0.0 and lab.max() <= 1.0
    assert lab[:3].max() == 1.0  # skeleton drawn
    np.testing.assert_array_equal(lab[3], mask / 255.0)
    # The skeleton sits in the middle of the crop: the neck is at half the width.
    neck = kc[kp.NECK]
    assert lab[:3, int(round(neck[1])), int(round(neck[0]))].sum() > 0
    # A mask at another resolution is resized; a missing mask is an error for a mask model.
    lab2 = build_label_map("pose", kc, (64, 32), config=cfg, mask=np.ones((128, 64), np.float32))
    np.testing.assert_allclose(lab2[3], 1.0)
    with pytest.raises(InputError, match="mask"):
        build_label_map("pose", kc, (64, 32), config=cfg)


def test_pose_label_map_without_mask_and_limb_drop():
    kc = C.transform_keypoints(frame_person(), C.pose_crop_box(frame_person(), (240, 320)), (128, 64))
    cfg = SimpleNamespace(label_nc=3)  # no use_person_mask attribute -> False
    full = build_label_map("pose", kc, (128, 64), config=cfg)
    assert full.shape == (3, 128, 64)
    rng = np.random.default_rng(0)
    dropped = build_label_map("pose", kc, (128, 64), config=cfg, rng=rng, limb_drop=0.5)
    assert 0 < (dropped.sum(0) > 0).sum() < (full.sum(0) > 0).sum()
    with pytest.raises(ConfigError, match="label_nc=4"):
        build_label_map("pose", kc, (128, 64), config=SimpleNamespace(label_nc=4, use_person_mask=False))


def test_face_and_street_label_maps():
    face = np.zeros((68, 3), np.float32)
    t = np.linspace(0, 2 * np.pi, 68)
    face[:, 0], face[:, 1], face[:, 2] = 32 + 20 * np.cos(t), 32 + 20 * np.sin(t), 1
    lab = build_label_map("face", face, (64, 64), config=SimpleNamespace(label_nc=1))
    assert lab.shape == (1, 64, 64) and lab.max() == 1.0 and lab[0, 0, 0] == 0
    label = np.array([[0, 1], [255, 3]], np.uint8)
    oh = build_label_map(
        "street", None, (4, 4), config=SimpleNamespace(label_nc=5, num_classes=5), label=label
    )
    assert oh.shape == (5, 4, 4)
    np.testing.assert_array_equal(oh.sum(0), 1)
    assert oh[0, 0, 0] == 1 and oh[1, 0, 3] == 1 and oh[4, 3, 0] == 1 and oh[3, 3, 3] == 1  # 255 -> other
    with pytest.raises(InputError):
        build_label_map("street", None, (4, 4), config=SimpleNamespace(label_nc=5))
    with pytest.raises(ConfigError, match="unknown mode"):
        build_label_map("depth", None, (4, 4), config=SimpleNamespace(label_nc=1))


def test_with_model_config_presets():
    config = pytest.importorskip("fewshotv2v.config")
    cfg = config.ModelConfig.preset("tiny")
    k = frame_person()
    kc = C.transform_keypoints(k, C.pose_crop_box(k, (240, 320)), (cfg.height, cfg.width))
    mask = np.ones((cfg.height, cfg.width), np.float32) if cfg.use_person_mask else None
    lab = build_label_map("pose", kc, (cfg.height, cfg.width), config=cfg, mask=mask)
    assert lab.shape == (cfg.label_nc, cfg.height, cfg.width)
    street = config.ModelConfig.preset("tiny-street")
    lab = build_label_map(
        "street", None, (street.height, street.width), config=street, label=np.zeros((8, 16), np.uint8)
    )
    assert lab.shape == (street.label_nc, street.height, street.width)
