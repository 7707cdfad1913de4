"""Test kit shipped with headwater: fault-injection points for kill tests.

A stage calls :func:`fault_point` at the places where a crash is most dangerous (after producing
but before committing a position; after writing a batch but before Spark commits it). When the
environment names that point, the process kills itself and its JVM with SIGKILL, exactly as
``kill -9`` would. Unset (always, outside tests) it does nothing.

``HEADWATER_FAULT=<point>[:<n>]`` fires on the n-th time the point is reached (default 1).
"""

from __future__ import annotations

import contextlib
import os
import signal

_hits: dict[str, int] = {}


def fault_point(name: str) -> None:
    """SIGKILL this process and its children if ``HEADWATER_FAULT`` names this point."""
    spec = os.environ.get("HEADWATER_FAULT")
    if not spec:
        return
    point, _, nth = spec.partition(":")
    if point != name:
        return
    _hits[name] = _hits.get(name, 0) + 1
    if _hits[name] < int(nth or 1):
        return
    import psutil

    me = psutil.Process()
    for child in me.children(recursive=True):
        with contextlib.suppress(psutil.NoSuchProcess):
            child.send_signal(signal.SIGKILL)
    os.kill(os.getpid(), signal.SIGKILL)
