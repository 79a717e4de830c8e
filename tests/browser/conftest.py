"""The browser suite: Playwright driving Debian's Chromium, headless, on loopback only.

Chromium is ``/usr/bin/chromium`` (``apt-get install chromium``) or the binary named by
``BATCHMIG_TEST_CHROMIUM``; Playwright downloads no browser. Without it these tests
skip with that hint — ``tools/suites.py`` does not even start the suite then, and its
summary says loudly that the browser tests did not run and how to run them.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("BATCHMIG_TEST_CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--no-sandbox",  # Chromium refuses to start as root with its sandbox (CI runs as root)
    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
    "--disable-quic",  # the machine has no network but loopback: nothing may try to phone home
]


def chromium_path() -> str | None:
    found = CHROMIUM if os.access(CHROMIUM, os.X_OK) else shutil.which(CHROMIUM)
    return found


if chromium_path() is None:
    pytest.skip(f"no Chromium at {CHROMIUM}: apt-get install chromium (or set BATCHMIG_TEST_CHROMIUM)",
                allow_module_level=True)


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium_path(), headless=True, args=ARGS)
        yield launched
        launched.close()


class ConsoleErrors(list[str]):
    """Every console error and uncaught exception of a page."""


@pytest.fixture
def page(browser: object) -> Iterator[tuple[object, ConsoleErrors]]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})  # type: ignore[attr-defined]
    page = context.new_page()
    errors = ConsoleErrors()
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page, errors
    context.close()


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path
