"""ModelConfig: presets, derived values, JSON round trip, validation errors."""

from __future__ import annotations

import json

import pytest

from fewshotv2v.config import CONFIG_VERSION, PRESETS, ModelConfig
from fewshotv2v.errors import ConfigError


@pytest.mark.parametrize("name", list(PRESETS))
def test_presets_round_trip_through_json(name):
    config = ModelConfig.preset(name)
    assert config.name == name
    data = json.loads(json.dumps(config.to_dict()))
    assert data["version"] == CONFIG_VERSION
    assert ModelConfig.from_dict(data) == config


def test_preset_values_follow_the_spec():
    pose = ModelConfig.preset("pose")
    assert (pose.height, pose.width, pose.label_nc, pose.combine) == (512, 256, 4, "spade")
    assert pose.channels == (32, 64, 128, 256, 512, 1024)
    assert ModelConfig.preset("pose", use_person_mask=False).label_nc == 3
    face = ModelConfig.preset("face")
    assert (face.height, face.width, face.label_nc) == (256, 256, 1)
    assert ModelConfig.preset("face512").size == (512, 512)
    street = ModelConfig.preset("street")
    assert (street.size, street.label_nc, street.combine) == ((256, 512), 20, "matting")
    tiny = ModelConfig.preset("tiny")
    assert tiny.ch_base == 8 and tiny.ch_max == 64 and tiny.mode == "pose"


def test_config_is_frozen_and_replace_validates():
    config = ModelConfig.preset("tiny")
    with pytest.raises(AttributeError):
        config.height = 128  # type: ignore[misc]
    assert config.replace(height=128).height == 128
    with pytest.raises(ConfigError, match="divisible"):
        config.replace(height=100)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"height": 500}, "divisible by 32"),
        ({"mode": "cartoon"}, "unknown mode"),
        ({"combine": "blend"}, "unknown combine"),
        ({"ch_base": 0}, "ch_base must be a positive integer"),
        ({"ch_max": 16, "ch_base": 32}, "ch_max"),
        ({"num_generated_levels": 6}, "num_generated_levels"),
        ({"attention_level": 7}, "attention_level"),
        ({"height": 32, "width": 32}, "too small"),
        ({"height": 51200}, "at most 4096"),
    ],
)
def test_invalid_values_raise_config_error(changes, message):
    with pytest.raises(ConfigError, match=message):
        ModelConfig.preset("pose", **changes)


def test_unknown_preset_and_keys_and_versions():
    with pytest.raises(ConfigError, match="unknown preset 'nope'.*pose"):
        ModelConfig.preset("nope")
    data = ModelConfig.preset("tiny").to_dict()
    with pytest.raises(ConfigError, match="unknown model config key.*bogus"):
        ModelConfig.from_dict({**data, "bogus": 1})
    with pytest.raises(ConfigError, match="newer"):
        ModelConfig.from_dict({**data, "version": CONFIG_VERSION + 1})
    with pytest.raises(ConfigError, match="not a fewshotv2v model config"):
        ModelConfig.from_dict({**data, "format": "something-else"})
    with pytest.raises(ConfigError, match="JSON object"):
        ModelConfig.from_dict([1, 2])  # type: ignore[arg-type]
