"""Garbage collector settings for a long-running server process."""

from __future__ import annotations

import gc

# A young-generation collection after every 20,000 net allocations instead of 700; a request
# allocates a few thousand objects, so the default ran one after nearly every request.
THRESHOLDS = (20_000, 20, 50)


def settle_after_startup() -> None:
    """Collect once, then move everything alive after startup (modules, the app, routes, the
    SQLAlchemy metadata: a few hundred thousand objects) out of the collector's sight, and
    collect the young generation less often.

    Without this, each full collection walked every object of the application: measured on the
    list endpoint under load, those pauses were the p99 (143 ms against 57 ms) and cost a fifth of
    the throughput. Objects made while serving are still collected as usual.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
