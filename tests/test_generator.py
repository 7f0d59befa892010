"""Generator (SPEC §2) on tiny configs: shapes, gradients, generated convs, attention, warping."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from fewshotv2v.config import ModelConfig
from fewshotv2v.errors import InputError
from fewshotv2v.models.flow import warp
from fewshotv2v.models.generator import Generator, GeneratorOutput, ReferenceState
from fewshotv2v.models.layers import batched_conv2d
from fewshotv2v.models.profile import generated_numbers, parameter_counts, steady_state_macs
from fewshotv2v.models.reference_encoder import ReferenceAttention

TINY = ["tiny", "tiny-face", "tiny-street"]


def _inputs(config, b=2, k=1, seed=0):
    g = torch.Generator().manual_seed(seed)
    h, w, c = config.height, config.width, config.label_nc
    return {
        "ref_images": torch.rand(b, k, 3, h, w, generator=g) * 2 - 1,
        "ref_labels": torch.rand(b, k, c, h, w, generator=g),
        "label": torch.rand(b, c, h, w, generator=g),
        "prev_image": torch.rand(b, 3, h, w, generator=g) * 2 - 1,
        "prev_label": torch.rand(b, c, h, w, generator=g),
    }


@pytest.mark.parametrize("preset", TINY)
@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_forward_shapes_every_mode_and_k(preset, k):
    config = ModelConfig.preset(preset)
    model = Generator(config).eval()
    x = _inputs(config, b=2, k=k)
    h, w = config.size
    with torch.no_grad():
        refs = model.encode_references(x["ref_images"], x["ref_labels"])
        assert isinstance(refs, ReferenceState) and refs.num_refs == k
        if k == 1:  # computed once per video
            assert refs.bottleneck is not None and refs.weights is not None and refs.keys is None
        else:  # per-reference level-a features and keys; attention runs per frame
            assert refs.feat_img.shape[:2] == (2, k) and refs.keys.shape[2] == k * (h // 4) * (w // 4)
        first = model(x["label"], refs)
        assert isinstance(first, GeneratorOutput)
        assert first.warped_prev is None and first.mask_prev is None and first.flow_prev is None
        out = model(x["label"], refs, prev_image=first.image, prev_label=x["prev_label"])
    for o in (first, out):
        assert o.image.shape == (2, 3, h, w) and o.image.abs().max() <= 1
        assert o.warped_ref.shape == (2, 3, h, w) and o.flow_ref.shape == (2, 2, h, w)
        assert o.mask_ref.shape == (2, 1, h, w) and o.mask_ref.min() >= 0 and o.mask_ref.max() <= 1
        assert o.ref_index.shape == (2,) and o.ref_index.dtype == torch.long
        assert int(o.ref_index.max()) < k
    assert out.warped_prev.shape == (2, 3, h, w) and out.flow_prev.shape == (2, 2, h, w)
    assert out.mask_prev.shape == (2, 1, h, w)


@pytest.mark.parametrize("preset", ["tiny", "tiny-street"])
def test_backward_reaches_every_parameter(preset):
    config = ModelConfig.preset(preset)
    model = Generator(config).train()
    x = _inputs(config, b=2, k=3)
    refs = model.encode_references(x["ref_images"], x["ref_labels"])
    out = model(x["label"], refs, prev_image=x["prev_image"], prev_label=x["prev_label"])
    loss = out.image.square().mean() + out.warped_ref.abs().mean() + out.mask_prev.mean()
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, f"no gradient for {name}"
        assert torch.isfinite(p.grad).all(), f"non-finite gradient for {name}"
    for part in ("E_P", "E_A", "E_F", "W"):
        grads = [p.grad.abs().sum() for p in model.components()[part].parameters()]
        assert sum(grads) > 0, f"{part} gets zero gradient"


def test_generated_conv_equals_per_sample_loop():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(3, 5, 9, 7, generator=g)
    for k, pad in ((1, 0), (3, 1)):
        weight = torch.randn(3, 4, 5, k, k, generator=g)
        bias = torch.randn(3, 4, generator=g)
        batched = batched_conv2d(x, weight, bias, padding=pad)
        looped = torch.cat([F.conv2d(x[i : i + 1], weight[i], bias[i], padding=pad) for i in range(3)])
        torch.testing.assert_close(batched, looped, rtol=1e-5, atol=1e-5)


def test_sdpa_attention_equals_explicit_softmax():
    config = ModelConfig.preset("tiny")
    model = Generator(config).eval()
    b, k = 2, 3
    x = _inputs(config, b=b, k=k)
    attn = model.attention
    with torch.no_grad():
        keys = attn.keys(x["ref_labels"].flatten(0, 1), k)  # (B, 1, K*N, d)
        values = torch.randn(b, k, 6, config.height // 4, config.width // 4)
        merged, mass = attn(x["label"], keys, values, k)
        query = attn.query(x["label"]).flatten(2).transpose(1, 2)  # (B, N, d)
        energy = query @ keys.squeeze(1).transpose(1, 2)  # (B, N, K*N), scale 1
        weights = torch.softmax(energy, dim=-1)
        v = values.permute(0, 1, 3, 4, 2).reshape(b, -1, 6)  # (B, K*N, 6)
        expected = (weights @ v).transpose(1, 2).reshape_as(merged)
        expected_mass = weights.reshape(b, -1, k, weights.shape[-1] // k).sum(-1).mean(1)  # (B, K)
    torch.testing.assert_close(merged, expected, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(mass, expected_mass, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(mass.sum(1), torch.ones(b))


def test_attention_takes_a_memory_efficient_sdpa_kernel():
    """Values carry K one-hot channels on top of the img + lab features (wider than d): split into heads of
    width d, SDPA can take the flash kernel, which never materialises the (N x K*N) energy matrix. With
    only the memory-efficient kernels allowed, the math fallback raises instead of running."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    config = ModelConfig.preset("pose", height=64, width=32)  # the pose preset's widths, small frames
    attn = ReferenceAttention(config).eval()
    b, k, d = 1, 4, config.ch(config.attention_level)
    g = torch.Generator().manual_seed(0)
    ref_labels = torch.rand(b * k, config.label_nc, 64, 32, generator=g)
    values = torch.randn(b, k, 2 * d, 16, 8, generator=g)  # img + lab features, Cv = 2d
    label = torch.rand(b, config.label_nc, 64, 32, generator=g)
    with torch.no_grad():
        keys = attn.keys(ref_labels, k)
        with sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION]):
            merged, mass = attn(label, keys, values, k)
        with sdpa_kernel([SDPBackend.MATH]):
            merged_math, mass_math = attn(label, keys, values, k)
    torch.testing.assert_close(merged, merged_math, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(mass, mass_math, rtol=1e-4, atol=1e-5)


def test_attention_shapes_at_512x256_k4():
    """The pose preset at its size, on the meta device (shapes only, no compute)."""
    config = ModelConfig.preset("pose")
    attn = ReferenceAttention(config).to("meta")
    b, k, d = 2, 4, config.ch(config.attention_level)
    n = (512 // 4) * (256 // 4)  # level-2 positions
    keys = attn.keys(torch.empty(b * k, config.label_nc, 512, 256, device="meta"), k)
    assert keys.shape == (b, 1, k * n, d)
    values = torch.empty(b, k, 2 * d, 128, 64, device="meta")
    merged, mass = attn(torch.empty(b, config.label_nc, 512, 256, device="meta"), keys, values, k)
    assert merged.shape == (b, 2 * d, 128, 64) and mass.shape == (b, k)


def test_ref_index_is_the_reference_with_most_attention(monkeypatch):
    config = ModelConfig.preset("tiny")
    model = Generator(config).eval()
    x = _inputs(config, b=2, k=3)
    refs = model.encode_references(x["ref_images"], x["ref_labels"])
    real = model.attention.forward

    def biased(label, keys, values, k):
        merged, _ = real(label, keys, values, k)
        return merged, torch.tensor([[0.1, 0.2, 0.7], [0.6, 0.3, 0.1]])

    monkeypatch.setattr(model.attention, "forward", biased)
    with torch.no_grad():
        out = model(x["label"], refs)
    assert out.ref_index.tolist() == [2, 0]
    # W warped the chosen reference: with the flow it predicted, warping reference 2 of sample 0 matches
    torch.testing.assert_close(out.warped_ref[0], warp(x["ref_images"][0, 2:3], out.flow_ref[0:1])[0])


def test_street_matting_combines_h_and_warps():
    config = ModelConfig.preset("tiny-street")
    model = Generator(config).eval()
    x = _inputs(config, b=1, k=1)
    with torch.no_grad():
        refs = model.encode_references(x["ref_images"], x["ref_labels"])
        o = model(x["label"], refs, prev_image=x["prev_image"], prev_label=x["prev_label"])
    step = o.raw_image * o.mask_ref + o.warped_ref * (1 - o.mask_ref)
    torch.testing.assert_close(o.image, step * o.mask_prev + o.warped_prev * (1 - o.mask_prev))


def test_seeded_models_are_deterministic():
    config = ModelConfig.preset("tiny")
    outs = []
    for _ in range(2):
        torch.manual_seed(123)
        model = Generator(config).eval()
        x = _inputs(config, b=1, k=2, seed=5)
        with torch.no_grad():
            refs = model.encode_references(x["ref_images"], x["ref_labels"])
            outs.append(model(x["label"], refs, prev_image=x["prev_image"], prev_label=x["prev_label"]).image)
    assert torch.equal(outs[0], outs[1])


def test_warp_identity_and_shift():
    image = torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).reshape(2, 3, 4, 5)
    torch.testing.assert_close(warp(image, torch.zeros(2, 2, 4, 5)), image)
    flow = torch.zeros(2, 2, 4, 5)
    flow[:, 0] = 1.0  # sample one pixel to the right; the last column repeats (border padding)
    shifted = warp(image, flow)
    torch.testing.assert_close(shifted[..., :-1], image[..., 1:])
    torch.testing.assert_close(shifted[..., -1], image[..., -1])


def test_input_errors_are_clear():
    config = ModelConfig.preset("tiny")
    model = Generator(config)
    x = _inputs(config, b=1, k=1)
    with pytest.raises(InputError, match="K=5"):
        model.encode_references(
            x["ref_images"].expand(1, 5, -1, -1, -1), x["ref_labels"].expand(1, 5, -1, -1, -1)
        )
    with pytest.raises(InputError, match="do not match"):
        model.encode_references(x["ref_images"], x["ref_labels"][:, :, :2])
    with pytest.raises(InputError, match="64 x 32"):
        model.encode_references(x["ref_images"][..., :32, :], x["ref_labels"][..., :32, :])
    refs = model.encode_references(x["ref_images"], x["ref_labels"])
    with pytest.raises(InputError, match="together"):
        model(x["label"], refs, prev_image=x["prev_image"])


def test_profile_counts():
    model = Generator(ModelConfig.preset("tiny"))
    counts = parameter_counts(model)
    assert counts["generator_total"] == sum(v for k, v in counts.items() if k != "generator_total")
    assert generated_numbers(model) > 0
    macs = steady_state_macs(model)
    assert macs["total"] > 0 and model.training  # mode restored
    assert macs["per_component"]["E_F"] == 0  # K = 1: cached references cost nothing per frame
    assert sum(macs["per_component"].values()) == pytest.approx(macs["total"], rel=0.02)


@pytest.mark.parametrize("k", [1, 3])
def test_reference_state_is_reused_per_frame(k):
    """K = 1: E_F and E_P run once per video; K > 1: only the per-reference stem is cached."""
    config = ModelConfig.preset("tiny")
    model = Generator(config).eval()
    calls = {"stem": 0, "tail": 0, "E_P": 0}
    model.ref_encoder.img.stem.register_forward_hook(lambda *a: calls.__setitem__("stem", calls["stem"] + 1))
    model.ref_encoder.img.tail.register_forward_hook(lambda *a: calls.__setitem__("tail", calls["tail"] + 1))
    model.weight_generator.register_forward_hook(lambda *a: calls.__setitem__("E_P", calls["E_P"] + 1))
    x = _inputs(config, b=1, k=k)
    with torch.no_grad():
        refs = model.encode_references(x["ref_images"], x["ref_labels"])
        for _ in range(3):
            model(x["label"], refs, prev_image=x["prev_image"], prev_label=x["prev_label"])
    per_video = 1 if k == 1 else 0
    assert calls == {
        "stem": 1,
        "tail": per_video + 3 * (1 - per_video),
        "E_P": per_video + 3 * (1 - per_video),
    }


def test_label_shape_check_and_prev_combine_init():
    config = ModelConfig.preset("tiny")
    model = Generator(config)
    x = _inputs(config, b=2, k=1)
    refs = model.encode_references(x["ref_images"], x["ref_labels"])
    with pytest.raises(InputError, match="label map shape"):
        model(x["label"][:1], refs)
    model.init_prev_combine_from_ref()
    for a, b in zip(model.combine_ref.parameters(), model.combine_prev.parameters(), strict=True):
        assert torch.equal(a, b)


def test_warp_under_bf16_matches_fp32_at_512x256():
    """The sampling grid is fp32 whatever the flow's dtype: a bf16 grid is ~1 px off at x ~ 500."""
    g = torch.Generator().manual_seed(0)
    image = torch.rand(1, 3, 512, 256, generator=g)
    flow = torch.zeros(1, 2, 512, 256)
    # identity: a bf16 flow of zeros (what W returns under bf16 autocast) gives the image back (up to
    # the fp32 rounding of normalising the grid; a bf16 grid is off by up to 1 on this [0, 1] image)
    torch.testing.assert_close(warp(image, flow.bfloat16()), image, atol=1e-4, rtol=0)
    # whole-frame shift by amounts exact in bf16, and a smooth sub-pixel field, bf16 vs fp32 flow
    flow[:, 0], flow[:, 1] = 1.5, -0.75
    flow += torch.linspace(-2, 2, 256).expand(512, 256)
    flow = flow.bfloat16().float()  # same values in both runs: only the grid's precision differs
    expected = warp(image, flow)
    torch.testing.assert_close(warp(image, flow.bfloat16()), expected, atol=1e-5, rtol=0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        torch.testing.assert_close(warp(image, flow.bfloat16()), expected, atol=1e-5, rtol=0)
    # a bf16 image comes back bf16, within bf16 rounding of the fp32 result
    out = warp(image.bfloat16(), flow.bfloat16())
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), expected, atol=4e-3, rtol=0)


def test_generator_warp_under_bf16_autocast_at_512x256(one_thread):
    """Inside the whole generator under bf16 autocast, the warped reference is the fp32 warp of the
    reference by the flow W predicted (W itself runs in bf16; the warp must add no error)."""
    config = ModelConfig.preset("tiny", height=512, width=256)
    model = Generator(config).eval()
    x = _inputs(config, b=1, k=1)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        refs = model.encode_references(x["ref_images"], x["ref_labels"])
        out = model(x["label"], refs)
    assert out.image.shape == (1, 3, 512, 256) and torch.isfinite(out.image).all()
    expected = warp(x["ref_images"][:, 0], out.flow_ref.float())
    torch.testing.assert_close(out.warped_ref.float(), expected, atol=1e-5, rtol=0)
