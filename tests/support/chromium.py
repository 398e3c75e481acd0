"""Debian's headless Chromium driven through selenium, and the app served on loopback for it.

Chromium and its driver are installed with apt-get when missing and running as root, like
nginx for the stack tests; selenium is pointed at them, so it never downloads a browser.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

from flask import Flask
from selenium import webdriver
from selenium.webdriver.chrome.service import Service as ChromeService
from werkzeug.serving import make_server

from tests.support.stack import _apt

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
DESKTOP = (1280, 900)
PHONE = (375, 812)


class ChromiumUnavailable(RuntimeError):
    """Chromium is missing and cannot be installed here; the message says how to get it."""


def ensure_chromium() -> tuple[Path, Path]:
    """Debian's chromium and chromium-driver, installed with apt-get when root and missing."""
    if CHROMIUM.exists() and CHROMEDRIVER.exists():
        return CHROMIUM, CHROMEDRIVER
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise ChromiumUnavailable(
            "the browser tests need Debian's chromium and chromium-driver. Install them with "
            "`sudo apt-get install chromium chromium-driver`, or run `make test` as root."
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    outputs = [_apt(["apt-get", "update", "-q"], env)]
    outputs.append(
        _apt(
            [
                "apt-get",
                "install",
                "-y",
                "-q",
                "--no-install-recommends",
                "chromium",
                "chromium-driver",
            ],
            env,
        )
    )
    if CHROMIUM.exists() and CHROMEDRIVER.exists():
        return CHROMIUM, CHROMEDRIVER
    raise ChromiumUnavailable("apt-get could not install chromium:\n" + "\n".join(outputs)[-3000:])


def start_chromium() -> webdriver.Chrome:
    """A headless Chromium at desktop size."""
    browser, driver = ensure_chromium()
    options = webdriver.ChromeOptions()
    options.binary_location = str(browser)
    for argument in (
        "--headless=new",
        "--no-sandbox",  # running as root (CI) leaves no user namespace for the sandbox
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--disable-extensions",
        "--no-first-run",
        "--password-store=basic",
        f"--window-size={DESKTOP[0]},{DESKTOP[1]}",
    ):
        options.add_argument(argument)
    chrome = webdriver.Chrome(options=options, service=ChromeService(executable_path=str(driver)))
    chrome.set_page_load_timeout(30)
    return chrome


def set_width(chrome: webdriver.Chrome, size: tuple[int, int]) -> None:
    """Lay pages out as a screen of this size (a phone's width is below a window's minimum)."""
    width, height = size
    chrome.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600},
    )


@contextlib.contextmanager
def serve(app: Flask) -> Iterator[str]:
    """Serve the app on a free loopback port in a thread; yields its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(10)
