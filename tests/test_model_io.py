"""Model folders: save -> load reproduces outputs, provenance metadata, strict and clear errors."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from fewshotv2v.config import ModelConfig
from fewshotv2v.errors import CheckpointError
from fewshotv2v.models.generator import Generator
from fewshotv2v.models.io import load_pretrained, read_metadata, save_pretrained, write_checksums


def _frame(model, config, seed=0):
    g = torch.Generator().manual_seed(seed)
    h, w, c = config.height, config.width, config.label_nc
    refs = model.encode_references(
        torch.rand(1, 1, 3, h, w, generator=g) * 2 - 1, torch.rand(1, 1, c, h, w, generator=g)
    )
    label = torch.rand(1, c, h, w, generator=g)
    prev = torch.rand(1, 3, h, w, generator=g) * 2 - 1
    with torch.no_grad():
        return model(label, refs, prev_image=prev, prev_label=label).image


def test_save_load_reproduces_outputs_exactly(tmp_path):
    config = ModelConfig.preset("tiny")
    model = Generator(config).eval()
    folder = save_pretrained(tmp_path / "m", model, metadata={"step": 12, "ema": True})
    assert sorted(p.name for p in folder.iterdir()) == ["checksums.json", "config.json", "model.safetensors"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # temp folder gone
    loaded, d = load_pretrained(folder)
    assert d is None and not loaded.training and loaded.config == config
    assert torch.equal(_frame(model, config), _frame(loaded, config))
    meta = read_metadata(folder)
    assert meta["arch"] == "tiny" and meta["step"] == "12" and meta["ema"] == "True"
    assert meta["fewshotv2v_version"]
    # the convenience methods delegate to io; saving over an existing folder works
    model.save_pretrained(folder)
    assert torch.equal(_frame(Generator.from_pretrained(folder), config), _frame(model, config))


def test_compiled_prefix_is_stripped(tmp_path):
    config = ModelConfig.preset("tiny")
    model = Generator(config)

    class Wrapper(torch.nn.Module):  # what torch.compile's OptimizedModule looks like to state_dict
        def __init__(self, inner):
            super().__init__()
            self._orig_mod = inner

    save_pretrained(tmp_path / "m", Wrapper(model))
    keys = load_file(str(tmp_path / "m" / "model.safetensors")).keys()
    assert not any("_orig_mod" in k for k in keys)
    load_pretrained(tmp_path / "m")


def test_discriminators_round_trip(tmp_path):
    pytest.importorskip("fewshotv2v.models.discriminators")
    from fewshotv2v.models.discriminators import Discriminators

    config = ModelConfig.preset("tiny")
    d = Discriminators(config)
    save_pretrained(tmp_path / "m", Generator(config), discriminators=d)
    _, d2 = load_pretrained(tmp_path / "m", with_discriminators=True)
    for (k, v), (k2, v2) in zip(d.state_dict().items(), d2.state_dict().items(), strict=True):
        assert k == k2 and torch.equal(v, v2)


def test_missing_folder_and_files(tmp_path):
    with pytest.raises(CheckpointError, match="model folder not found"):
        load_pretrained(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="config.json is missing"):
        load_pretrained(tmp_path / "empty")
    folder = save_pretrained(tmp_path / "m", Generator(ModelConfig.preset("tiny")))
    with pytest.raises(CheckpointError, match="discriminator.safetensors"):
        load_pretrained(folder, with_discriminators=True)
    (folder / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="weights file not found"):
        load_pretrained(folder)


def test_invalid_config_json(tmp_path):
    folder = save_pretrained(tmp_path / "m", Generator(ModelConfig.preset("tiny")))
    (folder / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="cannot read"):
        load_pretrained(folder)
    data = ModelConfig.preset("tiny").to_dict()
    (folder / "config.json").write_text(json.dumps({**data, "height": 63}))
    with pytest.raises(CheckpointError, match="invalid .*divisible"):
        load_pretrained(folder)


def test_mismatched_checkpoint_names_keys(tmp_path):
    folder = save_pretrained(tmp_path / "m", Generator(ModelConfig.preset("tiny")))
    state = load_file(str(folder / "model.safetensors"))
    removed = sorted(state)[0]
    del state[removed]
    state["extra.weight"] = torch.zeros(1)
    save_file(state, str(folder / "model.safetensors"))
    write_checksums(folder)  # a consistent folder whose weights do not match the config
    with pytest.raises(CheckpointError) as info:
        load_pretrained(folder)
    message = str(info.value)
    assert "1 missing key(s)" in message and removed in message
    assert "1 unexpected key(s) (extra.weight)" in message


def test_other_config_gives_shape_or_key_error(tmp_path):
    folder = save_pretrained(tmp_path / "m", Generator(ModelConfig.preset("tiny")))
    wider = ModelConfig.preset("tiny", flow_ch_base=16).to_dict()
    (folder / "config.json").write_text(json.dumps(wider))
    with pytest.raises(CheckpointError, match="shape of"):
        load_pretrained(folder)


def test_a_bit_flipped_weights_file_is_refused(tmp_path):
    """checksums.json holds the sha256 of each weights file; a flipped bit in the tensor data (which
    safetensors itself never notices) is a one-line CheckpointError. Folders without it still load."""
    import json

    from fewshotv2v.errors import CheckpointError
    from fewshotv2v.hub import sha256_file
    from fewshotv2v.models.discriminators import Discriminators

    config = ModelConfig.preset("tiny")
    folder = save_pretrained(tmp_path / "m", Generator(config), discriminators=Discriminators(config))
    record = json.loads((folder / "checksums.json").read_text())
    assert record["sha256"] == {
        name: sha256_file(folder / name) for name in ("discriminator.safetensors", "model.safetensors")
    }
    weights = folder / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-100] ^= 0x01  # a bit in the last tensor's data: the header stays valid
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="model.safetensors is corrupt"):
        load_pretrained(folder)
    (folder / "checksums.json").unlink()  # a folder from before checksums.json: loads as it is
    load_pretrained(folder, with_discriminators=True)


def test_saved_and_exported_model_folders_are_readable_by_others(tmp_path):
    """safetensors writes 0600 files and mkdtemp 0700 folders: a model folder (or a packaged asset made
    from it) must get the usual modes, here 0644 / 0755 under umask 022."""
    import os
    import stat

    from fewshotv2v.hub_publish import export_model
    from fewshotv2v.models.discriminators import Discriminators

    old = os.umask(0o022)
    try:
        cfg = ModelConfig.preset("tiny")
        save_pretrained(tmp_path / "m", Generator(cfg), discriminators=Discriminators(cfg))
        export_model(tmp_path / "m", tmp_path / "half", half=True)
    finally:
        os.umask(old)
    for folder in (tmp_path / "m", tmp_path / "half"):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o755
        for f in folder.iterdir():
            assert stat.S_IMODE(f.stat().st_mode) == 0o644, f
