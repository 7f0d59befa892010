"""Losses (SPEC §3): hand-computed hinge values, feature matching, perceptual, warp, occlusion mask,
masking of invalid samples, temporal helpers and the default weights."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from safetensors.torch import save_file

from fewshotv2v.config import ModelConfig
from fewshotv2v.errors import ConfigError
from fewshotv2v.losses import (
    LossWeights,
    PerceptualLoss,
    feature_matching_loss,
    hinge_d_loss,
    hinge_g_loss,
    masked_mean,
    occlusion_mask_loss,
    stack_frames,
    temporal_hinge_d_loss,
    temporal_hinge_g_loss,
    warp_confidence,
    warp_loss,
)
from fewshotv2v.models.discriminators import Discriminators
from fewshotv2v.models.vgg import VGG19


def _t(values):
    return torch.tensor(values, dtype=torch.float32)


# ---- hinge GAN ---------------------------------------------------------------------------------------


def test_hinge_d_loss_hand_computed():
    real = _t([[[[0.5, 2.0]]]])  # relu(1 - 0.5) = 0.5, relu(1 - 2) = 0 -> mean 0.25
    fake = _t([[[[-0.5, -3.0]]]])  # relu(1 - 0.5) = 0.5, relu(1 - 3) = 0 -> mean 0.25
    assert hinge_d_loss([real], [fake]).item() == pytest.approx(0.5)
    assert hinge_d_loss(real, fake).item() == pytest.approx(0.5)  # a single tensor = one scale
    real2 = _t([[[[0.0]]]])  # 1
    fake2 = _t([[[[1.0]]]])  # 2
    assert hinge_d_loss([real, real2], [fake, fake2]).item() == pytest.approx((0.5 + 3.0) / 2)
    # a D feature list per scale: only the last entry (logits) counts
    feats_real = [[torch.full((1, 4, 2, 2), 7.0), real]]
    feats_fake = [[torch.full((1, 4, 2, 2), -7.0), fake]]
    assert hinge_d_loss(feats_real, feats_fake).item() == pytest.approx(0.5)


def test_hinge_g_loss_hand_computed():
    assert hinge_g_loss([_t([[[[1.0, 3.0]]]]), _t([[[[-2.0]]]])]).item() == pytest.approx((-2.0 + 2.0) / 2)


def test_hinge_masked_samples_and_nothing_valid():
    logits = _t([1.0, float("nan")]).view(2, 1, 1, 1).requires_grad_(True)
    valid = torch.tensor([True, False])
    loss = hinge_g_loss([logits], valid)
    assert loss.item() == pytest.approx(-1.0)  # the NaN sample is excluded, not propagated
    loss.backward()
    assert logits.grad.tolist() == [[[[-1.0]]], [[[0.0]]]]

    none = torch.tensor([False, False])
    logits.grad = None
    d_loss = hinge_d_loss([logits], [logits], none)
    assert d_loss.item() == 0.0 and d_loss.requires_grad
    d_loss.backward()
    assert torch.equal(logits.grad, torch.zeros_like(logits))


def test_masked_mean_soft_and_per_pixel():
    x = _t([[1.0, 2.0], [3.0, 4.0]])
    assert masked_mean(x, _t([[1.0, 0.0], [0.0, 1.0]])).item() == pytest.approx(2.5)
    assert masked_mean(x, torch.tensor([False, True])).item() == pytest.approx(3.5)
    assert masked_mean(x).item() == pytest.approx(2.5)


# ---- feature matching --------------------------------------------------------------------------------


def test_feature_matching():
    real = [[torch.zeros(2, 3, 4, 4), torch.ones(2, 5, 2, 2), torch.zeros(2, 1, 2, 2)] for _ in range(2)]
    same = [[f.clone().requires_grad_(True) for f in scale] for scale in real]
    assert feature_matching_loss(real, same).item() == 0.0
    # every activation off by 1, logits off by 100 (not matched): 2 matched layers per scale, summed over
    # layers and averaged over the 2 scales as the references do -> 2 (a layer mean would give 1)
    fake = [[(f + 1.0).requires_grad_(True) for f in scale[:-1]] + [scale[-1] + 100.0] for scale in real]
    real_leaf = [[f.clone().requires_grad_(True) for f in scale] for scale in real]
    loss = feature_matching_loss(real_leaf, fake)
    assert loss.item() == pytest.approx(2.0)
    # layers weigh the same whatever their size; scales are averaged
    uneven = [[f + d for f, d in zip(scale, (1.0, 3.0, 0.0), strict=True)] for scale in real[:1]]
    uneven.append([f + 5.0 for f in real[1]])
    assert feature_matching_loss(real, uneven).item() == pytest.approx(((1 + 3) + (5 + 5)) / 2)
    loss.backward()
    assert all(f.grad is None for scale in real_leaf for f in scale)  # real detached
    assert fake[0][0].grad is not None and fake[0][0].grad.abs().sum() > 0
    # masked: sample 1 differs, but only sample 0 counts
    fake_one = [[f.clone() for f in scale] for scale in real]
    fake_one[0][0][1] += 5.0
    assert feature_matching_loss(real, fake_one, torch.tensor([True, False])).item() == 0.0


# ---- perceptual -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def vgg():
    torch.manual_seed(0)
    return VGG19()  # random weights are enough for these properties


def test_perceptual_zero_for_identical_positive_otherwise(vgg):
    loss_fn = PerceptualLoss(vgg)
    assert loss_fn.enabled
    real = torch.rand(2, 3, 32, 32) * 2 - 1
    assert loss_fn(real.clone(), real).item() == 0.0
    fake = (real + 0.3 * torch.randn_like(real)).clamp(-1, 1).requires_grad_(True)
    loss = loss_fn(fake, real)
    assert loss.item() > 0
    loss.backward()
    assert fake.grad is not None and fake.grad.abs().sum() > 0
    assert loss_fn.layer_weights == {
        "relu1_1": 1 / 32,
        "relu2_1": 1 / 16,
        "relu3_1": 1 / 8,
        "relu4_1": 1 / 4,
        "relu5_1": 1.0,
    }
    # masked: the differing sample does not count
    fake2 = real.clone()
    fake2[1] = -real[1]
    assert loss_fn(fake2, real, torch.tensor([True, False])).item() == 0.0
    assert loss_fn(fake2, real, torch.tensor([False, True])).item() > 0


def test_perceptual_from_path_and_disabled(vgg, tmp_path):
    path = tmp_path / "vgg19.safetensors"
    save_file(vgg.state_dict(), str(path))
    loaded = PerceptualLoss(path)
    real = torch.rand(1, 3, 16, 16) * 2 - 1
    fake = torch.rand(1, 3, 16, 16) * 2 - 1
    torch.testing.assert_close(loaded(fake, real), PerceptualLoss(vgg)(fake, real))

    off = PerceptualLoss(None)
    assert not off.enabled
    fake.requires_grad_(True)
    loss = off(fake, real)
    assert loss.item() == 0.0 and loss.requires_grad


# ---- warp, occlusion mask --------------------------------------------------------------------------------


def test_warp_loss():
    real = torch.zeros(2, 3, 4, 4)
    warped = torch.full((2, 3, 4, 4), 0.5)
    assert warp_loss(warped, real).item() == pytest.approx(0.5)
    assert warp_loss(None, real).item() == 0.0
    pixel_valid = torch.zeros(2, 1, 4, 4)
    pixel_valid[:, :, :2] = 1
    warped[:, :, 2:] = 9.0  # only invalid pixels are wrong by 9
    assert warp_loss(warped, real, pixel_valid).item() == pytest.approx(0.5)


def test_occlusion_mask_loss_minimum_at_one_minus_confidence():
    real = torch.zeros(1, 3, 2, 2)
    warped = real.clone()
    warped[..., 0, 0] = 1.0  # sum_c |diff| = 3 -> conf 0 (bad warp)
    warped[..., 0, 1] = 0.1  # 0.3 -> conf 0.7
    conf = warp_confidence(warped, real)
    torch.testing.assert_close(conf, _t([[[[0.0, 0.7], [1.0, 1.0]]]]))
    best = 1.0 - conf  # hallucinate where the warp is bad, trust it where it is good
    assert occlusion_mask_loss(best, warped, real).item() == pytest.approx(0.0, abs=1e-7)
    for delta in (0.05, -0.05):
        assert occlusion_mask_loss((best + delta).clamp(0, 1), warped, real).item() > 1e-3
    # gradient descent on a free mask converges to 1 - conf; the warp gets no gradient (target detached)
    logit = torch.zeros(1, 1, 2, 2, requires_grad=True)
    warped_leaf = warped.clone().requires_grad_(True)
    opt = torch.optim.SGD([logit], lr=5.0)
    for _ in range(300):
        opt.zero_grad()
        occlusion_mask_loss(torch.sigmoid(logit), warped_leaf, real).backward()
        opt.step()
    torch.testing.assert_close(torch.sigmoid(logit).detach(), best, atol=0.05, rtol=0)
    assert warped_leaf.grad is None
    assert occlusion_mask_loss(None, None, real).item() == 0.0


# ---- temporal D helpers and weights -------------------------------------------------------------------


def test_temporal_helpers():
    config = ModelConfig.preset("tiny-street", use_temporal_discriminator=True)
    d = Discriminators(config)
    real = [torch.rand(1, 3, config.height, config.width) * 2 - 1 for _ in range(3)]
    fake = [torch.rand_like(f).requires_grad_(True) for f in real]
    assert stack_frames(real).shape == (1, 9, config.height, config.width)
    assert torch.equal(stack_frames(torch.stack(real, dim=1)), stack_frames(real))
    d_loss = temporal_hinge_d_loss(d, real, fake)
    d_loss.backward()
    assert all(f.grad is None for f in fake)  # fake frames detached for the D step
    assert d.temporal_net.scales[0].blocks[0][0].parametrizations.weight.original.grad is not None
    temporal_hinge_g_loss(d, fake).backward()
    assert fake[0].grad is not None and fake[0].grad.abs().sum() > 0


def test_loss_weights_defaults():
    w = LossWeights()
    assert dataclasses.asdict(w) == {
        "gan": 1.0,
        "feature_matching": 10.0,
        "perceptual": 10.0,
        "warp": 10.0,
        "mask": 10.0,
        "face": 10.0,
        "temporal": 1.0,
        "reconstruction": 0.0,
    }
    with pytest.raises(ConfigError, match="w_warp"):
        LossWeights(warp=-1.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        w.gan = 2.0  # type: ignore[misc]
    assert dataclasses.replace(w, perceptual=0.0).perceptual == 0.0


def test_reconstruction_term_is_l1_and_weighted_when_on():
    import torch

    from fewshotv2v.losses import reconstruction_loss
    from fewshotv2v.training.steps import G_TERMS

    fake, real = torch.zeros(1, 3, 4, 4), torch.full((1, 3, 4, 4), 0.5)
    assert float(reconstruction_loss(fake, real)) == 0.5
    term = next(t for t in G_TERMS if t.name == "g_l1")
    assert term.weight == "reconstruction" and LossWeights(reconstruction=10.0).reconstruction == 10.0
