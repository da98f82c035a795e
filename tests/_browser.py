"""A real headless Chromium for page tests: Debian's ``chromium`` package, driven by
Playwright from PyPI pointed at it (no browser download; ``make system-deps`` installs
the package). Screenshots go to ``ESPSEC_TEST_ARTIFACTS`` (or the session's temp folder).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]


@contextlib.contextmanager
def chromium() -> Iterator[Any]:
    """A launched browser (``playwright.sync_api.Browser``)."""
    from playwright.sync_api import sync_playwright

    if not os.access(CHROMIUM, os.X_OK):
        raise RuntimeError(f"{CHROMIUM} is missing: run `make system-deps` (Debian chromium)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def artifacts_dir(fallback: Path, name: str) -> Path:
    """Where a test keeps its screenshots: ``$ESPSEC_TEST_ARTIFACTS/name`` or ``fallback``."""
    root = os.environ.get("ESPSEC_TEST_ARTIFACTS")
    folder = Path(root) / name if root else fallback
    folder.mkdir(parents=True, exist_ok=True)
    return folder
