"""`fsv2v download | models | export | push`: thin wrappers over `fewshotv2v.hub` and `hub_publish`."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

from fewshotv2v.commands import _common


def _size(n: int | None) -> str:
    if n is None:
        return "?"
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return "?"  # pragma: no cover


def download(
    name: Annotated[str, typer.Argument(help="Registry name (fsv2v models), or OWNER/NAME with --repo.")],
    repo: Annotated[
        str | None, typer.Option("--repo", help="Any Hub repo holding a fewshotv2v model folder.")
    ] = None,
    revision: Annotated[
        str | None, typer.Option("--revision", help="Branch, tag or commit (default: the pinned one).")
    ] = None,
    cache_dir: Annotated[
        Path | None,
        typer.Option(
            "--cache-dir", help="Hub cache folder (default: hub.cache_dir, the Hugging Face cache)."
        ),
    ] = None,
    local_dir: Annotated[
        Path | None, typer.Option("--local-dir", help="Put the files in this folder instead.")
    ] = None,
    offline: Annotated[
        bool | None, typer.Option("--offline", help="Use the cache only (no network).", show_default=False)
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Download and verify again.")] = False,
) -> None:
    """Download a model (pinned, sha256-checked) and print the folder holding its files."""
    from fewshotv2v import hub

    settings = _common.settings()
    folder = hub.download(
        name,
        settings=settings,
        repo=repo,
        revision=revision,
        cache_dir=cache_dir,
        local_dir=local_dir,
        offline=offline,
        force=force,
        progress=not _common.STATE.quiet,
    )
    typer.echo(str(folder))


def models(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """List the known models: source, licence, size, and where they are on disk (if downloaded)."""
    from fewshotv2v import hub

    rows = hub.list_models(_common.settings())
    if as_json:
        typer.echo(json.dumps([asdict(r) for r in rows], indent=2))
        return
    from rich.table import Table

    table = Table(box=None, pad_edge=False)
    for column in ("name", "kind", "source", "license", "size", "local path"):
        table.add_column(column, overflow="fold", no_wrap=column != "local path")
    for r in rows:
        table.add_row(r.name, r.kind, r.source, r.license or "?", _size(r.size), r.local_path or "-")
    console = _common.out_console()
    if not console.is_terminal:  # piped: long local paths on one line rather than folded at 80 columns
        console.width = 240
    console.print(table)


def export(
    src: Annotated[Path, typer.Argument(help="A model folder, or a training run (newest checkpoint).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Folder to write (Hub-ready).")],
    ema: Annotated[
        bool | None, typer.Option("--ema/--no-ema", help="Export EMA weights (default) or raw ones.")
    ] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace a non-empty output.")] = False,
    license: Annotated[
        str | None, typer.Option("--license", help="Licence id for the model card (default: other).")
    ] = None,
    data: Annotated[
        str | None, typer.Option("--data", help="Describe the training data for the model card.")
    ] = None,
    half: Annotated[
        bool, typer.Option("--half", help="Store the weights as fp16 (half the size; loaded as fp32).")
    ] = False,
    discriminator: Annotated[
        bool,
        typer.Option(
            "--discriminator/--no-discriminator",
            help="Include discriminator.safetensors (needed by synth --finetune).",
        ),
    ] = True,
) -> None:
    """Make a Hub-ready folder: weights, config.json, discriminator (if any), README.md model card."""
    from fewshotv2v.hub_publish import export_model

    out = export_model(
        src,
        output,
        ema=True if ema is None else ema,
        overwrite=overwrite,
        license=license,
        data_description=data,
        half=half,
        discriminator=discriminator,
    )
    typer.echo(str(out))


def push(
    folder: Annotated[Path, typer.Argument(help="An exported model folder (fsv2v export).")],
    repo: Annotated[str, typer.Option("--repo", help="Target repository OWNER/NAME (created if needed).")],
    private: Annotated[bool, typer.Option("--private", help="Create the repository as private.")] = False,
    revision: Annotated[
        str | None, typer.Option("--revision", help="Branch to commit to (created if needed).")
    ] = None,
    message: Annotated[str | None, typer.Option("-m", "--message", help="Commit message.")] = None,
) -> None:
    """Upload an exported model folder to the Hub (needs a write token) and print the commit URL."""
    from fewshotv2v.hub_publish import push as push_folder

    url = push_folder(
        folder, repo, settings=_common.settings(), private=private, revision=revision, commit_message=message
    )
    typer.echo(url)
