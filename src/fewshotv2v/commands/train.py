"""`fsv2v train`: train a few-shot vid2vid model on a dataset folder (also under `torchrun`)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from fewshotv2v.commands import _common


def _held_out(text: str | None) -> float | list[str] | None:
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        return [t for t in text.split(",") if t]


def train(
    data: Annotated[Path, typer.Option("--data", help="Dataset folder (fsv2v preprocess / synthetic).")],
    preset: Annotated[
        str | None,
        typer.Option(
            "--preset",
            help="Model architecture: tiny, pose, face, street, ..., a config.json or a model folder "
            "(default: the dataset's mode). Not the settings file: that is `fsv2v --config FILE train`.",
        ),
    ] = None,
    run: Annotated[
        Path | None,
        typer.Option(
            "--run", "--run-dir", help="Run folder (default: runs/<preset>; under torchrun use --run-dir)."
        ),
    ] = None,
    train_config: Annotated[
        Path | None, typer.Option("--train-config", help="TOML/JSON file of training hyper-parameters.")
    ] = None,
    steps: Annotated[int | None, typer.Option("--steps", help="Training steps (default: 100000).")] = None,
    batch_size: Annotated[
        int | None, typer.Option("--batch-size", help="Clips per step per GPU (default: 4).")
    ] = None,
    k_max: Annotated[
        int | None, typer.Option("--k-max", help="Largest K drawn per step (default: model k_max).")
    ] = None,
    lr_g: Annotated[
        float | None, typer.Option("--lr-g", help="Generator learning rate (default: 1e-4).")
    ] = None,
    lr_d: Annotated[
        float | None, typer.Option("--lr-d", help="Discriminator learning rate (default: 4e-4).")
    ] = None,
    single_frame_steps: Annotated[
        int | None,
        typer.Option("--single-frame-steps", help="Steps of the single-frame stage (default: 20000)."),
    ] = None,
    clip_len_max: Annotated[
        int | None, typer.Option("--clip-len-max", help="Longest training clip (default: 8).")
    ] = None,
    perceptual: Annotated[
        str | None, typer.Option("--perceptual", help="Perceptual loss: vgg or none (default: vgg).")
    ] = None,
    vgg_weights: Annotated[
        Path | None, typer.Option("--vgg-weights", help="Local VGG19 safetensors (instead of the download).")
    ] = None,
    device: Annotated[
        str | None, typer.Option("--device", help="auto, cpu, cuda, cuda:N (default: auto).")
    ] = None,
    precision: Annotated[
        str | None, typer.Option("--precision", help="auto (bf16 on CUDA), fp32, bf16, fp16 (default: auto).")
    ] = None,
    resume: Annotated[
        str | None, typer.Option("--resume", help="auto (newest checkpoint of --run) or a checkpoint folder.")
    ] = None,
    init: Annotated[str | None, typer.Option("--init", help="Finetune from a model name or folder.")] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Random seed (default: 0).")] = None,
    workers: Annotated[
        int | None, typer.Option("--workers", help="Data-loading processes (default: 2).")
    ] = None,
    held_out: Annotated[
        str | None,
        typer.Option("--held-out", help="Leave identities out: a fraction (0.2) or comma-separated names."),
    ] = None,
    log_every: Annotated[
        int | None, typer.Option("--log-every", help="Steps between log lines (default: 10).")
    ] = None,
    sample_every: Annotated[
        int | None, typer.Option("--sample-every", help="Steps between sample grids (default: 500).")
    ] = None,
    checkpoint_every: Annotated[
        int | None, typer.Option("--checkpoint-every", help="Steps between checkpoints (default: 2000).")
    ] = None,
    keep_last: Annotated[
        int | None, typer.Option("--keep-last", help="Checkpoints to keep (default: 3).")
    ] = None,
    threads: _common.ThreadsOption = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Start over in an existing run folder.")
    ] = False,
) -> None:
    """Train a model on a dataset folder (one GPU, CPU, or many GPUs with torchrun).

    Single-frame stage, then growing clips, with EMA, checkpoints, sample grids and a loss log in the run
    folder. Multi-GPU: `torchrun --nproc-per-node N -m fewshotv2v train ...`.
    """
    from fewshotv2v.training.run import plan_run, run_training

    settings = _common.settings(device=device, threads=threads)
    _common.apply_threads(settings)
    overrides = {
        "steps": steps, "batch_size": batch_size, "k_max": k_max, "lr_g": lr_g, "lr_d": lr_d,
        "single_frame_steps": single_frame_steps, "clip_len_max": clip_len_max, "perceptual": perceptual,
        "vgg_weights": str(vgg_weights) if vgg_weights else None, "precision": precision, "seed": seed,
        "workers": workers, "log_every": log_every, "sample_every": sample_every,
        "checkpoint_every": checkpoint_every, "keep_last": keep_last,
    }  # fmt: skip
    run_dir = run or Path("runs") / (Path(preset).stem if preset else "train")
    plan = plan_run(
        data=data, run_dir=run_dir, config=preset, train_config_file=train_config, overrides=overrides,
        resume=resume, init=init, overwrite=overwrite, settings=settings,
    )  # fmt: skip
    total = plan.train_config.steps
    with _common.progress() as bar:
        task = bar.add_task("training", total=total, status="")
        state = {"t0": time.perf_counter(), "n": 0}

        def on_ready(trainer) -> None:
            bar.update(task, completed=trainer.step)
            if plan.resume_from:
                where = f"resumed from {plan.resume_from}"
            else:
                where = f"initialised from {plan.init_from}" if plan.init_from else "from scratch"
            _common.info(
                f"training {plan.model_config.name} in {plan.run_dir} ({where}, step {trainer.step})"
            )

        def on_step(res, _total: int) -> None:
            state["n"] += 1
            rate = state["n"] / max(1e-9, time.perf_counter() - state["t0"])
            shown = " ".join(
                f"{k}={v:.3f}" for k, v in res.losses.items() if k in ("g_total", "d_image", "g_warp")
            )
            status = f"{rate:.2f} it/s K={res.k} T={res.clip_len} {shown}"
            bar.update(task, completed=res.step + 1, status=status)
            if bar.disable and (res.step + 1) % plan.train_config.log_every == 0:
                _common.info(f"step {res.step + 1}/{total} {status}")

        result = run_training(
            plan, data=data, device=settings.device, overwrite=overwrite, held_out=_held_out(held_out),
            on_step=on_step, on_ready=on_ready,
        )  # fmt: skip
    if result is None or _not_main_rank():
        return
    if result.checkpoint is None:
        _common.info(f"nothing to do: the run is already at step {result.step} of {total}")
        return
    _common.info(f"done: step {result.step}, {result.nonfinite} skipped step(s); model: {result.checkpoint}")
    typer.echo(str(result.checkpoint))


def _not_main_rank() -> bool:
    """Under torchrun only rank 0 reports."""
    import os

    return os.environ.get("RANK", "0") != "0"
