"""`fsv2v train` as a library call: validate the inputs early, prepare the run folder, join the process
group (under torchrun), build the dataset and the `Trainer`, train.

Every check that a user can fail runs before any model is built and raises a one-line
`FewShotV2VError`: not a dataset, dataset mode vs model mode, run folder exists without
`--resume`/`--overwrite`, VGG19 weights not available.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fewshotv2v.config import PRESETS, ModelConfig
from fewshotv2v.errors import ConfigError, DownloadError, OutputExistsError
from fewshotv2v.training.config import TrainConfig, read_overrides

TRAIN_CONFIG_FILE = "train_config.json"
MODEL_CONFIG_FILE = "model_config.json"


@dataclass
class RunPlan:
    """Everything decided before training starts."""

    run_dir: Path
    model_config: ModelConfig
    train_config: TrainConfig
    resume_from: Path | None
    init_from: Path | None
    vgg_weights: Path | None


def load_model_config(spec: str) -> ModelConfig:
    """`fsv2v train --preset`: a preset name, a model config JSON file, or a model folder (config.json)."""
    if spec in PRESETS:
        return ModelConfig.preset(spec)
    path = Path(spec).expanduser()
    if path.is_dir():
        path = path / "config.json"
    if not path.is_file():
        raise ConfigError(f"--preset {spec!r} is neither a preset ({', '.join(PRESETS)}) nor a config file")
    try:
        return ModelConfig.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except json.JSONDecodeError as exc:
        raise ConfigError(f"cannot parse model config {path}: {exc}") from None


def _is_empty(folder: Path) -> bool:
    return not folder.exists() or not any(folder.iterdir())


def _vgg_path(train_config: TrainConfig, settings) -> Path | None:
    """The VGG19 weights file for the perceptual loss, or None when it is off."""
    if train_config.perceptual == "none":
        return None
    if train_config.vgg_weights:
        path = Path(train_config.vgg_weights).expanduser()
        if not path.is_file():
            raise ConfigError(f"--vgg-weights file not found: {path}")
        return path
    from fewshotv2v import hub

    try:
        return hub.download("vgg19", settings=settings) / "model.safetensors"
    except DownloadError as exc:
        raise type(exc)(
            f"VGG19 weights for the perceptual loss are not available ({exc}); run `fsv2v download vgg19`, "
            "pass --vgg-weights PATH, or train without it: --perceptual none"
        ) from exc


def plan_run(
    *,
    data: str | Path,
    run_dir: str | Path,
    config: str | None = None,
    train_config_file: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
    resume: str | None = None,
    init: str | None = None,
    overwrite: bool = False,
    settings=None,
) -> RunPlan:
    """Decide configs, resume / init sources and VGG weights; raise one-line errors for bad inputs.

    Train config precedence: CLI `overrides` > `train_config_file` > the run's saved `train_config.json`
    (when resuming) > defaults. The model config of a resumed run is the saved one.
    """
    from fewshotv2v.data.layout import open_dataset
    from fewshotv2v.training.checkpoint import resolve_resume

    dataset = open_dataset(data)  # InputError "not a fewshotv2v dataset" early
    run_dir = Path(run_dir).expanduser()
    resume_from = resolve_resume(resume, run_dir) if resume else None
    saved_model = run_dir / MODEL_CONFIG_FILE
    resuming = resume_from is not None
    # Under torchrun only rank 0 judges the folder (it creates it while the others may still be here).
    if not resuming and os.environ.get("RANK", "0") == "0" and not _is_empty(run_dir):
        if resume == "auto" and not (run_dir / "checkpoints").exists() and saved_model.is_file():
            pass  # `--resume auto` before the first checkpoint: start over in the same folder
        elif not overwrite:
            raise OutputExistsError(
                f"run folder {run_dir} already exists: continue it with --resume auto, or use --overwrite"
            )
        elif not (run_dir / TRAIN_CONFIG_FILE).is_file():
            raise OutputExistsError(f"refusing to overwrite {run_dir}: it is not a fewshotv2v run folder")

    init_from = None
    if init is not None:
        from fewshotv2v import hub
        from fewshotv2v.models.io import read_config

        init_from = hub.resolve_model(init, settings)
        init_config = read_config(init_from)
    if resuming:
        from fewshotv2v.training.checkpoint import load_training_state

        model_config = ModelConfig.from_dict(load_training_state(resume_from)["model_config"])
        if config is not None and load_model_config(config).to_dict() != model_config.to_dict():
            raise ConfigError(f"--preset {config} differs from the model config of the run being resumed")
    elif config is not None:
        model_config = load_model_config(config)
    elif init is not None:
        model_config = init_config
    else:
        model_config = ModelConfig.preset(dataset.mode)
    if dataset.mode != model_config.mode:
        raise ConfigError(
            f"dataset {data} is {dataset.mode} data but the model config is {model_config.mode} "
            f"(use --preset {dataset.mode} or a {dataset.mode} dataset)"
        )
    if init is not None and init_config.to_dict() != model_config.to_dict():
        raise ConfigError(f"--init model {init} has a different architecture than --preset {config}")

    base: dict[str, Any] = {}
    if resuming and (run_dir / TRAIN_CONFIG_FILE).is_file():
        base = read_overrides(run_dir / TRAIN_CONFIG_FILE)
    if train_config_file is not None:
        base.update(read_overrides(train_config_file))
    base.update({k: v for k, v in (overrides or {}).items() if v is not None})
    train_config = TrainConfig.from_dict(base)
    if train_config.k_max > model_config.k_max:
        raise ConfigError(f"--k-max {train_config.k_max} exceeds the model's k_max ({model_config.k_max})")
    vgg = _vgg_path(train_config, settings)
    return RunPlan(run_dir, model_config, train_config, resume_from, init_from, vgg)


def prepare_run_folder(plan: RunPlan, *, overwrite: bool) -> None:
    """Rank 0: (re)create the run folder and write `train_config.json` + `model_config.json`."""
    if overwrite and plan.resume_from is None and plan.run_dir.exists():
        shutil.rmtree(plan.run_dir)
    plan.run_dir.mkdir(parents=True, exist_ok=True)
    plan.train_config.save(plan.run_dir / TRAIN_CONFIG_FILE)
    text = json.dumps(plan.model_config.to_dict(), indent=1) + "\n"
    (plan.run_dir / MODEL_CONFIG_FILE).write_text(text, encoding="utf-8")


def run_training(
    plan: RunPlan,
    *,
    data: str | Path,
    device: str = "auto",
    overwrite: bool = False,
    held_out: float | list[str] | None = None,
    on_step: Callable | None = None,
    on_ready: Callable[[Any], None] | None = None,
):
    """Train according to `plan`; returns `TrainResult`. Works in one process or under torchrun."""
    import torch

    from fewshotv2v.data.dataset import TrainingDataset
    from fewshotv2v.settings import resolve_device
    from fewshotv2v.training import distributed
    from fewshotv2v.training.trainer import Trainer, dataset_loader

    dev = resolve_device(device)
    info = distributed.init_distributed(dev.type)
    if dev.type == "cuda" and info.enabled:
        dev = torch.device("cuda", info.local_rank)
    try:
        if info.is_main:
            prepare_run_folder(plan, overwrite=overwrite)
        distributed.barrier(info)
        tcfg = plan.train_config
        dataset = TrainingDataset(
            data, plan.model_config, clip_len=1, k_max=tcfg.k_max or plan.model_config.k_max,
            train=True, seed=tcfg.seed, held_out=held_out,
        )  # fmt: skip
        trainer = Trainer(
            plan.model_config, tcfg, dataset_loader(dataset), len(dataset), plan.run_dir, device=dev,
            info=info, vgg_weights=plan.vgg_weights, resume_from=plan.resume_from, init_from=plan.init_from,
        )  # fmt: skip
        if on_ready is not None and info.is_main:
            on_ready(trainer)
        result = trainer.fit(on_step=on_step if info.is_main else None)
        # Every rank done (rank 0 has written the last checkpoint) before the group is torn down: a rank
        # that destroyed it while the other still used it aborted (SIGABRT, about 1 torchrun run in 25).
        distributed.barrier(info)
        return result
    finally:
        distributed.cleanup()
