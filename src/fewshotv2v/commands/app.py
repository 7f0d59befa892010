"""`fsv2v app`: serve the web page (Gradio, the `[app]` extra) until Ctrl-C.

Thin layer over `fewshotv2v.app`: one temp folder per server holds the uploads, the results and the demo
inputs of the examples, and is removed when the server stops.
"""

from __future__ import annotations

from typing import Annotated

import typer

from fewshotv2v.commands import _common


def app(
    host: Annotated[
        str, typer.Option("--host", help="Address to listen on (0.0.0.0: every network interface).")
    ] = "127.0.0.1",
    port: Annotated[
        int | None,
        typer.Option("--port", min=1, max=65535, help="Port (default: 7860 or the next free one)."),
    ] = None,
    share: Annotated[
        bool, typer.Option("--share", help="Also open a public gradio.live link (off by default).")
    ] = False,
    max_upload_mb: Annotated[
        float, typer.Option("--max-upload-mb", min=1.0, help="Largest upload accepted, in MiB.")
    ] = 200.0,
    model: Annotated[
        str | None, typer.Option("--model", help="Default model name or folder (default: settings.model)")
    ] = None,
    device: Annotated[
        str | None, typer.Option("--device", help="auto, cpu, cuda (default: settings.device)")
    ] = None,
) -> None:
    """Serve a web page for synthesis (and a `/synthesize` API for `gradio_client`) until Ctrl-C.

    Upload reference photos and a driving video, or record one with the webcam; the page runs the same
    pipeline as `fsv2v synth`, one job at a time. Needs `pip install 'fewshotv2v[app]'`.
    """
    import os
    import shutil
    import tempfile
    import time
    from pathlib import Path

    from fewshotv2v.errors import ConfigError, require

    settings = _common.settings(device=device, model=model)
    workdir = Path(tempfile.mkdtemp(prefix="fsv2v-app-"))
    blocks = None
    previous = _stop_on_signals()
    try:
        # Gradio reads its upload folder from the environment when it is imported: set it first, so that
        # uploads land in the folder removed below.
        os.environ["GRADIO_TEMP_DIR"] = str(workdir / "gradio")
        os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
        require("gradio", "app")
        from fewshotv2v.app import build_app, launch, write_demo_inputs

        examples = write_demo_inputs(workdir / "examples")
        blocks = build_app(settings, workdir=workdir, examples=examples)
        try:
            url = launch(
                blocks, workdir=workdir, host=host, port=port, share=share, max_upload_mb=max_upload_mb
            )
        except OSError as exc:  # port taken, address not on this machine
            raise ConfigError(f"cannot serve on {host}:{port or 7860}: {exc}") from exc
        typer.echo(url)  # the result: where the page is
        if blocks.share_url:
            typer.echo(blocks.share_url)
        _common.info("serving; Ctrl-C stops the server")
        while blocks.is_running:
            time.sleep(0.2)
    except KeyboardInterrupt:  # Ctrl-C is how a server is stopped (at any point): a clean exit
        pass
    finally:
        if blocks is not None:
            blocks.close(verbose=False)
        shutil.rmtree(workdir, ignore_errors=True)
        _restore_signals(previous)
    _common.info("stopped")


def _stop_on_signals() -> dict:
    """SIGINT and SIGTERM (`docker stop`, systemd) both stop the server through the same clean path;
    returns the handlers they had, for `_restore_signals`.

    SIGINT is set explicitly: a process started in the background by a shell inherits it ignored, and
    Python then never raises KeyboardInterrupt, so the server could not be stopped with it.
    """
    import signal

    def stop(signum, frame):
        raise KeyboardInterrupt

    return {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}


def _restore_signals(previous: dict) -> None:
    """Put back the handlers (the command may run inside another program, e.g. under CliRunner)."""
    import signal

    for sig, handler in previous.items():
        signal.signal(sig, handler)
