"""Checkpoint folders (atomic, keep-last, resume lookup), RNG state, EMA and the train config."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch
from torch import nn

from fewshotv2v.errors import CheckpointError, ConfigError
from fewshotv2v.training import checkpoint as ckpt
from fewshotv2v.training.config import LossWeights, TrainConfig
from fewshotv2v.training.ema import EMA


def _write(step_value):
    def write(folder):
        torch.save({"step": step_value}, folder / ckpt.STATE_FILE)
        (folder / "model.safetensors").write_bytes(b"x")

    return write


def test_keep_last_and_atomic_rename(tmp_path):
    manager = ckpt.CheckpointManager(tmp_path, keep_last=2)
    for step in (10, 20, 30):
        manager.save(step, _write(step))
    assert [s for s, _ in manager.complete()] == [20, 30]
    assert manager.latest().name == "step-00000030"
    # a crash mid-write leaves a temporary folder: never listed, removed by the next save
    stale = tmp_path / "checkpoints" / ".tmp-step-00000040-999"
    stale.mkdir()
    (stale / ckpt.STATE_FILE).write_bytes(b"partial")
    assert manager.latest().name == "step-00000030"
    manager.save(50, _write(50))
    assert not stale.exists()
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["step-00000030", "step-00000050"]


def test_failed_write_leaves_nothing(tmp_path):
    manager = ckpt.CheckpointManager(tmp_path, keep_last=3)
    manager.save(1, _write(1))

    def broken(folder):
        (folder / "model.safetensors").write_bytes(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError):
        manager.save(2, broken)
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["step-00000001"]


def test_resave_same_step_replaces(tmp_path):
    manager = ckpt.CheckpointManager(tmp_path)
    manager.save(5, _write(1))
    manager.save(5, _write(2))
    assert ckpt.load_training_state(manager.latest()) == {"step": 2}
    assert len(list((tmp_path / "checkpoints").iterdir())) == 1


def test_resolve_resume(tmp_path):
    assert ckpt.resolve_resume("auto", tmp_path) is None  # nothing yet: start from scratch
    manager = ckpt.CheckpointManager(tmp_path)
    manager.save(3, _write(3))
    manager.save(7, _write(7))
    assert ckpt.resolve_resume("auto", tmp_path).name == "step-00000007"
    assert ckpt.resolve_resume(str(tmp_path), tmp_path / "other").name == "step-00000007"
    assert ckpt.resolve_resume(str(manager.complete()[0][1]), tmp_path).name == "step-00000003"
    with pytest.raises(CheckpointError, match="no complete checkpoint"):
        ckpt.resolve_resume(str(tmp_path / "missing"), tmp_path)


def test_training_state_is_weights_only_loadable(tmp_path):
    opt = torch.optim.Adam(nn.Linear(3, 2).parameters(), betas=(0.0, 0.999))
    opt.zero_grad()
    sum(p.sum() for group in opt.param_groups for p in group["params"]).backward()
    opt.step()
    state = {"step": 4, "opt": opt.state_dict(), "rng": ckpt.capture_rng_state()}
    ckpt.save_training_state(tmp_path, state)
    loaded = torch.load(tmp_path / ckpt.STATE_FILE, weights_only=True)
    assert loaded["step"] == 4 and loaded["opt"]["param_groups"][0]["betas"] == (0.0, 0.999)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / ckpt.STATE_FILE).write_bytes(b"not a torch file")
    with pytest.raises(CheckpointError, match="cannot read"):
        ckpt.load_training_state(tmp_path / "bad")


def test_rng_state_round_trip():
    state = ckpt.capture_rng_state()
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    random.random(), np.random.rand(), torch.rand(3)  # move on
    ckpt.restore_rng_state(state)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected


def test_ema_update_and_own_state_dict():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    ema = EMA(model, beta=0.9, warmup=False)
    start = ema.module[0].weight.clone()
    with torch.no_grad():
        model[0].weight.add_(1.0)
        model[1].running_mean.fill_(3.0)
    ema.update(model)
    assert torch.allclose(ema.module[0].weight, start + 0.1)  # 0.9 * w + 0.1 * (w + 1)
    assert torch.equal(ema.module[1].running_mean, torch.full((2,), 3.0))  # buffers copied
    assert set(ema.state_dict()) == set(model.state_dict())  # no wrapper prefix
    assert not any(p.requires_grad for p in ema.module.parameters())


def test_ema_warmup():
    model = nn.Linear(1, 1, bias=False)
    ema = EMA(model, beta=0.999)
    assert ema.current_beta() == pytest.approx(0.1)  # first update: mostly the new weights
    with torch.no_grad():
        model.weight.fill_(1.0)
        ema.module.weight.fill_(0.0)
    ema.update(model)
    assert ema.module.weight.item() == pytest.approx(0.9)
    ema.num_updates = 10**6
    assert ema.current_beta() == 0.999


def test_train_config_schedule_and_files(tmp_path):
    cfg = TrainConfig(single_frame_steps=100, clip_len_start=2, clip_len_double_every=50, clip_len_max=8)
    assert [cfg.clip_len(s) for s in (0, 99, 100, 149, 150, 200, 250, 10_000)] == [1, 1, 2, 2, 4, 8, 8, 8]
    toml = tmp_path / "t.toml"
    toml.write_text("[train]\nsteps = 7\nlr_g = 1\nperceptual = 'none'\n")
    from_file = TrainConfig.from_file(toml)
    assert (from_file.steps, from_file.lr_g, from_file.perceptual) == (7, 1.0, "none")
    assert from_file.replace(steps=9, batch_size=None).steps == 9  # None = flag not given
    cfg.save(tmp_path / "c.json")
    assert TrainConfig.from_dict(json.loads((tmp_path / "c.json").read_text())) == cfg
    with pytest.raises(ConfigError, match="unknown train config key"):
        TrainConfig.from_dict({"stepz": 1})
    with pytest.raises(ConfigError, match="precision"):
        TrainConfig(precision="fp8")
    with pytest.raises(ConfigError, match="batch_size"):
        TrainConfig(batch_size=0)
    with pytest.raises(ConfigError, match="not found"):
        TrainConfig.from_file(tmp_path / "missing.toml")


def test_train_config_loss_weights_are_flat_w_keys(tmp_path):
    toml = tmp_path / "w.toml"
    toml.write_text("[train]\nw_feature_matching = 2\nw_face = 0.5\n")
    cfg = TrainConfig.from_file(toml)
    assert cfg.loss_weights == LossWeights(feature_matching=2.0, face=0.5)
    data = cfg.to_dict()
    assert data["w_feature_matching"] == 2.0 and data["w_gan"] == 1.0 and "loss_weights" not in data
    assert TrainConfig.from_dict(data) == cfg
    assert cfg.replace(w_gan=3).loss_weights.gan == 3.0
    with pytest.raises(ConfigError, match="w_mask"):
        cfg.replace(w_mask=-1)
