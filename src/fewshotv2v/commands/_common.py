"""Shared CLI plumbing: global flags, the stderr console, settings, progress bars."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


@dataclass
class _State:
    verbose: bool = False
    quiet: bool = False
    config_file: Path | None = None


STATE = _State()


def err_console() -> Console:
    """Progress and logs go to stderr; results go to stdout (plain `typer.echo`/`print`)."""
    return Console(stderr=True, highlight=False)


def out_console() -> Console:
    return Console(highlight=False, soft_wrap=True)


def print_error(message: str, exc: BaseException | None) -> None:
    console = err_console()
    if STATE.verbose and exc is not None:
        console.print_exception(show_locals=False)
    # One line: newlines inside the message would read as several errors. Escaped: a message such as
    # "pip install 'fewshotv2v[app]'" is text, not Rich markup.
    text = escape(" ".join(message.split()))
    console.print(f"[bold red]error:[/] {text}", markup=True, soft_wrap=True)


def show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """`warnings.showwarning` for the CLI: library warnings as one `warning:` line on stderr."""
    text = escape(" ".join(str(message).split()))
    err_console().print(f"[bold yellow]warning:[/] {text}", markup=True, soft_wrap=True, highlight=False)


def info(message: str) -> None:
    if not STATE.quiet:
        err_console().print(message, soft_wrap=True)


def settings(**overrides: Any):
    """Settings with CLI `overrides` on top (None = not given on the command line)."""
    from fewshotv2v.settings import load_settings

    return load_settings(STATE.config_file, **overrides)


ThreadsOption = Annotated[
    int | None,
    typer.Option(
        "--threads",
        min=1,
        help="CPU threads for torch and the keypoint detector together (default: settings.threads, "
        "else OMP_NUM_THREADS, else one less than the available cores, at most 8).",
        show_default=False,
    ),
]


def apply_threads(settings, *, detector: bool = False) -> None:
    """Apply the `threads` setting (`fewshotv2v.threads`); `detector`: one runs beside the model."""
    from fewshotv2v.threads import apply_threads as apply

    plan = apply(settings.threads, detector=detector)
    if STATE.verbose:
        info(plan.describe())


def progress(*, total_known: bool = True, transient: bool = False) -> Progress:
    """A rich progress bar on stderr, off when quiet or when stderr is not a terminal.

    Use `progress.add_task(description, total=None)` for an unknown count (indeterminate bar).
    """
    console = err_console()
    disable = STATE.quiet or not sys.stderr.isatty()
    columns = [SpinnerColumn(), TextColumn("{task.description}"), BarColumn()]
    if total_known:
        columns += [MofNCompleteColumn(), TaskProgressColumn(), TimeRemainingColumn()]
    columns += [TimeElapsedColumn(), TextColumn("{task.fields[status]}")]
    return Progress(*columns, console=console, disable=disable, transient=transient)
