"""`fsv2v download | models | export | push` in a subprocess (settings come from the environment),
against the loopback Hub of `hub_server.py`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hub_server import HubServer, model_folder_files, registry_dict, safetensors_bytes

TOKEN = "hf_cli_secret_token_987"
FILES = {"model.safetensors": safetensors_bytes(n=32), "aux.onnx": b"aux" * 50}


@pytest.fixture
def server():
    with HubServer(token=TOKEN) as srv:
        yield srv


@pytest.fixture
def env(tmp_path, server):
    """Environment of the CLI: the loopback endpoint and a registry with one pinned entry."""
    commit = server.add_repo("org/weights", FILES)
    gated = server.add_repo("org/gated", FILES, gated=True)
    data = registry_dict("weights", "org/weights", commit, FILES)
    data["models"]["locked"] = registry_dict("locked", "org/gated", gated, FILES)["models"]["locked"]
    registry = tmp_path / "registry.json"
    registry.write_text(json.dumps(data))
    return {"FSV2V_REGISTRY": str(registry), "FSV2V_HUB__ENDPOINT": server.endpoint}


def fsv2v(*args: str, env: dict[str, str], **extra: str) -> subprocess.CompletedProcess:
    full = {**os.environ, **env, **extra}
    return subprocess.run(
        [sys.executable, "-m", "fewshotv2v", *args], env=full, capture_output=True, text=True, timeout=120
    )


def test_download_prints_folder_and_second_run_is_free(env, server):
    first = fsv2v("download", "weights", env=env)
    assert first.returncode == 0, first.stderr
    folder = Path(first.stdout.strip())
    assert {p.name for p in folder.iterdir()} == set(FILES)
    assert server.count("GET") == 2
    server.reset_requests()
    second = fsv2v("download", "weights", env=env)
    assert second.returncode == 0 and second.stdout == first.stdout
    assert server.count() == 0
    offline = fsv2v("download", "weights", "--offline", env=env)
    assert offline.returncode == 0 and offline.stdout == first.stdout


@pytest.mark.parametrize(
    ("args", "code", "words"),
    [
        (["download", "pose"], 7, "fsv2v train"),
        (["download", "weights", "--offline"], 9, "not in the cache"),
        (["download", "locked"], 11, "gated"),
        (["download", "x", "--repo", "org/nope"], 10, "repository org/nope not found"),
    ],
)
def test_download_errors_are_one_line_with_exit_codes(env, args, code, words):
    result = fsv2v(*args, env=env)
    assert result.returncode == code
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and words in " ".join(lines)
    assert result.stdout == ""


def test_token_sent_only_when_configured_and_never_printed(env, server):
    assert fsv2v("download", "weights", env=env).returncode == 0
    assert server.requests and all("authorization" not in r.headers for r in server.requests)
    server.reset_requests()

    wrong = "hf_wrong_secret_555"
    denied = fsv2v("-v", "download", "locked", env=env, FSV2V_HUB__TOKEN=wrong)
    assert denied.returncode == 11
    assert wrong not in denied.stdout + denied.stderr  # not even in the -v traceback
    assert server.requests[0].headers["authorization"] == f"Bearer {wrong}"
    server.reset_requests()

    ok = fsv2v("download", "locked", env=env, HF_TOKEN=TOKEN)  # the client's own variable works too
    assert ok.returncode == 0, ok.stderr
    assert all(r.headers.get("authorization") == f"Bearer {TOKEN}" for r in server.requests)
    assert TOKEN not in ok.stdout + ok.stderr


def test_stored_login_token_is_used(env, server, tmp_path):
    # `hf auth login` stores the token in $HF_HOME/token (HF_HOME is per test, see conftest.py).
    hf_home = Path(os.environ["HF_HOME"])
    hf_home.mkdir(parents=True, exist_ok=True)
    (hf_home / "token").write_text(TOKEN)
    ok = fsv2v("download", "locked", env=env)
    assert ok.returncode == 0, ok.stderr
    assert server.requests and all(
        r.headers.get("authorization") == f"Bearer {TOKEN}" for r in server.requests
    )
    assert TOKEN not in ok.stdout + ok.stderr


def test_models_lists_known_and_downloaded(env):
    before = json.loads(fsv2v("models", "--json", env=env).stdout)
    rows = {r["name"]: r for r in before}
    assert set(rows) == {"weights", "locked", "pose"}
    assert rows["weights"]["local_path"] is None and rows["weights"]["size"] == sum(map(len, FILES.values()))
    assert rows["weights"]["license"] == "MIT" and rows["pose"]["source"] == "not published"
    folder = fsv2v("download", "weights", env=env).stdout.strip()
    after = {r["name"]: r for r in json.loads(fsv2v("models", "--json", env=env).stdout)}
    assert after["weights"]["local_path"] == folder
    table = fsv2v("models", env=env)
    assert table.returncode == 0
    text = " ".join(table.stdout.split())
    assert "weights" in text and "org/weights@" in text and "not published" in text and "MIT" in text


def test_export_then_push_then_download(tmp_path, env, server):
    run = tmp_path / "run" / "checkpoints" / "step-0000010"
    run.mkdir(parents=True)
    for name, data in model_folder_files().items():
        (run / name).write_bytes(data)
    out = tmp_path / "export"
    args = ["--license", "mit", "--data", "40 dance videos filmed by us (CC-BY-4.0)"]
    exported = fsv2v("export", str(tmp_path / "run"), "-o", str(out), *args, env=env)
    assert exported.returncode == 0, exported.stderr
    assert Path(exported.stdout.strip()) == out
    card = (out / "README.md").read_text()
    assert "license: mit" in card and "40 dance videos filmed by us (CC-BY-4.0)" in card
    again = fsv2v("export", str(tmp_path / "run"), "-o", str(out), env=env)
    assert again.returncode == 5  # OutputExistsError without --overwrite

    no_token = fsv2v("push", str(out), "--repo", "me/dancer", env=env)
    assert no_token.returncode == 11 and "write token" in no_token.stderr
    pushed = fsv2v("push", str(out), "--repo", "me/dancer", "--private", env=env, FSV2V_HUB__TOKEN=TOKEN)
    assert pushed.returncode == 0, pushed.stderr
    assert "/me/dancer/commit/" in pushed.stdout and TOKEN not in pushed.stdout + pushed.stderr
    assert set(server.repos["me/dancer"].commits[server.repos["me/dancer"].refs["main"]]) == {
        "README.md",
        "config.json",
        "checksums.json",
        "model.safetensors",
        "discriminator.safetensors",
    }
    got = fsv2v("download", "dancer", "--repo", "me/dancer", env=env, FSV2V_HUB__TOKEN=TOKEN)
    assert got.returncode == 0, got.stderr
    assert (Path(got.stdout.strip()) / "model.safetensors").read_bytes() == (
        out / "model.safetensors"
    ).read_bytes()


# ---- Hugging Face's own environment variables (read when the command runs; FSV2V_HUB__* wins) --------------


def test_hf_endpoint_is_honoured_and_fsv2v_endpoint_wins(env, server, tmp_path):
    hf_only = {k: v for k, v in env.items() if k != "FSV2V_HUB__ENDPOINT"}
    got = fsv2v("download", "weights", env=hf_only, HF_ENDPOINT=server.endpoint)
    assert got.returncode == 0, got.stderr
    assert server.count("GET") == 2  # the mirror served the files
    # both set: ours wins (the HF_ENDPOINT here refuses connections; it is never tried)
    server.reset_requests()
    both = fsv2v("download", "weights", "--force", env=env, HF_ENDPOINT="http://127.0.0.1:9")
    assert both.returncode == 0, both.stderr
    assert server.count("GET") == 2 and "127.0.0.1:9" not in both.stderr


def test_hf_hub_offline_is_honoured(env, server):
    offline = fsv2v("download", "weights", env=env, HF_HUB_OFFLINE="1")
    assert offline.returncode == 9 and "not in the cache" in " ".join(offline.stderr.split())
    assert server.requests == []  # no request at all
    # huggingface_hub refuses every request while HF_HUB_OFFLINE is set (read at its import): the message
    # says so, even when our own setting says online
    still = fsv2v("download", "weights", env=env, HF_HUB_OFFLINE="1", FSV2V_HUB__OFFLINE="0")
    assert still.returncode == 9 and "HF_HUB_OFFLINE is set); unset it" in " ".join(still.stderr.split())
    assert fsv2v("download", "weights", env=env).returncode == 0
    cached = fsv2v("download", "weights", env=env, HF_HUB_OFFLINE="1")  # now in the cache: fine offline
    assert cached.returncode == 0, cached.stderr
    server.reset_requests()
    ours = fsv2v("download", "weights", "--force", env=env, FSV2V_HUB__OFFLINE="1")
    assert ours.returncode == 2 and "offline mode forbids" in ours.stderr and server.requests == []


def test_downloads_go_to_the_standard_hugging_face_cache(env, server, tmp_path):
    hf_home = Path(os.environ["HF_HOME"])  # per test (conftest.py)
    first = fsv2v("download", "weights", env=env)
    assert first.returncode == 0, first.stderr
    assert Path(first.stdout.strip()).is_relative_to(hf_home / "hub")  # shared with other HF tools
    cache = tmp_path / "hf-hub-cache"
    moved = fsv2v("download", "weights", env=env, HF_HUB_CACHE=str(cache))
    assert moved.returncode == 0 and Path(moved.stdout.strip()).is_relative_to(cache)
    ours = tmp_path / "ours"
    won = fsv2v("download", "weights", env=env, HF_HUB_CACHE=str(cache), FSV2V_HUB__CACHE_DIR=str(ours))
    assert won.returncode == 0 and Path(won.stdout.strip()).is_relative_to(ours)
    # a file another tool put in the HF cache is reused: no download
    server.reset_requests()
    again = fsv2v("download", "weights", env=env, HF_HUB_CACHE=str(cache))
    assert again.returncode == 0 and server.count("GET") == 0
