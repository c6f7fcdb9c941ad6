"""Browser tests drive Debian's chromium through its chromedriver (never a downloaded one)."""

from __future__ import annotations

import os
import shutil

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

if CHROMIUM:
    # dash.testing reads this to find the browser binary.
    os.environ.setdefault("DASH_TEST_CHROMEPATH", CHROMIUM)


def pytest_setup_options():  # type: ignore[no-untyped-def]
    """Chrome options for dash[testing]: headless, and quiet on a machine with no network."""
    from selenium.webdriver.chrome.options import Options

    options = Options()
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-default-apps",
        "--window-size=1400,1000",
    ):
        options.add_argument(arg)
    return options


def pytest_collection_modifyitems(items):  # type: ignore[no-untyped-def]
    for item in items:
        if "tests/browser" in str(item.fspath):
            item.add_marker(pytest.mark.browser)
