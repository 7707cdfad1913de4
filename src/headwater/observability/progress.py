"""Live progress: each stage writes a small JSON file that ``headwater run`` (or anyone) can watch.

Writes are atomic (temp file + rename), so a reader never sees half a file. Secret values
(:mod:`headwater.redact`) are masked before anything is written.
"""

from __future__ import annotations

import json
import os
import threading
import time
from bisect import bisect_left
from pathlib import Path
from typing import Any

from headwater import redact


class ProgressFile:
    """Counters, histograms and state of one stage, rewritten atomically on every flush.

    It is the one record of a stage's figures: ``headwater run``, ``status``, the dashboard and the
    Prometheus endpoint (:mod:`headwater.observability.metrics`, which reads a :meth:`snapshot` on
    every scrape) all show what is here, so they cannot disagree.
    """

    def __init__(self, path: Path, stage: str) -> None:
        self.path = path
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.data: dict[str, Any] = {"stage": stage, "state": "starting", "pid": os.getpid(),
                                     "started_at": time.time(), "counters": {}, "histograms": {}}  # fmt: skip
        self._histograms: dict[str, LatencyHistogram] = {}
        self._sums: dict[str, float] = {}
        self._guard = threading.Lock()  # a scrape reads from another thread

    def add(self, **counters: int | float) -> None:
        with self._guard:
            c = self.data["counters"]
            for k, v in counters.items():
                c[k] = c.get(k, 0) + v

    def add_sink(self, name: str, **counters: int | float) -> None:
        """Add to the counters of one sink (``sinks.<name>``): each sink is counted on its own."""
        with self._guard:
            c = self.data.setdefault("sinks", {}).setdefault(name, {})
            for k, v in counters.items():
                c[k] = c.get(k, 0) + v

    def set(self, **fields: Any) -> None:
        with self._guard:
            self.data.update(fields)

    def observe(self, name: str, value_ms: float, count: int = 1) -> None:
        """Add ``count`` observations of ``value_ms`` milliseconds to the histogram ``name``."""
        if count <= 0:
            return
        with self._guard:
            h = self._histograms.get(name)
            if h is None:
                h = self._histograms[name] = LatencyHistogram()
            h.record(max(0.0, value_ms), count)
            self._sums[name] = self._sums.get(name, 0.0) + max(0.0, value_ms) * count
            self.data["histograms"][name] = {"counts": h.to_list(), "sum_ms": self._sums[name]}

    def snapshot(self) -> dict[str, Any]:
        """A consistent copy of the figures (for a reader in another thread)."""
        with self._guard:
            return json.loads(json.dumps(self.data, default=str))  # type: ignore[no-any-return]

    def flush(self) -> None:
        with self._guard:
            self.data["updated_at"] = time.time()
            text = json.dumps(redact.redact_data(self.data), default=lambda o: redact.redact(str(o)))
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(text)
        os.replace(tmp, self.path)


def read_progress(path: Path) -> dict[str, Any] | None:
    """The last progress written at ``path``, or None."""
    try:
        return json.loads(path.read_text())  # type: ignore[no-any-return]
    except (OSError, ValueError):
        return None


# Bucket upper bounds in milliseconds: 1 ms .. ~30 min, ~10% apart.
_BOUNDS = [round(1.1**i) for i in range(0, 160)]
_BOUNDS = sorted(set(b for b in _BOUNDS if b <= 2_000_000))
BOUNDS_MS: tuple[int, ...] = tuple(_BOUNDS)  # the upper bound of each bucket but the last (+Inf)


class LatencyHistogram:
    """A mergeable log-bucket histogram of latencies in milliseconds (about 10% resolution)."""

    def __init__(self, counts: list[int] | None = None) -> None:
        self.counts = counts or [0] * (len(_BOUNDS) + 1)

    def record(self, latency_ms: float, count: int = 1) -> None:
        self.counts[bisect_left(_BOUNDS, latency_ms)] += count

    @property
    def total(self) -> int:
        return sum(self.counts)

    def percentile(self, q: float) -> float | None:
        """The upper bound of the bucket holding the ``q`` quantile (0..1), in ms."""
        total = self.total
        if total == 0:
            return None
        rank = q * total
        seen = 0
        for i, n in enumerate(self.counts):
            seen += n
            if seen >= rank and n:
                return float(_BOUNDS[i]) if i < len(_BOUNDS) else float("inf")
        return float(_BOUNDS[-1])

    def to_list(self) -> list[int]:
        return list(self.counts)
