"""The training loop: determinism, learning, resume, non-finite guard, run-folder outputs, CLI checks."""

from __future__ import annotations

import json
import struct
import zlib

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from fewshotv2v.cli import app
from fewshotv2v.config import ModelConfig
from fewshotv2v.errors import TrainingError
from fewshotv2v.training.config import TrainConfig
from fewshotv2v.training.logging import encode_png, plot_losses, read_log
from fewshotv2v.training.trainer import Trainer, dataset_loader

runner = CliRunner()


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def pose_data(tmp_path_factory):
    """3 synthetic people x 10 frames at 64 x 64 (the tiny model crops 64 x 32 around the person)."""
    from fewshotv2v.data.synthetic import generate_dataset

    root = tmp_path_factory.mktemp("data") / "pose"
    generate_dataset(root, identities=3, frames=10, size=(64, 64), seed=0)
    return root


def make_trainer(data, run_dir, **overrides) -> Trainer:
    from fewshotv2v.data.dataset import TrainingDataset

    mcfg = ModelConfig.preset("tiny")
    base = dict(
        steps=3, batch_size=2, perceptual="none", workers=0, log_every=1, sample_every=1000,
        checkpoint_every=1000, single_frame_steps=2, clip_len_start=2, clip_len_max=2, seed=3,
    )  # fmt: skip
    tcfg = TrainConfig(**{**base, **overrides})
    ds = TrainingDataset(data, mcfg, k_max=mcfg.k_max, seed=tcfg.seed)
    return Trainer(mcfg, tcfg, dataset_loader(ds), len(ds), run_dir, device="cpu")


def logged_losses(run_dir) -> list[tuple[int, dict]]:
    return [(r["step"], r["losses"]) for r in read_log(run_dir / "log.jsonl")]


def test_same_seed_same_losses(pose_data, tmp_path):
    a = make_trainer(pose_data, tmp_path / "a")
    a.fit()
    b = make_trainer(pose_data, tmp_path / "b")
    b.fit()
    la, lb = logged_losses(tmp_path / "a"), logged_losses(tmp_path / "b")
    assert [s for s, _ in la] == [1, 2, 3]
    assert la == lb  # bit-identical on CPU
    # the temporal stage (step 3, T = 2) ran and the prev-warp UNet started as a copy of the ref one
    assert json.loads((tmp_path / "a" / "log.jsonl").read_text().splitlines()[-1])["T"] == 2
    assert a.prev_initialised
    # outputs of the run folder
    assert (tmp_path / "a" / "losses.png").read_bytes().startswith(b"\x89PNG")
    assert sorted(p.name for p in (tmp_path / "a" / "samples").iterdir()) == ["step-00000003.png"]
    ckpt = tmp_path / "a" / "checkpoints" / "step-00000003"
    names = sorted(p.name for p in ckpt.iterdir())
    assert names == [
        "checksums.json", "config.json", "discriminator.safetensors", "generator_raw.safetensors",
        "model.safetensors", "training_state.pt",
    ]  # fmt: skip
    state = torch.load(ckpt / "training_state.pt", weights_only=True)
    assert state["step"] == 3 and state["nonfinite"] == 0 and state["prev_initialised"]
    c = make_trainer(pose_data, tmp_path / "c", seed=4, steps=1)
    c.fit()
    assert logged_losses(tmp_path / "c")[0][1] != la[0][1]


def test_training_reduces_warp_losses(pose_data, tmp_path):
    """The flow network W learns quickly to warp the reference onto the target: on a fixed batch the
    warp and occlusion-mask losses fall within a dozen steps."""
    t = make_trainer(pose_data, tmp_path / "r", steps=100, single_frame_steps=100, lr_g=1e-3, k_max=1)
    batch = next(iter(_loader(t)))
    rows = []
    for _ in range(12):
        losses = t.train_step(batch).losses
        rows.append(losses["g_warp"] + losses["g_mask"])
    assert np.mean(rows[-3:]) < 0.95 * np.mean(rows[:3]), rows


