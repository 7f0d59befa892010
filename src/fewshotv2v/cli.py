"""The `fsv2v` command line: a thin layer over the library (no logic here).

Each command lives in `fewshotv2v/commands/<name>.py` and imports torch inside its body, so
`fsv2v --help` and `fsv2v --version` stay fast. Errors a user can cause are `FewShotV2VError`s:
they become one line on stderr and a non-zero exit code (the traceback only with `-v`).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from typer.core import TyperGroup

from fewshotv2v import __version__
from fewshotv2v.commands import _common
from fewshotv2v.commands import app as _app
from fewshotv2v.commands import demo as _demo
from fewshotv2v.commands import eval as _eval
from fewshotv2v.commands import hub as _hub
from fewshotv2v.commands import info as _info
from fewshotv2v.commands import preprocess as _preprocess
from fewshotv2v.commands import synth as _synth
from fewshotv2v.commands import synthetic as _synthetic
from fewshotv2v.commands import train as _train
from fewshotv2v.errors import FewShotV2VError


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so that every `with` block and `finally` cleans up (temp files)."""


def _on_sigterm(signum, frame) -> None:
    raise Terminated


class _ErrorHandlingGroup(TyperGroup):
    """Turns library errors into one clean line + exit code, also under CliRunner."""

    def invoke(self, ctx):  # type: ignore[override]
        import warnings

        from fewshotv2v.errors import FewShotV2VWarning

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("always", FewShotV2VWarning)
                warnings.showwarning = _common.show_warning
                return super().invoke(ctx)
        except FewShotV2VError as exc:
            _common.print_error(str(exc), exc)
            raise typer.Exit(exc.exit_code) from None
        except Terminated:
            _common.print_error("terminated", None)
            raise typer.Exit(143) from None
        except KeyboardInterrupt:
            _common.print_error("interrupted", None)
            raise typer.Exit(130) from None
        except OSError as exc:
            import errno

            if exc.errno == errno.ENOSPC:
                _common.print_error(f"no space left on device: {exc.filename or ''}".strip(), exc)
                raise typer.Exit(13) from None
            raise


app = typer.Typer(
    cls=_ErrorHandlingGroup,
    name="fsv2v",
    help="Few-shot video-to-video synthesis: make a person (or face, or street scene) from a few "
    "photos move like the person in a driving video.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",  # docstrings reflow as paragraphs instead of keeping hard line breaks
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"fsv2v {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version_callback, is_eager=True, help="Print the version."),
    ] = False,
    verbose: Annotated[bool, typer.Option("-v", "--verbose", help="Show tracebacks and debug logs.")] = False,
    quiet: Annotated[bool, typer.Option("-q", "--quiet", help="No progress bars or info logs.")] = False,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            help="Settings TOML file (default: $FSV2V_CONFIG or ~/.config/fewshotv2v/config.toml).",
            show_default=False,
        ),
    ] = None,
) -> None:
    _common.STATE.verbose = verbose
    _common.STATE.quiet = quiet
    _common.STATE.config_file = config


# --- commands, in the order of a typical workflow (the functions live in fewshotv2v/commands/) ----
app.command("demo")(_demo.demo)
app.command("synth")(_synth.synth)
app.command("app")(_app.app)
app.command("download")(_hub.download)
app.command("models")(_hub.models)
app.command("preprocess")(_preprocess.preprocess)
app.command("synthetic")(_synthetic.synthetic)
app.command("train")(_train.train)
app.command("eval")(_eval.eval_)
app.command("export")(_hub.export)
app.command("push")(_hub.push)
app.command("info")(_info.info)
# --- end of commands --------------------------------------------------------------------------


def main() -> None:
    """Console-script entry point (`fsv2v`, `python -m fewshotv2v`)."""
    import signal

    signal.signal(signal.SIGTERM, _on_sigterm)  # here, not at import: the library leaves signals alone
    try:
        app()
    except FewShotV2VError as exc:  # raised outside a command (should not happen)
        _common.print_error(str(exc), exc)
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
