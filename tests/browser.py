"""Debian's Chromium for the browser tests, through Playwright: its path, its flags, and a
module-scoped browser. A missing browser or axe-core is a failure, never a skip (.ci/run installs
chromium; `npm ci` installs axe-core)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, sync_playwright

from tests.servers import ROOT

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"


def require(*, axe: bool = True) -> None:
    """Fail the importing test module when the browser (or axe-core) is missing."""
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: run .ci/run or apt-get install -y chromium", pytrace=False
        )
    if axe and not AXE.exists():
        pytest.fail(f"{AXE} is missing: run `npm ci` (make test does)", pytrace=False)


def launch() -> Iterator[Browser]:
    """The body of a ``browser`` fixture: one headless Chromium for the module."""
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield b
        b.close()
