"""Debian's Chromium driven by Playwright, for the board's browser tests and ``docs/screenshots.py``.

Playwright never downloads a browser here: it is pointed at the system's ``chromium`` (``apt-get install chromium``)
with ``executable_path``. Without it, a developer's run skips the browser tests and says why; CI (``CI`` set) fails
instead, so a missing browser can never pass as green.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

CHROMIUM = Path(os.environ.get("EQSMS_CHROMIUM", "/usr/bin/chromium"))
ARGS = [
    "--no-sandbox",  # CI runs as root, where Chromium's sandbox refuses to start
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
VIEWPORT = {"width": 1440, "height": 900}


def missing() -> str | None:
    """Why the browser cannot run here, or None when it can."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (it is in pyproject's dev extras)"
    if not CHROMIUM.exists():
        return f"no Chromium at {CHROMIUM} (apt-get install chromium)"
    return None


def require() -> None:
    """Skip the calling test when the browser is missing on a developer's machine; fail when on CI."""
    import pytest

    reason = missing()
    if reason is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"browser tests cannot run on CI: {reason}")
    pytest.skip(f"browser tests skipped: {reason}")


@contextmanager
def chromium() -> Iterator:
    """A headless Chromium (Playwright's Browser), closed on exit."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            yield browser
        finally:
            browser.close()


def open_page(browser, locale: str = "en-GB"):
    """A new page in a fresh context (its own localStorage) whose browser language is ``locale``."""
    context = browser.new_context(viewport=VIEWPORT, locale=locale)
    return context.new_page()


def keep(path: Path) -> None:
    """Copy a screenshot to ``$EQSMS_ARTIFACTS`` too, when set (CI keeps that folder)."""
    target = os.environ.get("EQSMS_ARTIFACTS")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, Path(target) / path.name)
