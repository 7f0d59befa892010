"""`fsv2v eval` and the self-reconstruction metrics."""

from __future__ import annotations

import json
import math

import pytest
import torch
from typer.testing import CliRunner

from fewshotv2v.cli import app
from fewshotv2v.evaluation import ClipMetrics, psnr, ssim

runner = CliRunner()


pytestmark = pytest.mark.usefixtures("one_thread")


def test_ssim_matches_scikit_image():
    from skimage.metrics import structural_similarity

    g = torch.Generator().manual_seed(0)
    x = torch.rand(1, 3, 24, 30, generator=g, dtype=torch.float64)
    y = (x + 0.1 * torch.randn(x.shape, generator=g, dtype=torch.float64)).clamp(0, 1)
    ours = ssim(x, y).item()
    ref = structural_similarity(
        x[0].numpy(), y[0].numpy(), channel_axis=0, gaussian_weights=True, sigma=1.5,
        use_sample_covariance=False, data_range=1.0,
    )  # fmt: skip
    assert ours == pytest.approx(ref, abs=1e-6)
    assert ssim(x, x).item() == pytest.approx(1.0)


def test_psnr_and_flicker():
    x = torch.full((1, 3, 8, 8), 0.5)
    assert psnr(x, x + 0.1).item() == pytest.approx(20.0, abs=1e-4)  # 10 log10(1 / 0.01)
    assert psnr(x, x).item() == 100.0
    # output flickers between 0.4 and 0.6 while the ground truth stays still: flicker = 0.2
    m = ClipMetrics()
    for t in range(4):
        m.add(x + (0.1 if t % 2 else -0.1), x, score=t != 0)
    r = m.result()
    assert r["flicker"] == pytest.approx(0.2) and r["l1"] == pytest.approx(0.1) and r["frames"] == 3
    assert math.isnan(ClipMetrics().result()["flicker"])


def test_cli_eval_table_and_json(tmp_path):
    from fewshotv2v.config import ModelConfig
    from fewshotv2v.data.synthetic import generate_dataset
    from fewshotv2v.models.generator import Generator
    from fewshotv2v.models.io import save_pretrained

    data = tmp_path / "data"
    generate_dataset(data, identities=2, frames=5, size=(64, 64), seed=0)
    torch.manual_seed(0)
    model = save_pretrained(tmp_path / "model", Generator(ModelConfig.preset("tiny")))
    out = tmp_path / "eval.json"
    args = ["eval", "--model", str(model), "--data", str(data), "--k", "1,2", "--max-frames", "4"]
    result = runner.invoke(app, [*args, "--json", str(out), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert lines[0].split() == ["K", "clips", "L1", "PSNR", "SSIM", "flicker"]
    assert [line.split()[:2] for line in lines[1:]] == [["1", "2"], ["2", "2"]]
    report = json.loads(out.read_text())
    assert [r["k"] for r in report["results"]] == [1, 2]
    for row in report["results"]:
        assert 0 < row["l1"] < 1 and row["psnr"] > 0 and -1 <= row["ssim"] <= 1
    assert set(report["clips"]["1"]) == {"id0000", "id0001"}
    # K=2 leaves out 2 reference frames of the 4; K=1 one
    assert report["clips"]["1"]["id0000"]["frames"] == 3 and report["clips"]["2"]["id0000"]["frames"] == 2
    bad = runner.invoke(app, [*args[:-2], "--k", "9", "--device", "cpu"])
    assert bad.exit_code == 3 and "outside 1.." in bad.output
