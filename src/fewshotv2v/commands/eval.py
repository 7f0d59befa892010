"""`fsv2v eval`: self-reconstruction metrics (L1, PSNR, SSIM, flicker) of a model on held-out clips."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from fewshotv2v.commands import _common
from fewshotv2v.commands.train import _held_out


def eval_(
    data: Annotated[Path, typer.Option("--data", help="Dataset folder with the clips to evaluate on.")],
    model: Annotated[
        str | None, typer.Option("--model", "-m", help="Model name or folder (a checkpoint folder works).")
    ] = None,
    k: Annotated[
        list[str] | None,
        typer.Option("--k", help="Numbers of references: --k 1,4 or --k 1 --k 4 (default: 1).", metavar="K"),
    ] = None,
    clips: Annotated[
        str | None, typer.Option("--clips", help="Comma-separated clip names (default: all clips).")
    ] = None,
    held_out: Annotated[
        str | None,
        typer.Option(
            "--held-out", help="Only the identities `fsv2v train --held-out` left out (same --seed)."
        ),
    ] = None,
    seed: Annotated[
        int | None, typer.Option("--seed", help="Seed of the held-out split (default: 0).")
    ] = None,
    max_frames: Annotated[
        int | None, typer.Option("--max-frames", help="Frames per clip (default: all).")
    ] = None,
    device: Annotated[str | None, typer.Option("--device", help="auto, cpu, cuda, cuda:N.")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write the results as JSON.")] = None,
    threads: _common.ThreadsOption = None,
) -> None:
    """Self-reconstruction metrics per K: L1, PSNR, SSIM and temporal flicker.

    Re-synthesizes each clip from its own frames (references and label maps of the same clip, so the
    ground truth is known), prints a table and optionally writes JSON.
    """
    from fewshotv2v import hub
    from fewshotv2v.evaluation import evaluate, format_table
    from fewshotv2v.models.io import load_pretrained
    from fewshotv2v.settings import resolve_device

    settings = _common.settings(device=device, threads=threads)
    _common.apply_threads(settings)
    from fewshotv2v.data.layout import open_dataset
    from fewshotv2v.registry import model_for_mode

    name = model_for_mode(model or settings.model, open_dataset(data).mode)
    folder = hub.resolve_model(name, settings)
    dev = resolve_device(settings.device)
    generator, _ = load_pretrained(folder, device=dev)
    try:
        ks = sorted({int(v) for item in (k or ["1"]) for v in item.split(",") if v.strip()})
    except ValueError:
        raise typer.BadParameter(f"--k expects integers such as 1,4, got {k}") from None
    clip_names = [c for c in clips.split(",") if c] if clips else None
    with _common.progress(total_known=False) as bar:
        task = bar.add_task("evaluating", total=None, status="")
        result = evaluate(
            generator, data, ks, clips=clip_names, held_out=_held_out(held_out), seed=seed or 0,
            max_frames=max_frames, model_name=str(name),
            on_clip=lambda kk, clip: bar.update(task, advance=1, status=f"K={kk} {clip}"),
        )  # fmt: skip
    typer.echo(format_table(result))
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(result.to_dict(), indent=1) + "\n", encoding="utf-8")
        _common.info(f"wrote {json_out}")
