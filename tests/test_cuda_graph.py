"""`inference.cuda_graph.GraphedFrame`: eager fallback on CPU (tested here), graph == eager on CUDA."""

from __future__ import annotations

import pytest
import torch


def _generator_and_state(device: str, k: int = 1):
    from fewshotv2v.config import ModelConfig
    from fewshotv2v.models.generator import Generator

    torch.manual_seed(0)
    cfg = ModelConfig.preset("tiny")
    gen = Generator(cfg).to(device).eval()
    ref_images = torch.rand(1, k, 3, cfg.height, cfg.width, device=device) * 2 - 1  # (1, K, 3, H, W)
    ref_labels = torch.rand(1, k, cfg.label_nc, cfg.height, cfg.width, device=device)  # (1, K, C, H, W)
    with torch.inference_mode():
        state = gen.encode_references(ref_images, ref_labels)
    labels = [torch.rand(1, cfg.label_nc, cfg.height, cfg.width, device=device) for _ in range(5)]
    return gen, state, labels


def _run(step, labels):
    """Frames with the previous one fed back, as the pipeline does; copies (the output may be static)."""
    frames, prev_image, prev_label = [], None, None
    for label in labels:
        image = step(label, prev_image, prev_label)
        frames.append(image.clone())
        prev_image, prev_label = image.float(), label
    return frames


@pytest.mark.parametrize("k", [1, 2])
def test_falls_back_to_eager_without_cuda(k, one_thread):
    from fewshotv2v.inference.cuda_graph import GraphedFrame

    gen, state, labels = _generator_and_state("cpu", k)
    graphed = GraphedFrame(gen, state)
    assert not graphed.enabled
    with torch.inference_mode():
        eager = _run(lambda lab, pi, pl: gen(lab, state, pi, pl).image, labels)
        got = _run(graphed, labels)
    assert graphed.graph is None
    assert all(torch.equal(a, b) for a, b in zip(eager, got, strict=True))
    assert not torch.equal(got[0], got[1])  # different label maps, different frames


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_graph_replay_matches_eager_on_cuda():
    from fewshotv2v.inference.cuda_graph import GraphedFrame

    gen, state, labels = _generator_and_state("cuda")
    graphed = GraphedFrame(gen, state)
    eager = _run(graphed.eager, labels)
    got = _run(graphed, labels)
    assert graphed.graph is not None  # captured at frame 1 (frame 0 has no previous frame)
    for a, b in zip(eager, got, strict=True):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)
