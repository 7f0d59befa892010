"""Publishing models: `export_model` makes a Hub-ready folder (weights, config, model card) from a model
folder or a training run, and `push` uploads it with `HfApi.create_repo` + `HfApi.upload_folder`.

Run folder layout (written by `fewshotv2v.training`, see `training/checkpoint.py`):
`RUN/checkpoints/step-XXXXXXXX/` holds `config.json`, `model.safetensors` (the EMA generator),
`discriminator.safetensors` and `generator_raw.safetensors` (the raw generator); `RUN/train_config.json` and
`RUN/log.jsonl` (losses per logged step), and optionally `RUN/metrics.json` (e.g. saved evaluation
results). The newest checkpoint is exported; temporary `.tmp-step-*` folders are ignored, and so are step
folders without a config and weights. Other model folders may keep their EMA weights in
`model_ema.safetensors` beside raw ones in `model.safetensors`: both layouts are understood.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

from fewshotv2v import __version__
from fewshotv2v.errors import (
    AuthError,
    CheckpointError,
    DownloadError,
    InputError,
    NotFoundOnHubError,
    OfflineError,
    OutputExistsError,
)
from fewshotv2v.hub import _REPO_ID, LIBRARY_NAME, _settings, hub_token, validate_model_config

_STEP_DIR = re.compile(r"^step-(\d+)$")
WEIGHT_FILES = ("model.safetensors", "model_ema.safetensors")
RAW_FILE = "generator_raw.safetensors"  # the trainer's raw (non-EMA) generator


def _is_model_folder(path: Path) -> bool:
    return (path / "config.json").is_file() and any((path / f).is_file() for f in WEIGHT_FILES)


def find_checkpoint(path: str | Path) -> Path:
    """A model folder as given, or the newest complete `checkpoints/step-N/` of a training run."""
    path = Path(path).expanduser()
    if not path.is_dir():
        raise InputError(f"no such folder: {path}")
    if _is_model_folder(path):
        return path
    steps = []
    for child in (path / "checkpoints").glob("step-*"):
        match = _STEP_DIR.match(child.name)
        if match and child.is_dir() and _is_model_folder(child):
            steps.append((int(match.group(1)), child))
    if not steps:
        raise CheckpointError(
            f"{path} is neither a model folder (config.json + model.safetensors) nor a training run "
            "with complete checkpoints/step-N/ folders"
        )
    return max(steps)[1]


def safetensors_metadata(path: Path) -> dict[str, str]:
    """The `__metadata__` strings of a safetensors file (provenance: step, ema, version...)."""
    try:
        with open(path, "rb") as fh:
            length = int.from_bytes(fh.read(8), "little")
            header = json.loads(fh.read(length))
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{path} is not a safetensors file") from exc
    meta = header.get("__metadata__") or {}
    return {str(k): str(v) for k, v in meta.items()}


def _truthy(value: str | None) -> bool:
    return str(value).lower() in {"1", "true", "yes"}


def _pick_weights(ckpt: Path, ema: bool) -> tuple[Path, bool]:
    """(weights file, holds EMA weights?) for the `--ema/--no-ema` choice."""
    ema_file, main_file, raw_file = (
        ckpt / "model_ema.safetensors",
        ckpt / "model.safetensors",
        ckpt / RAW_FILE,
    )
    main_is_ema = main_file.is_file() and _truthy(safetensors_metadata(main_file).get("ema"))
    if ema:
        if ema_file.is_file():
            return ema_file, True
        return main_file, main_is_ema  # the trainer's layout: model.safetensors is the EMA generator
    if raw_file.is_file():
        return raw_file, False
    if not main_file.is_file() or main_is_ema:
        raise CheckpointError(f"{ckpt} holds EMA weights only (no raw generator): export with --ema")
    return main_file, False


def _last_losses(log: Path) -> dict[str, Any] | None:
    """The last record of a training `log.jsonl` that has a step (a torn last line is skipped)."""
    try:
        lines = log.read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and "step" in record:
            # The trainer logs {"step", "time", "losses": {...}, "lr_g", ...}: the card lists the losses.
            losses = record.get("losses")
            flat = dict(losses) if isinstance(losses, dict) else dict(record)
            flat["step"] = record["step"]
            return flat
    return None


def _read_json(path: Path) -> Any | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def export_model(
    src: str | Path,
    out: str | Path,
    *,
    ema: bool = True,
    overwrite: bool = False,
    license: str | None = None,
    name: str | None = None,
    data_description: str | None = None,
    half: bool = False,
    discriminator: bool = True,
) -> Path:
    """Write a Hub-ready folder: model.safetensors, config.json, discriminator.safetensors (if present and
    `discriminator`), README.md (model card with YAML front matter). Written to a temporary folder, then
    renamed. `half`: store the weights as fp16 (half the size; they load into fp32 modules as usual)."""
    ckpt = find_checkpoint(src)
    out = Path(out).expanduser()
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite:
        raise OutputExistsError(f"{out} exists and is not empty (use --overwrite)")
    config = validate_model_config(ckpt / "config.json", source=str(ckpt))
    weights, is_ema = _pick_weights(ckpt, ema)
    run = ckpt.parent.parent if ckpt.parent.name == "checkpoints" else ckpt
    tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        with_d = discriminator and (ckpt / "discriminator.safetensors").is_file()
        _copy_weights(weights, tmp / "model.safetensors", half)
        shutil.copyfile(ckpt / "config.json", tmp / "config.json")
        if with_d:
            _copy_weights(ckpt / "discriminator.safetensors", tmp / "discriminator.safetensors", half)
        card = model_card(
            name=name or out.name,
            config=config,
            license=license or "other",
            ema=is_ema,
            provenance=safetensors_metadata(weights),
            train_config=_read_json(run / "train_config.json"),
            metrics=_read_json(run / "metrics.json") or _read_json(ckpt / "metrics.json"),
            losses=_last_losses(run / "log.jsonl"),
            has_discriminator=with_d,
            data_description=data_description,
        )
        (tmp / "README.md").write_text(card)
        from fewshotv2v.models.io import write_checksums

        write_checksums(tmp)  # of the copied weights (model.safetensors may be the raw generator)
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def _copy_weights(src: Path, dst: Path, half: bool) -> None:
    """Copy a safetensors file; `half`: with its floating-point tensors as fp16 (metadata `dtype=fp16`)."""
    if not half:
        shutil.copyfile(src, dst)
        return
    import torch
    from safetensors import safe_open

    from fewshotv2v.models.weights import save_safetensors

    with safe_open(str(src), framework="pt") as f:
        metadata = dict(f.metadata() or {})
        state = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - safe_open has no __iter__
    state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    save_safetensors(state, dst, {**metadata, "dtype": str(torch.float16).split(".")[-1]})


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def model_card(
    *,
    name: str,
    config: dict[str, Any],
    license: str,
    ema: bool,
    provenance: dict[str, str],
    train_config: Any | None,
    metrics: Any | None,
    has_discriminator: bool,
    losses: dict[str, Any] | None = None,
    data_description: str | None = None,
) -> str:
    """The README.md model card: YAML front matter, usage, architecture, data, metrics, provenance."""
    mode = config.get("mode", "unknown")
    lines = [
        "---",
        f"license: {license.lower()}",
        f"library_name: {LIBRARY_NAME}",
        "tags:",
        *(f"- {t}" for t in ("video-to-video", "few-shot", "vid2vid", "gan", str(mode))),
        "---",
        "",
        f"# {name}",
        "",
        f"A few-shot video-to-video synthesis model (Wang et al., NeurIPS 2019) in **{mode}** mode, made",
        f"with [fewshotv2v]({'https://github.com/fewshotv2v/fewshotv2v'}) {__version__}. Given a few",
        "reference images of a person (or scene) and a driving video, it renders the reference moving",
        "like the driving video.",
        "",
        "## Usage",
        "",
        "```bash",
        "pip install fewshotv2v",
        f"fsv2v download {mode} --repo OWNER/NAME   # the repository holding this card",
        "```",
        "",
        "## Architecture",
        "",
        "| key | value |",
        "| --- | --- |",
        *(
            f"| {k} | {_fmt(v)} |"
            for k, v in config.items()
            if not isinstance(v, dict | list) and k not in {"format", "version"}
        ),
        "",
        f"Weights: {'EMA of the generator' if ema else 'raw generator (no EMA)'}"
        + ("; discriminator weights included (for fine-tuning)." if has_discriminator else "."),
        "",
        "## Training data",
        "",
    ]
    data_keys = {}
    if isinstance(train_config, dict):
        data_keys = {k: v for k, v in train_config.items() if "data" in k.lower()}
    if data_description:
        lines.append(data_description.strip())
    elif data_keys:
        lines += [f"- {k}: {_fmt(v)}" for k, v in data_keys.items()]
    else:
        lines.append("Unknown: the training run did not record its data set (describe it with --data).")
    lines += ["", "## Metrics", ""]
    if isinstance(metrics, dict) and metrics:
        lines += ["| metric | value |", "| --- | --- |"]
        lines += [f"| {k} | {_fmt(v)} |" for k, v in metrics.items() if not isinstance(v, dict | list)]
    else:
        lines.append("Unknown: no metrics.json was found in the training run.")
    if losses:
        lines += ["", f"Training losses at the last logged step ({losses.get('step')}):", ""]
        lines += [f"- {k}: {_fmt(v)}" for k, v in losses.items() if isinstance(v, float) and k != "time"]
    if isinstance(train_config, dict):
        lines += ["", "## Training configuration", "", "```json", json.dumps(train_config, indent=2), "```"]
    if provenance:
        lines += ["", "## Provenance", ""] + [f"- {k}: {v}" for k, v in sorted(provenance.items())]
    return "\n".join(lines) + "\n"


def push(
    folder: str | Path,
    repo_id: str,
    *,
    settings=None,
    private: bool = False,
    revision: str | None = None,
    commit_message: str | None = None,
) -> str:
    """Upload an exported model folder to `repo_id` (created if needed); returns the commit URL."""
    from huggingface_hub import HfApi
    from huggingface_hub import errors as hf

    settings = _settings(settings)
    folder = Path(folder).expanduser()
    if not ((folder / "config.json").is_file() and (folder / "model.safetensors").is_file()):
        raise CheckpointError(f"{folder} is not a model folder (run `fsv2v export` first)")
    validate_model_config(folder / "config.json", source=str(folder))
    if not _REPO_ID.match(repo_id):
        raise InputError(f"invalid repository id {repo_id!r} (expected OWNER/NAME)")
    endpoint = settings.hub.endpoint.rstrip("/")
    if settings.hub.offline:
        raise OfflineError("cannot push in offline mode (FSV2V_HUB__OFFLINE)")
    token = hub_token(settings)
    if not token:
        raise AuthError("pushing needs a write token: `hf auth login`, HF_TOKEN or FSV2V_HUB__TOKEN")
    api = HfApi(endpoint=endpoint, token=token, library_name=LIBRARY_NAME, library_version=__version__)
    from fewshotv2v.hub import hub_logs_as_ours

    try:
        with hub_logs_as_ours(endpoint):
            api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
            if revision and revision != "main":
                api.create_branch(repo_id, branch=revision, exist_ok=True, repo_type="model")
            info = api.upload_folder(
                folder_path=str(folder),
                repo_id=repo_id,
                repo_type="model",
                revision=revision,
                commit_message=commit_message or f"Upload fewshotv2v model ({__version__})",
                allow_patterns=["*.safetensors", "config.json", "checksums.json", "README.md"],
            )
    except hf.RepositoryNotFoundError as exc:
        raise NotFoundOnHubError(
            f"repository {repo_id} not found on {endpoint} (or no write access)"
        ) from exc
    except hf.HfHubHTTPError as exc:
        status = getattr(getattr(exc, "response", None), "status_code", None)
        if status in (401, 403):
            raise AuthError(
                f"{endpoint} refused the upload to {repo_id} ({status}): check the token"
            ) from exc
        raise DownloadError(f"upload to {repo_id} on {endpoint} failed (HTTP {status})") from exc
    except ValueError as exc:  # huggingface_hub: invalid model card metadata (README.md front matter)
        raise InputError(f"{folder}/README.md rejected by {endpoint}: {exc}") from exc
    except (ConnectionError, TimeoutError) as exc:
        raise OfflineError(f"cannot reach {endpoint}: {exc}") from exc
    return str(getattr(info, "commit_url", info))
