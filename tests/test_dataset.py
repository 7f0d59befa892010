"""TrainingDataset / EvalDataset over a tiny synthetic dataset: sampling rules, shapes, augmentation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fewshotv2v.config import ModelConfig
from fewshotv2v.data.augment import FLIP_PERMUTATION, Augmentation, ColorJitter, flip_keypoints
from fewshotv2v.data.dataset import EvalDataset, TrainingDataset, face_box, ref_gap, split_clips
from fewshotv2v.data.synthetic import generate_dataset
from fewshotv2v.errors import ConfigError, InputError


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    out = tmp_path_factory.mktemp("data") / "syn"
    generate_dataset(out, identities=2, frames=12, size=(64, 64), seed=0, clips_per_identity=2)
    return out


@pytest.fixture(scope="module")
def config():
    return ModelConfig.preset("tiny")  # 64 x 32 pose, 4 label channels, k_max 4


def test_item_shapes_and_ranges(root, config):
    ds = TrainingDataset(root, config, clip_len=3, k_max=2, seed=1)
    item = ds[0]
    H, W, C = config.height, config.width, config.label_nc
    assert item["images"].shape == (3, 3, H, W) and item["labels"].shape == (3, C, H, W)
    assert item["ref_images"].shape == (2, 3, H, W) and item["ref_labels"].shape == (2, C, H, W)
    assert item["face_boxes"].shape == (3, 4) and item["ref_face_boxes"].shape == (2, 4)
    for key in ("images", "ref_images"):
        assert item[key].min() >= -1 and item[key].max() <= 1 and item[key].std() > 0.05
    for key in ("labels", "ref_labels"):
        assert item[key].min() >= 0 and item[key].max() <= 1
    assert item["labels"][:, :3].amax() > 0.5  # a skeleton was drawn
    assert item["labels"][:, 3].mean() > 0.02  # the person mask channel is set
    fb = item["face_boxes"]
    has = fb[:, 0] >= 0
    assert has.any() and (fb[has, 2] > fb[has, 0]).all() and (fb[has, 2] <= W).all()


def test_dataloader_batches(root, config):
    ds = TrainingDataset(root, config, clip_len=2, k_max=2)
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=2, num_workers=0)))
    assert batch["images"].shape == (2, 2, 3, config.height, config.width)
    assert batch["ref_labels"].shape == (2, 2, config.label_nc, config.height, config.width)


def test_refs_outside_window_and_deterministic(root, config):
    ds = TrainingDataset(root, config, clip_len=4, k_max=3, seed=2)
    for index in range(12):
        p = ds.plan(index)
        assert len(p.frames) == 4 and np.all(np.diff(p.frames) == 1)
        assert len(p.refs) == 3
        assert not set(p.refs.tolist()) & set(p.frames.tolist())
    a, b = ds[5], ds[5]
    for key in a:
        assert torch.equal(a[key], b[key]), key
    ds.set_epoch(1)
    assert not torch.equal(ds[5]["images"], a["images"]) or not torch.equal(
        ds[5]["ref_indices"], a["ref_indices"]
    )


def test_ref_gap_scales_and_falls_back(root, config):
    assert ref_gap(300) == (14, 60)
    assert ref_gap(12) == (1, 6)
    # The window covers the whole 12-frame clip: references fall back to frames inside it.
    ds = TrainingDataset(root, config, clip_len=12, k_max=2)
    p = ds.plan(0)
    assert len(p.refs) == 2 and set(p.refs.tolist()) <= set(range(12))
    # Longer than the clips: windows repeat the last frame.
    ds.set_clip_len(20)
    item = ds[0]
    assert item["images"].shape[0] == 20 and item["frame_indices"].max() == 11
    with pytest.raises(ConfigError):
        ds.set_clip_len(0)


def test_min_gap_respected(root, config):
    ds = TrainingDataset(root, config, clip_len=2, k_max=2, ref_min_gap=3, ref_max_gap=5)
    for index in range(10):
        p = ds.plan(index)
        lo, hi = p.frames[0], p.frames[-1]
        d = np.where(p.refs < lo, lo - p.refs, p.refs - hi)
        assert ((d >= 3) & (d <= 5)).all() or not len(d)


def test_clip_len_change(root, config):
    ds = TrainingDataset(root, config, clip_len=1, k_max=1)
    assert ds[0]["images"].shape[0] == 1
    ds.set_clip_len(4)
    assert ds[0]["images"].shape[0] == 4 and ds[0]["labels"].shape[0] == 4


def test_flip_swaps_left_and_right():
    kps = np.zeros((137, 3), np.float32)
    kps[2] = (10, 5, 1)  # right shoulder on the image left
    kps[5] = (30, 5, 1)
    kps[95] = (3, 40, 1)  # left-hand wrist
    out = flip_keypoints(kps, 40)
    assert tuple(out[5]) == (29, 5, 1) and tuple(out[2]) == (9, 5, 1)  # swapped and mirrored
    assert tuple(out[116]) == (36, 40, 1) and out[95, 2] == 0
    assert sorted(FLIP_PERMUTATION.tolist()) == list(range(137))
    assert np.array_equal(FLIP_PERMUTATION[FLIP_PERMUTATION], np.arange(137))  # an involution
    np.testing.assert_allclose(flip_keypoints(out, 40), kps)


def test_flip_in_dataset_mirrors_images(root, config):
    always = TrainingDataset(
        root,
        config,
        clip_len=1,
        k_max=1,
        seed=3,
        augmentation=Augmentation(
            flip_p=1.0,
            brightness=0,
            contrast=0,
            saturation=0,
            channel_gain=0,
            crop_scale=(1.5, 1.5),
            crop_offset=0,
            limb_drop=0,
        ),
    )
    never = TrainingDataset(root, config, clip_len=1, k_max=1, seed=3, augmentation=Augmentation.off())
    a, b = always[0], never[0]
    assert torch.equal(a["frame_indices"], b["frame_indices"])
    torch.testing.assert_close(a["images"], b["images"].flip(-1))
    torch.testing.assert_close(a["labels"][:, 3], b["labels"][:, 3].flip(-1))  # mask channel mirrored
    # Skeleton colours follow the person's sides, so the RGB channels are not a plain mirror image.
    assert not torch.allclose(a["labels"][:, :3], b["labels"][:, :3].flip(-1))


def test_color_jitter_is_shared():
    rng = np.random.default_rng(0)
    jitter = ColorJitter.sample(rng, Augmentation())
    img = np.full((4, 4, 3), 100, np.uint8)
    np.testing.assert_array_equal(jitter(img), jitter(img.copy()))
    assert not jitter.is_identity and ColorJitter()(img).dtype == np.float32


def test_face_box_none_without_face():
    assert (face_box(np.zeros((137, 3), np.float32), (64, 32)) == -1).all()


def test_split_and_held_out(root, config):
    train, held = split_clips(root, 0.5)
    assert len(held) == 2 and len(train) == 2
    assert {n.split("_")[0] for n in train}.isdisjoint({n.split("_")[0] for n in held})
    assert split_clips(root, ["id0001"])[1] == ["id0001_clip01", "id0001_clip02"]
    with pytest.raises(InputError, match="unknown held-out"):
        split_clips(root, ["nobody"])
    val = TrainingDataset(root, config, clip_len=2, k_max=1, train=False, held_out=["id0001"])
    assert {c.name for c in val.clips} == {"id0001_clip01", "id0001_clip02"}
    tr = TrainingDataset(root, config, clip_len=2, k_max=1, held_out=["id0001"])
    assert {c.name for c in tr.clips} == {"id0000_clip01", "id0000_clip02"}


def test_mode_mismatch(root):
    with pytest.raises(ConfigError, match="pose data"):
        TrainingDataset(root, ModelConfig.preset("tiny-face"))


def test_eval_dataset_streams_whole_clips(root, config):
    ev = EvalDataset(root, config, k=2, clips=["id0000_clip01"], max_frames=5)
    assert len(ev) == 1
    clip = ev[0]
    assert clip.ref_indices == [0, 2] and clip.ref_images.shape == (2, 3, 64, 32)
    frames = list(clip.frames())
    assert [f["index"] for f in frames] == [0, 1, 2, 3, 4]
    assert frames[0]["label"].shape == (config.label_nc, 64, 32)
    torch.testing.assert_close(frames[0]["image"], clip.ref_images[0])
    assert [f["index"] for f in clip.frames(skip_refs=True)] == [1, 3, 4]


def test_face_mode_dataset(tmp_path):
    out = tmp_path / "faces"
    generate_dataset(out, identities=1, frames=4, mode="face", size=(64, 64))
    cfg = ModelConfig.preset("tiny-face")
    item = TrainingDataset(out, cfg, clip_len=2, k_max=1)[0]
    assert item["labels"].shape == (2, 1, cfg.height, cfg.width) and item["labels"].max() > 0.5


def test_street_mode_resizes_and_one_hot(tmp_path):
    from fewshotv2v.data.layout import DatasetWriter

    writer = DatasetWriter(tmp_path / "street", "street")
    rng = np.random.default_rng(0)
    with writer.clip("city") as clip:
        for _ in range(6):
            label = rng.integers(0, 5, (48, 96)).astype(np.uint8)
            label[:4] = 255  # ignore -> "other"
            clip.add_frame(rng.integers(0, 255, (48, 96, 3), dtype=np.uint8), label=label)
        clip.close()
    cfg = ModelConfig.preset("tiny-street")  # 32 x 64, 5 classes
    item = TrainingDataset(tmp_path / "street", cfg, clip_len=2, k_max=2)[0]
    assert item["labels"].shape == (2, cfg.label_nc, 32, 64)
    torch.testing.assert_close(item["labels"].sum(1), torch.ones(2, 32, 64))  # one-hot everywhere
    assert (item["face_boxes"] == -1).all() and (item["ref_face_boxes"] == -1).all()


def test_fractional_split_matches_between_train_and_eval(root, config):
    tr = TrainingDataset(root, config, k_max=1, held_out=0.5, seed=7)
    ev = EvalDataset(root, config, held_out=0.5, seed=7)
    train_names = {c.name for c in tr.clips}
    eval_names = {c.name for c in ev.source.clips}
    assert train_names and eval_names and train_names.isdisjoint(eval_names)
    assert train_names | eval_names == {c.name for c in TrainingDataset(root, config, k_max=1).clips}