def test_resume_continues_identically(pose_data, tmp_path):
    full = make_trainer(pose_data, tmp_path / "full", steps=4, checkpoint_every=2)
    full.fit()
    part = make_trainer(pose_data, tmp_path / "part", steps=2, checkpoint_every=2)
    part.fit()
    resumed = make_trainer(
        pose_data, tmp_path / "part", steps=4, checkpoint_every=2,
    )  # fmt: skip
    resumed._load_checkpoint(tmp_path / "part" / "checkpoints" / "step-00000002")
    assert resumed.step == 2
    resumed.fit()
    assert resumed.step == 4
    assert logged_losses(tmp_path / "part") == logged_losses(tmp_path / "full")
    for mine, theirs in ((full.generator, resumed.generator), (full.ema.module, resumed.ema.module)):
        a, b = mine.state_dict(), theirs.state_dict()
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert resumed.ema.num_updates == full.ema.num_updates


def test_nonfinite_loss_is_skipped_then_aborts(pose_data, tmp_path):
    t = make_trainer(pose_data, tmp_path / "n", steps=3, nonfinite_limit=2)
    calls = {"n": 0}

    def poison_first(module, args, output):
        calls["n"] += 1
        if calls["n"] == 1:  # only the very first frame
            output.image = output.image * float("nan")
        return output

    handle = t.generator.register_forward_hook(poison_first)
    before = {k: v.clone() for k, v in t.discriminators.state_dict().items()}
    t.train_step(next(iter(_loader(t))))
    assert t.nonfinite == 1 and t.step == 1
    # the skipped step changed no weights (D's loss was non-finite before its optimizer step)
    after = t.discriminators.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before if "_u" not in k and "_v" not in k)
    handle.remove()

    t.generator.register_forward_hook(
        lambda m, a, out: setattr(out, "image", out.image * float("nan")) or out
    )
    with pytest.raises(TrainingError, match="non-finite"):
        t.fit()
    assert t.nonfinite == 2


def _loader(trainer):
    from torch.utils.data import DataLoader

    from fewshotv2v.training.distributed import SeededItems, StepBatchSampler

    sampler = StepBatchSampler(
        trainer.num_items, trainer.tcfg.batch_size, info=trainer.info, seed=0, start_step=0, total_steps=1,
        clip_len=trainer.tcfg.clip_len,
    )  # fmt: skip
    return DataLoader(SeededItems(trainer.load_item, trainer.num_items, 0), batch_sampler=sampler)


# ---- CLI -------------------------------------------------------------------------------------------------


def _train_args(data, run, *extra):
    return [
        "train", "--data", str(data), "--preset", "tiny", "--run", str(run), "--steps", "2",
        "--batch-size", "1", "--perceptual", "none", "--workers", "0", "--device", "cpu",
        "--single-frame-steps", "1", "--checkpoint-every", "1", "--keep-last", "1", *extra,
    ]  # fmt: skip


def test_cli_train_and_resume(pose_data, tmp_path):
    run = tmp_path / "run"
    result = runner.invoke(app, _train_args(pose_data, run))
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().endswith("step-00000002")
    assert json.loads((run / "train_config.json").read_text())["steps"] == 2
    assert json.loads((run / "model_config.json").read_text())["name"] == "tiny"
    assert [p.name for p in (run / "checkpoints").iterdir()] == ["step-00000002"]  # keep-last 1
    # the run folder exists: refuse without --resume / --overwrite
    again = runner.invoke(app, _train_args(pose_data, run))
    assert again.exit_code == 5 and "--resume auto" in " ".join(again.output.split())
    more = runner.invoke(app, _train_args(pose_data, run, "--resume", "auto", "--steps", "3"))
    assert more.exit_code == 0, more.output
    assert [r["step"] for r in read_log(run / "log.jsonl")][-1] == 3
    assert json.loads((run / "train_config.json").read_text())["steps"] == 3
    # finetune: a new run starts from the checkpoint's (EMA) generator
    model = run / "checkpoints" / "step-00000003"
    tuned = runner.invoke(
        app, _train_args(pose_data, tmp_path / "tuned", "--init", str(model), "--steps", "1")
    )
    assert tuned.exit_code == 0, tuned.output
    assert f"initialised from {model}" in " ".join(tuned.output.split())  # not "from scratch"
    t = make_trainer(pose_data, tmp_path / "t2")
    t._load_init(model)
    from fewshotv2v.models.io import load_pretrained

    pretrained, _ = load_pretrained(model)
    ours, theirs = t.generator.state_dict(), pretrained.state_dict()
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)
    assert t.prev_initialised  # a pretrained prev-warp UNet is kept


