"""fewshotv2v.hub / hub_publish against a loopback Hub (real huggingface_hub client, explicit endpoint)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from huggingface_hub import get_token

from fewshotv2v import hub, hub_publish
from fewshotv2v.errors import (
    AuthError,
    CheckpointError,
    ChecksumError,
    ConfigError,
    DiskFullError,
    FewShotV2VWarning,
    ModelNotFoundError,
    NotFoundOnHubError,
    OfflineError,
    OutputExistsError,
)
from fewshotv2v.settings import load_settings
from hub_server import HubServer, model_folder_files, registry_dict, safetensors_bytes, sha256

TOKEN = "hf_loopback_secret_123"
WEIGHTS = {"model.safetensors": safetensors_bytes(n=64), "extra.onnx": b"onnx-bytes" * 100}


@pytest.fixture
def server():
    with HubServer(token=TOKEN) as srv:
        yield srv


def _settings(tmp_path: Path, server: HubServer, **hub_kw):
    return load_settings(cache_dir=tmp_path / "cache", hub={"endpoint": server.endpoint, **hub_kw})


def _registry(server: HubServer, files=WEIGHTS, **extra):
    commit = server.add_repo("org/weights", files)
    return hub.load_registry(_write(server, registry_dict("weights", "org/weights", commit, files, **extra)))


def _write(server: HubServer, data: dict) -> Path:
    path = Path(server.tmp) / "registry.json"
    path.write_text(json.dumps(data))
    return path


@pytest.fixture(autouse=True)
def _tmp_on_server(server, tmp_path):
    server.tmp = tmp_path  # where _write puts registry files


def test_shipped_registry_is_pinned():
    entries = hub.load_registry()
    assert entries["vgg19"].repo_id == "timm/vgg19.tv_in1k"
    assert entries["vgg19"].revision == "128d4708565b3a414bcbb9bbad440b2fe37b9f18"
    assert entries["vgg19"].size is None  # exact size not recorded: unknown, not invented
    assert entries["dwpose"].size == 134_399_116 + 216_746_733
    assert all(len(f.sha256) == 64 for e in entries.values() for f in e.files)
    assert not entries["pose"].published and entries["demo"].packaged


def test_registry_override_and_invalid(tmp_path, monkeypatch):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"models": {"x": {"repo_id": "a/b", "revision": "main", "files": []}}}))
    with pytest.raises(ConfigError, match="invalid model registry"):
        hub.load_registry(bad)
    good = tmp_path / "good.json"
    good.write_text(json.dumps(registry_dict("w", "a/b", "0" * 40, {"f": b"1"})))
    monkeypatch.setenv("FSV2V_REGISTRY", str(good))
    assert set(hub.load_registry()) == {"w", "pose"}


def test_pinned_download_verifies_and_second_call_makes_no_request(tmp_path, server, monkeypatch):
    settings = _settings(tmp_path, server)
    registry = _registry(server)
    commit = registry["weights"].revision
    folder = hub.download("weights", settings=settings, registry=registry, progress=False)
    assert {p.name for p in folder.iterdir()} == set(WEIGHTS)
    assert (folder / "extra.onnx").read_bytes() == WEIGHTS["extra.onnx"]
    paths = [r.path for r in server.requests]
    assert all(f"/org/weights/resolve/{commit}/" in p for p in paths)  # pinned commit, not "main"
    assert server.count("GET") == 2
    assert all("fewshotv2v/0.1.0" in r.headers.get("user-agent", "") for r in server.requests)
    if get_token() is None:  # no token configured (the subprocess CLI tests check this in isolation)
        assert all("authorization" not in r.headers for r in server.requests)

    # Everything cached and stamped: no HTTP request and no re-hash of the files.
    server.reset_requests()
    monkeypatch.setattr(hub, "sha256_file", lambda path: pytest.fail(f"re-hashed {path}"))
    assert hub.download("weights", settings=settings, registry=registry, progress=False) == folder
    assert server.count() == 0
    assert hub.resolve_model("weights", settings, registry=registry) == folder
    assert server.count() == 0


def test_offline_uses_cache_or_fails_clearly(tmp_path, server):
    registry = _registry(server)
    settings = _settings(tmp_path, server)
    with pytest.raises(OfflineError, match="not in the cache") as info:
        hub.download("weights", settings=settings, registry=registry, offline=True, progress=False)
    assert info.value.exit_code == 9
    assert server.count() == 0
    folder = hub.download("weights", settings=settings, registry=registry, progress=False)
    server.reset_requests()
    offline = _settings(tmp_path, server, offline=True)  # FSV2V_HUB__OFFLINE
    assert hub.download("weights", settings=offline, registry=registry, progress=False) == folder
    assert server.count() == 0


@pytest.mark.parametrize(
    ("what", "message"),
    [("file", "file missing.bin not found"), ("revision", "revision 1111"), ("repo", "repository org/nope")],
)
def test_not_found_errors(tmp_path, server, what, message):
    commit = server.add_repo("org/weights", WEIGHTS)
    files = {"missing.bin" if what == "file" else "model.safetensors": b"x"}
    data = registry_dict(
        "w",
        "org/nope" if what == "repo" else "org/weights",
        "1" * 40 if what == "revision" else commit,
        files,
    )
    with pytest.raises(NotFoundOnHubError, match=message) as info:
        hub.download("w", settings=_settings(tmp_path, server), registry=_write(server, data), progress=False)
    assert info.value.exit_code == 10 and "\n" not in str(info.value)


def test_gated_repo_needs_token(tmp_path, server):
    commit = server.add_repo("org/gated", WEIGHTS, gated=True)
    registry = _write(server, registry_dict("g", "org/gated", commit, WEIGHTS))
    with pytest.raises(AuthError, match="gated") as info:
        hub.download("g", settings=_settings(tmp_path, server), registry=registry, progress=False)
    assert info.value.exit_code == 11
    with pytest.raises(AuthError, match="gated"):  # 403: a token, but the wrong one
        hub.download("g", settings=_settings(tmp_path, server, token="hf_wrong"), registry=registry)
    server.reset_requests()
    folder = hub.download("g", settings=_settings(tmp_path, server, token=TOKEN), registry=registry)
    assert (folder / "model.safetensors").is_file()
    assert all(r.headers.get("authorization") == f"Bearer {TOKEN}" for r in server.requests)
    assert TOKEN not in str(info.value)


def test_corrupted_download_is_caught_and_removed(tmp_path, server):
    registry = _registry(server)
    server.repos["org/weights"].corrupt["extra.onnx"] = b"tampered!" * 100
    settings = _settings(tmp_path, server)
    with pytest.raises(ChecksumError, match="does not match") as info:
        hub.download("weights", settings=settings, registry=registry, progress=False)
    assert info.value.exit_code == 12
    repo_cache = settings.hub_cache_dir / "models--org--weights"
    assert not list(repo_cache.glob("snapshots/*/extra.onnx"))  # link removed
    blobs = {p.name for p in (repo_cache / "blobs").iterdir()}
    assert sha256(b"tampered!" * 100) not in blobs  # blob removed
    # The mirror is fixed: the next call downloads the file again and succeeds.
    server.repos["org/weights"].corrupt.clear()
    folder = hub.download("weights", settings=settings, registry=registry, progress=False)
    assert (folder / "extra.onnx").read_bytes() == WEIGHTS["extra.onnx"]


def test_unpinned_revision_and_force(tmp_path, server, monkeypatch):
    registry = _registry(server)
    settings = _settings(tmp_path, server)
    hashed = []
    real = hub.sha256_file
    monkeypatch.setattr(hub, "sha256_file", lambda path: hashed.append(path.name) or real(path))
    with pytest.warns(FewShotV2VWarning, match="not the pinned one"):
        folder = hub.download(
            "weights", settings=settings, registry=registry, revision="main", progress=False
        )
    assert hashed == [] and "/resolve/main/" in server.requests[0].path  # not the pin: not checked
    hub.download("weights", settings=settings, registry=registry, progress=False)
    hub.download("weights", settings=settings, registry=registry, progress=False)
    assert sorted(hashed) == sorted(WEIGHTS)  # hashed once; the stamp spares the second call
    server.reset_requests()
    assert hub.download("weights", settings=settings, registry=registry, force=True, progress=False) == folder
    assert server.count("GET") == 2 and len(hashed) == 4  # downloaded and checked again


def test_os_errors_map_to_one_line_errors():
    import errno

    full = hub._hub_error(OSError(errno.ENOSPC, "No space left"), "a/b", "f.bin", "0" * 40, "http://x")
    assert isinstance(full, DiskFullError) and full.exit_code == 13
    other = OSError(errno.EACCES, "denied")
    assert hub._hub_error(other, "a/b", "f.bin", "main", "http://x") is other  # not ours: re-raised as is


@pytest.mark.slow  # huggingface_hub retries a refused connection for ~25 s before giving up
def test_unreachable_endpoint_is_an_offline_error(tmp_path, server):
    registry = _registry(server)
    settings = load_settings(cache_dir=tmp_path / "cache", hub={"endpoint": "http://127.0.0.1:9"})
    with pytest.raises(OfflineError, match="unreachable"):
        hub.download("weights", settings=settings, registry=registry, progress=False)


def test_local_dir_download(tmp_path, server):
    registry = _registry(server)
    settings = _settings(tmp_path, server)
    out = tmp_path / "here"
    assert hub.download("weights", settings=settings, registry=registry, local_dir=out, progress=False) == out
    assert (out / "model.safetensors").read_bytes() == WEIGHTS["model.safetensors"]
    server.reset_requests()
    hub.download("weights", settings=settings, registry=registry, local_dir=out, progress=False)
    assert server.count() == 0
    # A corrupted copy in a local_dir is removed with huggingface_hub's metadata, then fetched again.
    server.repos["org/weights"].corrupt["extra.onnx"] = b"bad" * 9
    with pytest.raises(ChecksumError):
        hub.download("weights", settings=settings, registry=registry, local_dir=out, force=True)
    assert not (out / "extra.onnx").exists()
    assert not list(out.glob(".cache/huggingface/download/extra.onnx.metadata"))
    server.repos["org/weights"].corrupt.clear()
    hub.download("weights", settings=settings, registry=registry, local_dir=out, progress=False)
    assert (out / "extra.onnx").read_bytes() == WEIGHTS["extra.onnx"]


def test_repo_model_download_and_lookup(tmp_path, server):
    server.add_repo("someone/my-pose", model_folder_files())
    settings = _settings(tmp_path, server)
    folder = hub.download("mine", repo="someone/my-pose", settings=settings, progress=False)
    assert {p.name for p in folder.iterdir()} == {
        "config.json",
        "model.safetensors",
        "discriminator.safetensors",
    }
    server.reset_requests()
    # No network from here on: the alias and the repo id both resolve from the cache.
    assert hub.resolve_model("mine", settings) == folder
    assert hub.resolve_model("someone/my-pose", settings) == folder
    assert server.count() == 0
    names = {row.name: row for row in hub.list_models(settings)}
    assert names["mine"].local_path == str(folder)


def test_repo_without_discriminator(tmp_path, server):
    server.add_repo("someone/g-only", model_folder_files(discriminator=False))
    folder = hub.download("someone/g-only", settings=_settings(tmp_path, server), progress=False)
    assert not (folder / "discriminator.safetensors").exists()


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"README.md": b"# hi"}, "has no config.json"),
        ({"config.json": b'{"architectures": ["Bert"]}', "model.safetensors": b"x"}, "not a fewshotv2v"),
        ({"config.json": b'{"mode": "pose", "bogus_key": 1}'}, "not a fewshotv2v model"),
        ({"config.json": model_folder_files()["config.json"]}, "has no model.safetensors"),
        (
            {"config.json": model_folder_files()["config.json"], "model.safetensors": b"junk"},
            "not a safetens",
        ),
    ],
)
def test_repo_that_is_not_a_model(tmp_path, server, files, message):
    server.add_repo("someone/other", files)
    with pytest.raises(CheckpointError, match=message):
        hub.download("x", repo="someone/other", settings=_settings(tmp_path, server), progress=False)


def test_resolve_model_messages(tmp_path, server, monkeypatch):
    settings = _settings(tmp_path, server)
    registry = _registry(server)
    assert hub.resolve_model(tmp_path, settings) == tmp_path
    with pytest.raises(ModelNotFoundError, match="fsv2v download weights"):
        hub.resolve_model("weights", settings, registry=registry)
    with pytest.raises(ModelNotFoundError, match="fsv2v train"):
        hub.resolve_model("pose", settings, registry=registry)
    with pytest.raises(ModelNotFoundError, match="not found"):
        hub.resolve_model("nonsense", settings, registry=registry)
    with pytest.raises(ModelNotFoundError, match="--repo someone/unknown"):
        hub.resolve_model("someone/unknown", settings, registry=registry)
    assert server.count() == 0
    assets = tmp_path / "assets"
    (assets / "demo").mkdir(parents=True)
    monkeypatch.setattr(hub, "ASSETS_DIR", assets)
    assert hub.resolve_model("demo", settings) == assets / "demo"
    assert hub.download("demo", settings=settings) == assets / "demo"


def test_unpublished_download_says_how_to_get_one(tmp_path, server):
    with pytest.raises(ModelNotFoundError, match="--repo OWNER/NAME"):
        hub.download("pose", settings=_settings(tmp_path, server))
    assert server.count() == 0


# ------------------------------------------------------------------------------------------ export / push
def _run_folder(root: Path) -> Path:
    """A training run as `fewshotv2v.training` writes it (see training/checkpoint.py)."""
    files = model_folder_files()
    for step in (100, 200):
        ckpt = root / "checkpoints" / f"step-{step:08d}"
        ckpt.mkdir(parents=True)
        (ckpt / "config.json").write_bytes(files["config.json"])
        (ckpt / "model.safetensors").write_bytes(safetensors_bytes({"ema": "True", "step": str(step)}))
        (ckpt / "generator_raw.safetensors").write_bytes(
            safetensors_bytes({"ema": "False", "step": str(step)})
        )
        (ckpt / "discriminator.safetensors").write_bytes(files["discriminator.safetensors"])
        (ckpt / "training_state.pt").write_bytes(b"not exported")
    tmp = root / "checkpoints" / ".tmp-step-00000300"  # a crash mid-write: never exported
    tmp.mkdir()
    (tmp / "model.safetensors").write_bytes(safetensors_bytes({"step": "300"}))
    (root / "metrics.json").write_text(json.dumps({"psnr": 23.25, "ssim": 0.81}))
    (root / "train_config.json").write_text(json.dumps({"dataset": "data/my-dancers", "steps": 200}))
    log = [  # the trainer's record format: losses nested under "losses"
        {"step": 100, "time": 1.0, "losses": {"loss_g": 2.5}, "lr_g": 1e-4},
        {"step": 200, "time": 2.0, "losses": {"loss_g": 1.25}, "lr_g": 1e-4},
    ]
    (root / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in log) + '{"step": 3')  # torn line
    return root


def test_export_run_folder_picks_newest_checkpoint(tmp_path):
    run = _run_folder(tmp_path / "run")
    out = hub_publish.export_model(run, tmp_path / "export", license="Apache-2.0")
    assert {p.name for p in out.iterdir()} == {
        "model.safetensors",
        "config.json",
        "discriminator.safetensors",
        "checksums.json",
        "README.md",
    }
    from fewshotv2v.models.io import verify_checksum

    for name in ("model.safetensors", "discriminator.safetensors"):
        verify_checksum(out / name)  # checksums.json is of the exported files
    meta = hub_publish.safetensors_metadata(out / "model.safetensors")
    assert meta == {"ema": "True", "step": "200"}  # newest complete step; EMA by default
    card = (out / "README.md").read_text()
    front = card.split("---")[1]
    assert "license: apache-2.0" in front and "library_name: fewshotv2v" in front and "- pose" in front
    assert "| psnr | 23.25 |" in card and "data/my-dancers" in card
    assert "last logged step (200)" in card and "loss_g: 1.25" in card and "lr_g" not in card
    with pytest.raises(OutputExistsError):
        hub_publish.export_model(run, out)
    out = hub_publish.export_model(run, out, ema=False, overwrite=True)
    assert hub_publish.safetensors_metadata(out / "model.safetensors") == {"ema": "False", "step": "200"}
    assert not list(tmp_path.glob(".export.tmp*"))


def test_export_model_folder_with_separate_ema_file(tmp_path):
    folder = tmp_path / "m"
    folder.mkdir()
    for name, data in model_folder_files(discriminator=False).items():
        (folder / name).write_bytes(data)  # model.safetensors says ema=true
    out = hub_publish.export_model(folder, tmp_path / "out")
    card = (out / "README.md").read_text()
    assert "license: other" in card and "Unknown: no metrics.json" in card and "did not record" in card
    assert "discriminator.safetensors" not in {p.name for p in out.iterdir()}
    with pytest.raises(CheckpointError, match="EMA weights only"):
        hub_publish.export_model(folder, tmp_path / "raw", ema=False)
    # Other layout: raw weights in model.safetensors, EMA in model_ema.safetensors.
    (folder / "model.safetensors").write_bytes(safetensors_bytes({"ema": "false"}))
    (folder / "model_ema.safetensors").write_bytes(safetensors_bytes({"ema": "true"}))
    ema = hub_publish.export_model(folder, tmp_path / "e")
    raw = hub_publish.export_model(folder, tmp_path / "r", ema=False)
    assert hub_publish.safetensors_metadata(ema / "model.safetensors")["ema"] == "true"
    assert hub_publish.safetensors_metadata(raw / "model.safetensors")["ema"] == "false"
    with pytest.raises(CheckpointError, match="neither a model folder"):
        hub_publish.export_model(tmp_path, tmp_path / "x")


def test_push_to_loopback_hub(tmp_path, server):
    folder = tmp_path / "m"
    folder.mkdir()
    for name, data in model_folder_files().items():
        (folder / name).write_bytes(data)
    (folder / "notes.txt").write_text("not uploaded")
    with pytest.raises(AuthError, match="write token"):
        hub_publish.push(folder, "me/model", settings=_settings(tmp_path, server))
    with pytest.raises(AuthError, match="401"):
        hub_publish.push(folder, "me/model", settings=_settings(tmp_path, server, token="hf_bad"))
    settings = _settings(tmp_path, server, token=TOKEN)
    url = hub_publish.push(folder, "me/model", settings=settings, private=True)
    repo = server.repos["me/model"]
    assert repo.private and url.endswith(repo.refs["main"])
    assert repo.commits[repo.refs["main"]] == {
        p.name: p.read_bytes() for p in folder.glob("*.*") if p.suffix != ".txt"
    }
    assert "library_name: fewshotv2v" not in "".join(server.validated_cards)  # no README.md in this folder
    (folder / "README.md").write_text("# no front matter\n")
    with pytest.warns(UserWarning, match="metadata"):  # the Hub's card check warns; the push goes on
        hub_publish.push(folder, "me/model", settings=settings)
    (folder / "README.md").write_text("---\nlicense: mit\nlibrary_name: fewshotv2v\n---\n# card\n")
    hub_publish.push(folder, "me/model", settings=settings, revision="v2")  # new branch
    assert server.validated_cards[-1].startswith("---\nlicense: mit")
    assert set(repo.refs) == {"main", "v2"}
    # What was pushed downloads back as a model (the same server, the same client).
    back = hub.download("m", repo="me/model", revision="v2", settings=settings, progress=False)
    assert (back / "config.json").read_bytes() == (folder / "config.json").read_bytes()


def test_hub_retry_lines_become_one_line_of_ours(capfd):
    """huggingface_hub logs every retry of an unreachable endpoint on stderr (~24 s of them): under our
    calls the first one becomes a single info line and the rest never reach the terminal."""
    import logging

    import huggingface_hub.file_download  # noqa: F401  (sets up huggingface_hub's stderr handler)

    from fewshotv2v.hub import hub_logs_as_ours

    inner = logging.getLogger("huggingface_hub.utils._http")  # where huggingface_hub logs them
    with hub_logs_as_ours("http://127.0.0.1:9"):
        for i in range(1, 6):
            inner.warning(
                "'[Errno 111] Connection refused' thrown while requesting HEAD http://127.0.0.1:9/x"
            )
            inner.warning(f"Retrying in {2 ** (i - 1)}s [Retry {i}/5].")
    err = capfd.readouterr().err
    assert [line for line in err.splitlines() if line.strip()] == [
        "http://127.0.0.1:9 does not answer; retrying for up to ~25 s (Ctrl-C to stop)"
    ]
    hub_logger = logging.getLogger("huggingface_hub")
    assert hub_logger.propagate and all(type(h).__name__ != "_Ours" for h in hub_logger.handlers)
