"""Take `docs/assets/app.png`: the `fsv2v app` page after a run on the demo inputs, in headless Chromium.

    python scripts/app_screenshot.py              # rewrite docs/assets/app.png
    python scripts/app_screenshot.py -o FILE.png  # write somewhere else

Needs the `[app]` and `[dev]` extras and Debian's `chromium` + `chromium-driver`. It runs the same steps as
`tests/test_app.py::test_page_in_headless_chromium` (the helpers in `tests/browser.py`): a loopback
server with the packaged demo model, the demo's reference photo and driving clip uploaded, Synthesize
clicked, the result waited for.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the browser helpers shared with the test


def main(argv: list[str] | None = None) -> int:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("-o", "--output", type=Path, default=ROOT / "docs" / "assets" / "app.png")
    args = parser.parse_args(argv)

    import browser

    if (why := browser.missing()) is not None:
        raise SystemExit(f"cannot take the screenshot: {why}")
    with tempfile.TemporaryDirectory(prefix="fsv2v-screenshot-") as tmp:
        workdir = Path(tmp)
        os.environ["GRADIO_TEMP_DIR"] = str(workdir / "gradio")  # before gradio is imported
        import torch

        from fewshotv2v.app import build_app, launch, write_demo_inputs
        from fewshotv2v.settings import load_settings

        torch.set_num_threads(1)
        ref, drive = write_demo_inputs(workdir / "examples")
        blocks = build_app(load_settings(device="cpu", model="demo"), workdir=workdir, examples=(ref, drive))
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        url = launch(blocks, workdir=workdir, port=port)
        driver = browser.open_browser(width=1280, height=1120)
        try:
            browser.run_page(driver, url, [ref], drive)
            time.sleep(11)  # the toasts (gradio's default 10 s) fade out before the picture is taken
            args.output.parent.mkdir(parents=True, exist_ok=True)
            driver.save_screenshot(str(args.output))
        finally:
            driver.quit()
            blocks.close(verbose=False)
    print(args.output)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