def test_cli_train_early_errors(pose_data, tmp_path, monkeypatch):
    not_data = tmp_path / "nothing"
    not_data.mkdir()
    r = runner.invoke(app, _train_args(not_data, tmp_path / "r1"))
    assert r.exit_code == 3 and "not a fewshotv2v dataset" in r.output
    r = runner.invoke(app, [*_train_args(pose_data, tmp_path / "r2"), "--preset", "tiny-face"])
    assert r.exit_code == 2 and "pose data" in r.output and "--preset pose" in " ".join(r.output.split())
    # `--config` is the settings file, before the command; `train --config` is not an option of train
    r = runner.invoke(app, [*_train_args(pose_data, tmp_path / "r2b"), "--config", "tiny-face"])
    assert r.exit_code == 2 and "No such option: --config" in r.output
    settings = tmp_path / "settings.toml"
    settings.write_text('device = "cpu"\n')
    r = runner.invoke(
        app, ["--config", str(settings), *_train_args(pose_data, tmp_path / "r2c"), "--preset", "x"]
    )
    assert r.exit_code == 2 and "--preset 'x' is neither a preset" in " ".join(r.output.split())
    monkeypatch.setenv("FSV2V_HUB__OFFLINE", "1")
    args = [a for a in _train_args(pose_data, tmp_path / "r3") if a not in ("--perceptual", "none")]
    r = runner.invoke(app, args)
    out = " ".join(r.output.split())
    assert r.exit_code != 0 and "fsv2v download vgg19" in out and "--perceptual none" in out
    assert not (tmp_path / "r3").exists()  # nothing written before the checks pass


# ---- run-folder drawing helpers ----------------------------------------------------------------------------


def _decode_png(data: bytes) -> np.ndarray:
    pos, idat, w, h = 8, b"", 0, 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            w, h = struct.unpack(">II", body[:8])
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw = np.frombuffer(zlib.decompress(idat), np.uint8).reshape(h, 1 + 3 * w)
    assert (raw[:, 0] == 0).all()
    return raw[:, 1:].reshape(h, w, 3)


def test_png_and_loss_plot():
    img = np.random.default_rng(0).integers(0, 256, (7, 5, 3), dtype=np.uint8)
    assert np.array_equal(_decode_png(encode_png(img)), img)
    records = [
        {"step": s, "losses": {"g_gan": 1.0 / (s + 1), "d_image": 2.0 - s / 100}} for s in range(0, 50, 5)
    ]
    canvas = plot_losses(records)
    assert canvas.shape == (110, 480, 3)
    assert (canvas == [30, 90, 200]).all(-1).sum() > 50  # the G curve
    assert (canvas == [200, 60, 40]).all(-1).sum() > 50  # the D curve


@pytest.mark.parametrize("preset", ["tiny-face", "tiny-street"])
def test_train_step_other_modes(preset, tmp_path):
    """Face (no face D) and street (matting, one-hot labels) train on a random batch of 2-frame clips."""
    mcfg = ModelConfig.preset(preset)
    tcfg = TrainConfig(steps=1, batch_size=2, perceptual="none", workers=0, single_frame_steps=0, k_max=2)
    t = Trainer(mcfg, tcfg, lambda *a: {}, 1, tmp_path, device="cpu")
    g = torch.Generator().manual_seed(0)
    b, k, n, h, w, c = 2, 2, 2, mcfg.height, mcfg.width, mcfg.label_nc
    batch = {
        "ref_images": torch.rand(b, k, 3, h, w, generator=g) * 2 - 1,
        "ref_labels": torch.rand(b, k, c, h, w, generator=g),
        "ref_face_boxes": -torch.ones(b, k, 4),
        "images": torch.rand(b, n, 3, h, w, generator=g) * 2 - 1,
        "labels": torch.rand(b, n, c, h, w, generator=g),
        "face_boxes": -torch.ones(b, n, 4),
    }
    res = t.train_step(batch)
    assert not res.skipped and res.clip_len == 2
    assert "g_face" not in res.losses and "d_face" not in res.losses
    assert all(np.isfinite(v) for v in res.losses.values())
    assert res.losses["g_warp"] > 0  # the previous-frame warp entered on frame 1


