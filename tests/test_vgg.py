"""VGG19 feature extractor and strict loading of torchvision/timm-named safetensors (a local stand-in)."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from fewshotv2v.errors import CheckpointError
from fewshotv2v.models.vgg import IMAGENET_MEAN, VGG19, load_vgg19_weights

# torchvision vgg19().features: conv modules at these indices (written out independently of the module).
CONV_INDICES = [0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34]
CONV_WIDTHS = [64, 64, 128, 128, 256, 256, 256, 256, 512, 512, 512, 512, 512, 512, 512, 512]


def _timm_like_state(dtype=torch.float16, *, upto: int = 34) -> dict[str, torch.Tensor]:
    """Random weights with the key names of timm's `vgg19.tv_in1k` model.safetensors."""
    gen = torch.Generator().manual_seed(0)
    state = {}
    in_ch = 3
    for index, width in zip(CONV_INDICES, CONV_WIDTHS, strict=True):
        if index > upto:
            break
        state[f"features.{index}.weight"] = (torch.randn(width, in_ch, 3, 3, generator=gen) * 0.05).to(dtype)
        state[f"features.{index}.bias"] = (torch.randn(width, generator=gen) * 0.05).to(dtype)
        in_ch = width
    # classifier keys of the timm file (ignored by the loader); small stand-ins for the real shapes
    state["pre_logits.fc1.weight"] = torch.zeros(8, 512, 1, 1, dtype=dtype)
    state["head.fc.weight"] = torch.zeros(10, 8, dtype=dtype)
    return state


@pytest.fixture(scope="module")
def stand_in(tmp_path_factory):
    path = tmp_path_factory.mktemp("vgg") / "model.safetensors"
    state = _timm_like_state()
    save_file(state, str(path))
    return path, state


def test_key_names_match_torchvision():
    keys = list(VGG19().state_dict())
    expected = [f"features.{i}.{p}" for i in CONV_INDICES if i <= 28 for p in ("weight", "bias")]
    assert keys == expected  # no buffers (mean/std are not persistent)


def test_loads_stand_in_strictly_and_converts_dtype(stand_in):
    path, state = stand_in
    vgg = VGG19.from_file(path)
    for key, value in vgg.state_dict().items():
        assert value.dtype == torch.float32
        torch.testing.assert_close(value, state[key].float())


def test_outputs_frozen_and_differentiable(stand_in):
    vgg = VGG19.from_file(stand_in[0])
    assert not any(p.requires_grad for p in vgg.parameters())
    vgg.train()
    assert not vgg.training  # stays in eval mode
    x = (torch.rand(2, 3, 32, 32) * 2 - 1).requires_grad_(True)
    out = vgg(x)
    assert list(out) == ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"]
    shapes = {k: tuple(v.shape) for k, v in out.items()}
    assert shapes == {
        "relu1_1": (2, 64, 32, 32),
        "relu2_1": (2, 128, 16, 16),
        "relu3_1": (2, 256, 8, 8),
        "relu4_1": (2, 512, 4, 4),
        "relu5_1": (2, 512, 2, 2),
    }
    out["relu5_1"].sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_imagenet_normalisation_inside(stand_in):
    """An image of the ImageNet mean colour (in [-1, 1]) normalises to 0, so relu1_1 = relu(bias)."""
    vgg = VGG19.from_file(stand_in[0])
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1) * 2 - 1
    out = vgg(mean.expand(1, 3, 16, 16).contiguous())["relu1_1"]
    bias = stand_in[1]["features.0.bias"].float().relu().view(1, 64, 1, 1)
    torch.testing.assert_close(out, bias.expand_as(out))


def test_file_without_unused_tail_loads(tmp_path):
    path = tmp_path / "short.safetensors"
    save_file(_timm_like_state(torch.float32, upto=28), str(path))
    VGG19.from_file(path)


def test_wrong_file_raises_checkpoint_error(tmp_path):
    vgg = VGG19()
    resnet = tmp_path / "resnet.safetensors"
    save_file({"conv1.weight": torch.zeros(64, 3, 7, 7), "fc.weight": torch.zeros(10, 64)}, str(resnet))
    with pytest.raises(
        CheckpointError, match=r"not a VGG19.*missing keys features\.0\.bias, features\.0\.weight"
    ):
        load_vgg19_weights(vgg, resnet)

    vgg16 = _timm_like_state(torch.float32, upto=28)
    vgg16["features.40.weight"] = torch.zeros(1)  # a layer VGG19 does not have
    extra = tmp_path / "extra.safetensors"
    save_file(vgg16, str(extra))
    with pytest.raises(CheckpointError, match=r"unexpected keys features\.40\.weight"):
        load_vgg19_weights(vgg, extra)

    bad_shape = _timm_like_state(torch.float32, upto=28)
    bad_shape["features.2.weight"] = torch.zeros(64, 32, 3, 3)
    shaped = tmp_path / "shape.safetensors"
    save_file(bad_shape, str(shaped))
    with pytest.raises(CheckpointError, match=r"features\.2\.weight has shape"):
        load_vgg19_weights(vgg, shaped)

    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError, match="cannot read"):
        load_vgg19_weights(vgg, garbage)
    with pytest.raises(CheckpointError, match="not found"):
        load_vgg19_weights(vgg, tmp_path / "missing.safetensors")
