"""CUDA checks (skipped without a GPU): the same code paths as the CPU tests, on the accelerator, with the
precisions users pick there. Run with `pytest -m gpu` on a machine with CUDA."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from fewshotv2v.cli import app

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("k", [1, 3])
def test_generator_train_step_on_cuda(dtype, k):
    """Forward with a previous frame + backward under autocast: finite output and gradients everywhere."""
    from fewshotv2v.config import ModelConfig
    from fewshotv2v.models.generator import Generator

    cfg = ModelConfig.preset("tiny")
    gen = Generator(cfg).cuda()
    b, c, h, w = 2, cfg.label_nc, cfg.height, cfg.width
    ref_images = torch.rand(b, k, 3, h, w, device="cuda") * 2 - 1
    ref_labels = torch.rand(b, k, c, h, w, device="cuda")
    label, prev_label = torch.rand(2, b, c, h, w, device="cuda")
    prev = torch.rand(b, 3, h, w, device="cuda") * 2 - 1
    with torch.autocast("cuda", dtype=dtype, enabled=dtype != torch.float32):
        refs = gen.encode_references(ref_images, ref_labels)
        out = gen(label, refs, prev_image=prev, prev_label=prev_label)
        loss = out.image.float().abs().mean() + out.warped_ref.float().abs().mean()
    loss.backward()
    assert torch.isfinite(out.image.float()).all()
    assert out.image.shape == (b, 3, h, w)
    # E_A (attention) only runs when there is more than one reference.
    unused = {id(p) for p in gen.attention.parameters()} if k == 1 else set()
    grads = [p.grad for p in gen.parameters() if p.requires_grad and id(p) not in unused]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


def test_cuda_matches_cpu_in_fp32():
    from fewshotv2v.config import ModelConfig
    from fewshotv2v.models.generator import Generator

    torch.manual_seed(0)
    cfg = ModelConfig.preset("tiny")
    gen = Generator(cfg).eval()
    c, h, w = cfg.label_nc, cfg.height, cfg.width
    ref_images, ref_labels = torch.rand(1, 1, 3, h, w) * 2 - 1, torch.rand(1, 1, c, h, w)
    label = torch.rand(1, c, h, w)
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    with torch.no_grad():
        cpu = gen(label, gen.encode_references(ref_images, ref_labels)).image
        gen_cuda = gen.cuda()
        gpu = gen_cuda(label.cuda(), gen_cuda.encode_references(ref_images.cuda(), ref_labels.cuda())).image
    assert torch.allclose(cpu, gpu.cpu(), atol=1e-3)


@pytest.mark.parametrize("dtype", ["fp32", "bf16", "fp16"])
def test_pipeline_streams_on_cuda(tmp_path, dtype):
    from fewshotv2v.config import ModelConfig
    from fewshotv2v.models.generator import Generator
    from fewshotv2v.models.io import save_pretrained
    from fewshotv2v.pipeline import Pipeline
    from test_pipeline import person_keypoints, scene_image

    save_pretrained(tmp_path / "m", Generator(ModelConfig.preset("tiny")))
    pipe = Pipeline.from_pretrained(tmp_path / "m", device="cuda", dtype=dtype, backend="none")
    hw = (96, 64)
    pipe.set_references([scene_image(hw)], keypoints=[person_keypoints(hw)])
    frames = [scene_image(hw, seed=i) for i in range(6)]
    kps = [person_keypoints(hw, phase=0.4 * i) for i in range(6)]
    out = list(pipe.stream(frames, keypoints=kps))
    assert len(out) == 6 and out[0].dtype == np.uint8 and out[0].shape == (64, 32, 3)


def test_train_cli_on_cuda(tmp_path):
    from fewshotv2v.data.synthetic import generate_dataset

    generate_dataset(tmp_path / "data", identities=2, frames=10, size=(64, 64), seed=0)
    args = [
        "train", "--data", str(tmp_path / "data"), "--preset", "tiny", "--run", str(tmp_path / "run"),
        "--steps", "4", "--batch-size", "2", "--perceptual", "none", "--workers", "0", "--device", "cuda",
        "--single-frame-steps", "2", "--checkpoint-every", "4",
    ]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "run" / "checkpoints" / "step-00000004" / "model.safetensors").is_file()