def test_temporal_stage_copies_ref_unet_into_prev(pose_data, tmp_path):
    t = make_trainer(pose_data, tmp_path / "p", single_frame_steps=1)
    g = t.generator
    copied = []
    original = g.init_prev_combine_from_ref

    def spy():
        original()
        ref, prev = g.combine_ref.state_dict(), g.combine_prev.state_dict()
        copied.append(all(torch.equal(ref[k], prev[k]) for k in ref))

    g.init_prev_combine_from_ref = spy
    batch = next(iter(_loader(t)))
    t.train_step(batch)  # single-frame stage: nothing copied
    assert copied == [] and not t.prev_initialised
    t.train_step(batch)  # first temporal step: copied once
    t.train_step(batch)
    assert copied == [True] and t.prev_initialised


def _same(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return all(torch.equal(sa[k], sb[k]) for k in sa)


def test_temporal_stage_copies_ref_unet_into_the_ema_prev_unet_too(pose_data, tmp_path):
    """The EMA copy (what checkpoints save) gets the copy as well: at the first EMA update of the
    temporal stage its prev UNet starts from its ref UNet, not from the prev UNet's random init."""
    t = make_trainer(pose_data, tmp_path / "p", single_frame_steps=1)
    ema, seen = t.ema, []
    original = ema.update

    def spy(model):
        seen.append(_same(ema.module.combine_ref, ema.module.combine_prev))
        original(model)

    ema.update = spy
    batch = next(iter(_loader(t)))
    t.train_step(batch)  # single-frame stage (T = 1): one G step, prev UNet untouched
    assert seen == [False]
    t.train_step(batch)  # first temporal step: copied in both before the first update
    assert seen[1] is True


def test_init_from_a_single_frame_model_still_copies_the_prev_unet(pose_data, tmp_path):
    """`--init` keeps a pretrained prev UNet, but a model saved before the temporal stage never had one."""
    early = make_trainer(pose_data, tmp_path / "early", steps=1, single_frame_steps=5)
    folder = early.fit().checkpoint
    t = make_trainer(pose_data, tmp_path / "t", single_frame_steps=0)
    t._load_init(folder)
    assert not t.prev_initialised
    t.ema.copy_from(t.generator)
    t.train_step(next(iter(_loader(t))))
    assert t.prev_initialised
    # a folder from before the flag existed: its prev UNet is kept, as before
    from safetensors.torch import load_file, save_file

    from fewshotv2v.models.io import WEIGHTS_NAME, read_metadata

    meta = read_metadata(folder)
    del meta["prev_initialised"]
    save_file(load_file(folder / WEIGHTS_NAME), folder / WEIGHTS_NAME, metadata=meta)
    (folder / "checksums.json").unlink()  # such folders have no checksums.json either
    old = make_trainer(pose_data, tmp_path / "old")
    old._load_init(folder)
    assert old.prev_initialised


@pytest.mark.parametrize(
    "term, key", [("g_fm", "w_feature_matching"), ("g_warp", "w_warp"), ("g_face", "w_face")]
)
def test_trainer_reads_the_loss_weights(pose_data, tmp_path, term, key):
    """All weights 0 but one: the G total the step optimised is exactly that term times its weight."""
    zero = {f"w_{name}": 0.0 for name in ("gan", "feature_matching", "perceptual", "warp", "mask", "face")}
    tcfg = TrainConfig(steps=1, batch_size=2, perceptual="none", workers=0).replace(**{**zero, key: 3.0})
    t = make_trainer(pose_data, tmp_path / "w", loss_weights=tcfg.loss_weights)
    assert t.loss_weights == tcfg.loss_weights
    res = t.train_step(next(iter(_loader(t))))
    assert res.losses[term] != 0  # computed (g_face, -D(fake), may have either sign)
    assert res.losses["g_total"] == pytest.approx(3.0 * res.losses[term], rel=1e-5)


def test_reconstruction_only_training_runs_no_discriminator(pose_data, tmp_path):
    """No adversarial weight: no D step (D unchanged, no d_* logged), G still learns from the L1 term."""
    zero = {f"w_{n}": 0.0 for n in ("gan", "feature_matching", "perceptual", "warp", "face", "temporal")}
    tcfg = TrainConfig(steps=1, batch_size=2, perceptual="none", workers=0).replace(
        **zero, w_reconstruction=2.0
    )
    assert not tcfg.loss_weights.adversarial and TrainConfig().loss_weights.adversarial
    t = make_trainer(pose_data, tmp_path / "l1", loss_weights=tcfg.loss_weights)
    d_before = {k: v.clone() for k, v in t.discriminators.state_dict().items()}
    g_before = {k: v.clone() for k, v in t.generator.state_dict().items()}
    res = t.train_step(next(iter(_loader(t))))
    assert not any(name.startswith("d_") for name in res.losses)
    assert not {"g_gan", "g_fm", "g_face"} & set(res.losses)
    assert all(torch.equal(v, t.discriminators.state_dict()[k]) for k, v in d_before.items())
    assert any(not torch.equal(v, t.generator.state_dict()[k]) for k, v in g_before.items())
    assert res.losses["g_total"] == pytest.approx(
        2.0 * res.losses["g_l1"] + 10.0 * res.losses["g_mask"], rel=1e-5
    )


def test_temporal_discriminator_is_trained_when_the_model_has_one(tmp_path):
    """use_temporal_discriminator: from the T_d-th frame of a clip the temporal D gets a D step on the last
    T_d real vs generated frames and G a weighted hinge term (logged as d_temporal / g_temporal)."""
    mcfg = ModelConfig.preset("tiny", use_temporal_discriminator=True)
    zero = {f"w_{name}": 0.0 for name in ("gan", "feature_matching", "perceptual", "warp", "mask", "face")}
    tcfg = TrainConfig(steps=1, batch_size=2, perceptual="none", workers=0, single_frame_steps=0, k_max=1)
    tcfg = tcfg.replace(**zero, w_temporal=2.0)
    t = Trainer(mcfg, tcfg, lambda *a: {}, 1, tmp_path, device="cpu")
    g = torch.Generator().manual_seed(0)
    b, n, h, w, c = 2, 3, mcfg.height, mcfg.width, mcfg.label_nc
    batch = {
        "ref_images": torch.rand(b, 1, 3, h, w, generator=g) * 2 - 1,
        "ref_labels": torch.rand(b, 1, c, h, w, generator=g),
        "ref_face_boxes": -torch.ones(b, 1, 4),
        "images": torch.rand(b, n, 3, h, w, generator=g) * 2 - 1,
        "labels": torch.rand(b, n, c, h, w, generator=g),
        "face_boxes": -torch.ones(b, n, 4),
    }
    d_before = {k: v.clone() for k, v in t.discriminators.temporal_net.state_dict().items()}
    g_before = {k: v.clone() for k, v in t.generator.decoder.named_parameters()}
    res = t.train_step(batch)
    assert not res.skipped and {"d_temporal", "g_temporal"} <= set(res.losses)
    # only the last of the 3 frames has 3 frames of history; all other weights are 0
    assert res.losses["g_total"] == pytest.approx(2.0 * res.losses["g_temporal"] / 3, rel=1e-5)
    d_after = t.discriminators.temporal_net.state_dict()
    assert any(not torch.equal(d_before[k], d_after[k]) for k in d_before)
    g_after = dict(t.generator.decoder.named_parameters())  # (weights only: frames 0, 1 give zero grads)
    assert any(not torch.equal(g_before[k], g_after[k]) for k in g_before)  # G learned from it
    # a model without one: no temporal terms
    plain = Trainer(ModelConfig.preset("tiny"), tcfg, lambda *a: {}, 1, tmp_path / "p", device="cpu")
    assert not {"d_temporal", "g_temporal"} & set(plain.train_step(batch).losses)


def test_d_steps_run_only_for_a_discriminator_the_model_has():
    """A weighted face / temporal term alone needs D steps only when the model has that D."""
    from fewshotv2v.training.config import LossWeights

    only_temporal = LossWeights(gan=0.0, feature_matching=0.0, face=0.0, temporal=1.0)
    assert only_temporal.adversarial
    assert not only_temporal.uses_discriminators(face=True, temporal=False)
    assert only_temporal.uses_discriminators(face=False, temporal=True)
    only_face = LossWeights(gan=0.0, feature_matching=0.0, face=1.0, temporal=0.0)
    assert not only_face.uses_discriminators(face=False, temporal=True)
    assert LossWeights().uses_discriminators(face=False, temporal=False)  # the image D: gan, fm
