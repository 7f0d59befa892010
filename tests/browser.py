"""Headless Chromium for the web-app tests (and `scripts/app_screenshot.py`): Debian's `chromium` and
`chromium-driver` driven by selenium, never a browser downloaded at run time.

The browser resolves no host but 127.0.0.1, so a page that needed the internet (web fonts, a CDN script)
would show it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

CHROMIUM = ("chromium", "chromium-browser", "google-chrome")
DRIVER = "chromedriver"
# The result <video> has decoded its first frame: the browser could play what the server wrote.
VIDEO_READY = (
    "const v = document.querySelector(arguments[0] + ' video');"
    "return Boolean(v && v.readyState >= 2 && v.videoWidth > 0);"
)


def missing() -> str | None:
    """Why the browser tests cannot run here, or None."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed"
    if not any(shutil.which(name) for name in CHROMIUM):
        return "no chromium (apt-get install chromium chromium-driver)"
    if shutil.which(DRIVER) is None:
        return "no chromedriver (apt-get install chromium-driver)"
    return None


def open_browser(width: int = 1280, height: int = 1000):
    """A headless Chromium (selenium WebDriver) that can reach only the loopback interface."""
    from selenium import webdriver

    options = webdriver.ChromeOptions()
    options.binary_location = next(shutil.which(n) for n in CHROMIUM if shutil.which(n))
    for arg in (
        "--headless=new",
        "--no-sandbox",  # CI containers run as root
        "--disable-gpu",
        "--disable-dev-shm-usage",
        f"--window-size={width},{height}",
        "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",  # offline but for loopback
    ):
        options.add_argument(arg)
    service = webdriver.ChromeService(executable_path=shutil.which(DRIVER))
    return webdriver.Chrome(options=options, service=service)


def open_page(driver, url: str, *, timeout: float = 90.0):
    """Load the app; returns a `WebDriverWait` with `timeout` for the steps that follow."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(url)
    wait = WebDriverWait(driver, timeout)
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#run"))
    return wait


def upload(driver, wait, refs: list[Path], drive: Path | None = None) -> None:
    """Put `refs` (replacing any) and `drive` into the form, as a file dialog would."""
    from selenium.webdriver.common.by import By

    if driver.find_elements(By.CSS_SELECTOR, "#refs td.filename"):
        driver.find_element(By.CSS_SELECTOR, "#refs button[aria-label=Clear]").click()
        wait.until(lambda d: not d.find_elements(By.CSS_SELECTOR, "#refs td.filename"))
    # Gradio's upload areas wrap a hidden <input type=file>: give it the paths.
    driver.find_element(By.CSS_SELECTOR, "#refs input[type=file]").send_keys("\n".join(map(str, refs)))
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#refs td.filename")) == len(refs))
    if drive is not None:
        driver.find_element(By.CSS_SELECTOR, "#drive input[type=file]").send_keys(str(drive))
        wait.until(lambda d: d.execute_script(VIDEO_READY, "#drive"))


def run(driver) -> None:
    from selenium.webdriver.common.by import By

    driver.find_element(By.CSS_SELECTOR, "#run").click()


def error_toast(driver, wait) -> str:
    """The message of the error notice the page shows. Read as textContent, which does not depend on
    the notice having finished fading in (Selenium's `.text` is empty while it is still invisible)."""
    css = "[data-testid=toast-body].error [data-testid=toast-text]"
    script = "const e = document.querySelector(arguments[0]); return e ? e.textContent.trim() : '';"
    wait.until(lambda d: d.execute_script(script, css))
    return driver.execute_script(script, css)


def run_page(driver, url: str, refs: list[Path], drive: Path, *, timeout: float = 90.0) -> None:
    """Load the app, upload `refs` and `drive`, click Synthesize, wait until the result video plays."""
    wait = open_page(driver, url, timeout=timeout)
    upload(driver, wait, refs, drive)
    run(driver)
    wait.until(lambda d: d.execute_script(VIDEO_READY, "#result"))


def video_info(driver, elem_id: str) -> dict:
    """src, size and duration of the <video> in the element `elem_id`, as the browser sees it."""
    return driver.execute_script(
        "const v = document.querySelector(arguments[0] + ' video');"
        "return {src: v.currentSrc, width: v.videoWidth, height: v.videoHeight, duration: v.duration};",
        elem_id,
    )
