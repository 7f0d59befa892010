"""`fsv2v info` on a preset, on a model folder, and on unknown names."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from fewshotv2v.cli import app
from fewshotv2v.config import ModelConfig
from fewshotv2v.models.generator import Generator
from fewshotv2v.models.io import save_pretrained

runner = CliRunner()


def test_info_preset_json():
    result = runner.invoke(app, ["info", "tiny", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["source"] == {"preset": "tiny"}
    assert data["config"]["name"] == "tiny" and data["label_nc"] == 4
    params = data["parameters"]
    for part in ("E_F", "E_P", "E_A", "label_embedder", "H", "W", "combine_unets"):
        assert params[part] > 0
    model = Generator(ModelConfig.preset("tiny"))
    assert params["generator_total"] == sum(p.numel() for p in model.parameters())
    assert data["gmac_per_frame"] > 0 and data["gmac_resolution"] == [64, 32]


def test_info_folder_table(tmp_path):
    folder = save_pretrained(
        tmp_path / "model", Generator(ModelConfig.preset("tiny-street")), metadata={"step": 7}
    )
    result = runner.invoke(app, ["info", str(folder)])
    assert result.exit_code == 0, result.output
    text = " ".join(result.stdout.split())
    assert "tiny-street" in text and "label_embedder" in text and "GMAC per steady-state frame" in text
    assert "combine_unets" not in text  # street uses matting
    result = runner.invoke(app, ["info", str(folder), "--json", "--no-macs"])
    data = json.loads(result.stdout)
    assert data["source"]["metadata"]["step"] == "7" and "gmac_per_frame" not in data


def test_info_unknown_name_is_one_clean_error(tmp_path):
    result = runner.invoke(app, ["info", str(tmp_path / "no-such-model")])
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    assert "error:" in result.stderr
