"""`fsv2v info MODEL_OR_PRESET`: architecture, parameters per component and cost per frame."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from fewshotv2v.commands import _common


def describe(model: str, *, with_macs: bool = True) -> dict:
    """Summary of a preset name or a model folder (or a name `fewshotv2v.hub` can resolve)."""
    from fewshotv2v.config import PRESETS, ModelConfig
    from fewshotv2v.errors import ModelNotFoundError
    from fewshotv2v.models import io
    from fewshotv2v.models.generator import Generator
    from fewshotv2v.models.profile import model_summary

    source: dict = {}
    with_d = False
    if model in PRESETS and not Path(model).is_dir():
        config = ModelConfig.preset(model)
        source = {"preset": model}
        with_d = True
    else:
        folder = Path(model).expanduser()
        if not folder.is_dir():
            try:
                from fewshotv2v import hub
            except ImportError:
                raise ModelNotFoundError(
                    f"{model!r} is neither a preset ({', '.join(PRESETS)}) nor a model folder"
                ) from None
            folder = hub.resolve_model(model, _common.settings())
        config = io.read_config(folder)
        source = {"folder": str(folder), "metadata": io.read_metadata(folder)}
        with_d = (folder / io.D_WEIGHTS_NAME).is_file()
    generator = Generator(config)
    discriminators = None
    if with_d:
        try:
            from fewshotv2v.models.discriminators import Discriminators

            discriminators = Discriminators(config)
        except ImportError:  # discriminators not available in this build
            discriminators = None
    return {"source": source, **model_summary(generator, discriminators, with_macs=with_macs)}


def info(
    model: Annotated[
        str, typer.Argument(help="A preset (pose, face, face512, street, tiny) or a model folder.")
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON to stdout.")] = False,
    macs: Annotated[
        bool, typer.Option("--macs/--no-macs", help="Count MACs per frame (runs one pass).")
    ] = True,
) -> None:
    """Show a model's config, parameters per component and GMAC per steady-state frame."""
    summary = describe(model, with_macs=macs)
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
        return
    from rich.table import Table

    console = _common.out_console()
    cfg = summary["config"]
    conf = Table(title=f"config ({cfg['name']})", show_header=False)
    for key, value in cfg.items():
        if key not in ("format", "version", "extra"):
            conf.add_row(key, str(value))
    conf.add_row("label_nc", str(summary["label_nc"]))
    console.print(conf)
    table = Table(title="components")
    table.add_column("component")
    table.add_column("parameters (M)", justify="right")
    table.add_column("GMAC / frame", justify="right")
    gmacs = summary.get("gmac_per_component", {})
    for name, count in summary["parameters"].items():
        gmac = gmacs.get(name)
        if name == "generator_total":
            gmac = summary.get("gmac_per_frame")
        table.add_row(name, f"{count / 1e6:.2f}", "" if gmac is None else f"{gmac:.2f}")
    console.print(table)
    if "gmac_per_frame" in summary:
        h, w = summary["gmac_resolution"]
        console.print(
            f"{summary['gmac_per_frame']:.1f} GMAC per steady-state frame at {h} x {w} "
            "(K = 1 cached references, with previous frame)"
        )
