"""Waiting for a condition in tests: poll until it holds, or fail saying what was awaited and
what was seen last (never a sleep that hopes the condition holds by then)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def wait_for(fn: Callable[[], Any], what: str, timeout: float = 20.0, interval: float = 0.1) -> Any:
    """``fn()``'s first truthy answer within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")
