"""The mode registry (`fewshotv2v.modes`): consistent with the presets, one place to add a mode."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import numpy as np
import pytest

from fewshotv2v import modes
from fewshotv2v.config import PRESETS, ModelConfig
from fewshotv2v.errors import ConfigError, InputError
from fewshotv2v.semantics import crops
from fewshotv2v.semantics import keypoints as kp
from fewshotv2v.semantics.label_maps import build_label_map

UNKNOWN = "unknown mode 'nope'; expected one of pose, face, street"


def _expected_label_nc(config: ModelConfig) -> int:
    """docs/architecture.md: pose = skeleton RGB + optional person mask, face = edge map, street = one-hot."""
    return {
        "pose": config.skeleton_nc + int(config.use_person_mask),
        "face": config.face_nc,
        "street": config.num_classes,
    }[config.mode]


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_registry_matches_every_preset(name):
    config = ModelConfig.preset(name)
    mode = modes.get_mode(config.mode)
    assert mode is config.mode_info and mode.name == config.mode
    assert mode.label_channels(config) == config.label_nc == _expected_label_nc(config)
    assert config.combine == mode.default_combine
    assert (config.person_channel is not None) == (mode.has_person_mask and config.use_person_mask)


def test_registry_entries():
    assert list(modes.MODES) == ["pose", "face", "street"]
    assert [m.subject for m in modes.MODES.values()] == ["person", "face", "scene"]
    assert modes.keypoint_modes() == ("pose", "face")
    assert [m.framing for m in modes.MODES.values()] == ["body", "face", None]
    assert [m.name for m in modes.MODES.values() if m.face_discriminator] == ["pose"]
    assert all(key == m.name for key, m in modes.MODES.items())


def test_unknown_mode_message_is_the_same_everywhere():
    with pytest.raises(ConfigError) as exc:
        modes.get_mode("nope")
    assert str(exc.value) == UNKNOWN
    with pytest.raises(ConfigError) as exc:
        ModelConfig(mode="nope")
    assert str(exc.value) == UNKNOWN
    with pytest.raises(ConfigError) as exc:
        build_label_map("nope", None, (8, 8), config=ModelConfig.preset("tiny"))
    assert str(exc.value) == UNKNOWN


def test_crop_box_dispatch():
    rng = np.random.default_rng(0)
    kps = np.zeros((kp.NUM_KEYPOINTS, 3), np.float32)
    kps[kp.BODY, :2] = rng.uniform(40, 160, (25, 2))
    kps[kp.FACE, :2] = rng.uniform(80, 120, (70, 2))
    kps[kp.BODY, 2] = kps[kp.FACE, 2] = 1.0
    hw = (200, 300)
    np.testing.assert_array_equal(
        modes.get_mode("pose").crop_box(kps, hw, aspect=0.75, clamp=False),
        crops.pose_crop_box(kps, hw, aspect=0.75, clamp=False),
    )
    np.testing.assert_array_equal(
        modes.get_mode("face").crop_box(kps, hw, clamp=False), crops.face_crop_box(kps, hw, clamp=False)
    )
    np.testing.assert_array_equal(modes.get_mode("street").crop_box(None, hw), [0, 0, 300, 200])


def _hands_label_map(kps_in_crop, out_hw, *, config, **_):
    if kps_in_crop is None:
        raise InputError("hands label map needs keypoints")
    return np.zeros((config.face_nc + 1, *out_hw), np.float32)


def test_a_new_mode_is_one_registry_entry(monkeypatch):
    """A hypothetical extra mode, registered in a copy of the registry: config validation, label channels,
    default combine and the label-map builder follow without touching any other module."""
    hands = dataclasses.replace(
        modes.MODES["face"],
        name="hands",
        subject="hand",
        label_channels=lambda c: c.face_nc + 1,
        label_map=f"{__name__}:_hands_label_map",
        default_combine="matting",
    )
    monkeypatch.setattr(modes, "MODES", {**modes.MODES, "hands": hands})
    config = ModelConfig.preset("tiny-face", mode="hands")
    assert config.label_nc == 2 and config.combine == "matting" and config.mode_info is hands
    label = build_label_map("hands", np.zeros((137, 3), np.float32), config.size, config=config)
    assert label.shape == (2, *config.size)
    with pytest.raises(ConfigError, match="expected one of pose, face, street, hands"):
        ModelConfig(mode="nope")


def test_modes_import_is_light():
    code = "import sys, fewshotv2v.modes; print('numpy' in sys.modules, 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
