"""Discriminators (SPEC §3): image multi-scale PatchGAN, face D with missing faces, temporal D."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from fewshotv2v.config import ModelConfig
from fewshotv2v.losses import feature_matching_loss, hinge_d_loss, hinge_g_loss
from fewshotv2v.models.discriminators import (
    Discriminators,
    PatchDiscriminator,
    crop_boxes,
    split_features,
)


def _inputs(config, b=2):
    h, w = config.height, config.width
    label = torch.rand(b, config.label_nc, h, w)
    image = torch.rand(b, 3, h, w) * 2 - 1
    ref_label = torch.rand(b, config.label_nc, h, w)
    ref_image = torch.rand(b, 3, h, w) * 2 - 1
    return label, image, ref_label, ref_image


@pytest.mark.parametrize(
    ("preset", "overrides", "label_nc"),
    [("tiny", {}, 4), ("tiny-face", {}, 1), ("tiny-street", {"num_classes": 20}, 20)],
)
def test_image_d_multiscale_shapes(preset, overrides, label_nc):
    config = ModelConfig.preset(preset, **overrides)
    assert config.label_nc == label_nc
    d = Discriminators(config)
    # conditional input: (label, image) of the frame and of the reference
    first = d.image_net.scales[0].blocks[0][0]
    assert first.in_channels == 2 * (label_nc + 3)
    feats = d.image_d(*_inputs(config))
    assert len(feats) == 2  # two scales
    base = config.d_ch_base
    for scale in feats:
        assert len(scale) == 6  # 4 stride-2 + 1 stride-1 activations, then the logits
        assert [f.shape[1] for f in scale] == [base, 2 * base, 4 * base, 8 * base, 16 * base, 1]
        assert all(f.shape[0] == 2 and torch.isfinite(f).all() for f in scale)
    # the second scale sees the input at half resolution
    assert feats[1][0].shape[-2] < feats[0][0].shape[-2]
    assert feats[1][0].shape[-1] < feats[0][0].shape[-1]
    assert d("image", *_inputs(config))[0][-1].shape == feats[0][-1].shape  # forward dispatch


def test_paper_widths_and_spectral_norm():
    d = PatchDiscriminator(in_ch=14, ch_base=32)
    convs = [m for m in d.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [32, 64, 128, 256, 512, 1]
    assert [c.stride[0] for c in convs] == [2, 2, 2, 2, 1, 1]
    assert all(c.kernel_size == (4, 4) for c in convs)
    assert all(torch.nn.utils.parametrize.is_parametrized(c, "weight") for c in convs)
    norms = [m for m in d.modules() if isinstance(m, torch.nn.InstanceNorm2d)]
    assert len(norms) == 4  # not on the first layer nor on the logits


def test_stand_in_config_and_no_spectral_norm():
    config = SimpleNamespace(label_nc=2, mode="street", d_ch_base=4, spectral_norm=False, height=32, width=32)
    d = Discriminators(config)
    assert not d.has_face and not d.has_temporal
    convs = [m for m in d.modules() if isinstance(m, torch.nn.Conv2d)]
    assert not any(torch.nn.utils.parametrize.is_parametrized(c) for c in convs)
    feats = d.image_d(*_inputs(config))
    assert feats[0][-1].shape[:2] == (2, 1)


def test_gradient_flows_to_d_params_and_to_the_image():
    config = ModelConfig.preset("tiny")
    d = Discriminators(config)
    label, image, ref_label, ref_image = _inputs(config)
    fake = image.clone().requires_grad_(True)
    real_feats = d.image_d(label, image, ref_label, ref_image)
    fake_feats = d.image_d(label, fake, ref_label, ref_image)
    hinge_d_loss(real_feats, fake_feats).backward(retain_graph=True)
    for name, p in d.image_net.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert any(p.grad.abs().sum() > 0 for p in d.image_net.parameters())
    (hinge_g_loss(fake_feats) + feature_matching_loss(real_feats, fake_feats)).backward()
    assert fake.grad is not None and fake.grad.abs().sum() > 0


def test_crop_boxes_matches_slicing_and_masks_missing():
    images = torch.arange(2 * 3 * 32 * 32, dtype=torch.float32).view(2, 3, 32, 32)
    boxes = torch.tensor([[8.0, 4.0, 24.0, 20.0], [-1.0, -1.0, -1.0, -1.0]])
    crops, valid = crop_boxes(images, boxes, 16)
    assert valid.tolist() == [True, False]
    # a 16-pixel box sampled at 16 pixels hits the pixel centres exactly
    torch.testing.assert_close(crops[0], images[0, :, 4:20, 8:24])
    assert crops[1].abs().sum() == 0
    whole, _ = crop_boxes(images, torch.tensor([[0.0, 0.0, 32.0, 32.0]] * 2), 32)
    torch.testing.assert_close(whole, images)
    empty, valid = crop_boxes(images, torch.tensor([[5.0, 5.0, 5.0, 9.0]] * 2), 8)  # zero width
    assert not valid.any()


def test_face_d_with_missing_faces():
    config = ModelConfig.preset("tiny")  # pose mode: face D on
    d = Discriminators(config)
    assert d.has_face
    _, image, _, ref_image = _inputs(config, b=3)
    boxes = torch.tensor([[4.0, 2.0, 20.0, 18.0], [-1.0, -1.0, -1.0, -1.0], [10.0, 30.0, 30.0, 50.0]])
    ref_boxes = torch.tensor([[6.0, 4.0, 22.0, 20.0], [6.0, 4.0, 22.0, 20.0], [-1.0, -1.0, -1.0, -1.0]])
    feats, valid = d.face_d(image, boxes, ref_image, ref_boxes)
    assert valid.tolist() == [True, False, True]  # a reference without a face does not exclude the frame
    assert len(feats) == 1
    assert d.face_net.blocks[0][0].in_channels == 6
    s = config.face_crop_size
    assert feats[0][0].shape == (3, config.d_ch_base, s // 2 + 1, s // 2 + 1)
    logits = feats[0][-1]
    assert logits.shape[:2] == (3, 1) and torch.isfinite(logits).all()

    # the loss ignores the sample without a face: changing it does not change the loss
    fake = image.clone().requires_grad_(True)
    fake_feats, _ = d.face_d(fake, boxes, ref_image, ref_boxes)
    loss = hinge_g_loss(fake_feats, valid)
    loss.backward()
    assert fake.grad[1].abs().sum() == 0 and fake.grad[0].abs().sum() > 0

    # nothing valid: exact zero, still backward-able
    none = torch.full((3, 4), -1.0)
    feats_none, valid_none = d.face_d(image, none, ref_image, none)
    loss = hinge_g_loss(feats_none, valid_none)
    assert loss.item() == 0.0 and loss.requires_grad
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in d.face_net.parameters() if p.grad is not None)


def test_face_d_only_in_pose_mode():
    assert not Discriminators(ModelConfig.preset("tiny-face")).has_face
    assert not Discriminators(ModelConfig.preset("tiny", use_face_discriminator=False)).has_face
    d = Discriminators(ModelConfig.preset("tiny-street"))
    with pytest.raises(RuntimeError, match="no face discriminator"):
        d.face_d(torch.zeros(1, 3, 32, 64), torch.zeros(1, 4), torch.zeros(1, 3, 32, 64), torch.zeros(1, 4))


def test_temporal_d_optional():
    assert not Discriminators(ModelConfig.preset("tiny")).has_temporal
    config = ModelConfig.preset("tiny", use_temporal_discriminator=True, extra={"temporal_frames": 2})
    d = Discriminators(config)
    assert d.has_temporal and d.temporal_frames == 2
    frames = torch.rand(2, 2, 3, config.height, config.width) * 2 - 1  # (B, T, 3, H, W)
    feats = d.temporal_d(frames)
    assert len(feats) == 2 and feats[0][-1].shape[:2] == (2, 1)
    torch.testing.assert_close(d.temporal_d(frames.flatten(1, 2))[0][-1], feats[0][-1])
    with pytest.raises(ValueError, match="2 frames"):
        d.temporal_d(torch.rand(2, 9, config.height, config.width))


def test_one_pass_over_real_and_fake_equals_two_passes():
    config = ModelConfig.preset("tiny")
    d = Discriminators(config).eval()  # eval: no spectral-norm power iteration between the passes
    label, image, ref_label, ref_image = _inputs(config)
    fake = torch.rand_like(image) * 2 - 1
    both = d.image_d(
        torch.cat([label, label]),
        torch.cat([image, fake]),
        torch.cat([ref_label, ref_label]),
        torch.cat([ref_image, ref_image]),
    )
    real_feats, fake_feats = split_features(both, 2)
    for got, want in zip(fake_feats, d.image_d(label, fake, ref_label, ref_image), strict=True):
        for g, w in zip(got, want, strict=True):
            torch.testing.assert_close(g, w, atol=1e-5, rtol=1e-4)
    assert real_feats[0][-1].shape == fake_feats[0][-1].shape
