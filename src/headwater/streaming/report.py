"""What the process stage reports: counters, latency and state in its progress file.

One :class:`StageReport` per stage holds the progress file, the end-to-end latency histogram and
the lock that every writer of them (the micro-batch threads of the queries, the monitoring loop,
the data-loss guard) takes. The execution strategies hand it the outcome of a batch; they never
touch the progress file themselves.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from headwater.errors import first_line
from headwater.observability.progress import LatencyHistogram, ProgressFile
from headwater.streaming.expectations import progress_counters

if TYPE_CHECKING:
    from pathlib import Path

    from headwater.streaming.fanout import BatchWrite

log = logging.getLogger("headwater.process")


@dataclass
class BatchOutcome:
    """The outcome of one micro-batch of the stateless execution, whichever path it took."""

    rows: int
    bad: int
    failed: int
    rejected: int
    result: BatchWrite
    expectations: dict[str, dict[str, Any]]
    timestamps_ms: list[tuple[float, int]]  # Kafka append times of the written records: (ms, records)
    written_at: float
    sink_seconds: float = 0.0  # wall time of the sink's write
    reasons: dict[str, int] | None = None  # bad records (decode, expectations) per reason code

    @property
    def dead(self) -> int:
        """Records of the batch sent to the dead-letter topic."""
        return self.bad + self.failed + self.rejected

    def dead_letter_counters(self) -> dict[str, int]:
        """Progress counters ``dead_letter.<reason>`` of this batch (sink rejections by their own reason)."""
        out: dict[str, int] = dict((self.reasons or {}).items())
        if self.failed:
            out["transform_error"] = out.get("transform_error", 0) + self.failed
        for r in self.result.rejected():
            reason = str(r.get("reason") or "sink_rejected")
            out[reason] = out.get(reason, 0) + 1
        return {f"dead_letter.{k}": v for k, v in out.items() if v}


class StageReport:
    """The process stage's progress file, latency histogram and the lock around both."""

    def __init__(self, path: Path) -> None:
        self.progress = ProgressFile(path, "process")
        self.latency = LatencyHistogram()
        self.lock = threading.Lock()

    def batch(self, out: BatchOutcome, batch_id: int, started: float) -> None:
        """Record a micro-batch of the stateless execution started at ``started``."""
        result = out.result
        p = self.progress
        with self.lock:
            self._latency(out.timestamps_ms, out.written_at)
            result.record(p)
            self._legs(out, started)
            p.add(**out.dead_letter_counters())
            p.add(batches=1, rows_in=out.rows, dead_lettered=out.dead,
                  filtered=max(0, out.rows - out.bad - out.failed - result.rows),
                  busy_seconds=time.time() - started)  # fmt: skip
            p.add(**progress_counters(out.expectations))
            p.set(last_batch=batch_id)
            if result.primary.written:
                p.set(last_written_at=out.written_at)
            p.flush()
        log.info("batch %d: %d in, %d written, %d dead-lettered in %.2fs", batch_id, out.rows,
                 result.primary.written, out.dead, time.time() - started)  # fmt: skip

    def sink_batch(self, result: BatchWrite, batch_id: int, started: float, dead: int,
                   stamps: list[tuple[float, int]] | None, written_at: float) -> None:  # fmt: skip
        """Record a micro-batch of the stateful main query (it only writes the sinks)."""
        with self.lock:
            if stamps is not None:
                self._latency(stamps, written_at)
            result.record(self.progress)
            self.progress.add(batches=1, dead_lettered=dead, busy_seconds=time.time() - started)
            self.progress.set(last_batch=batch_id)
            self.progress.flush()
        log.info("batch %d: %d written in %.2fs", batch_id, result.primary.written, time.time() - started)

    def side_batch(self, batch_id: int, started: float, rows_in: int, bad: int, failed: int, late: int,
                   late_dead: int) -> None:  # fmt: skip
        """Record a micro-batch of the stateful side query (dead letters and late rows)."""
        with self.lock:
            self.progress.add(side_batches=1, rows_in=rows_in, dead_lettered=bad + failed + late_dead,
                              late_rows=late, busy_seconds=time.time() - started)  # fmt: skip
            self.progress.flush()
        log.info("side batch %d: %d in, %d bad, %d failed, %d late", batch_id, rows_in, bad, failed, late)

    def add(self, **counters: int | float) -> None:
        """Add to the counters (under the lock)."""
        with self.lock:
            self.progress.add(**counters)

    def state(self, state: str, **fields: Any) -> None:
        """Set the stage's state (and other fields) and write the file."""
        with self.lock:
            self.progress.set(state=state, **fields)
            self.progress.flush()

    def update(self, **fields: Any) -> None:
        """Set fields and write the file (under the lock)."""
        with self.lock:
            self.progress.set(**fields)
            self.progress.flush()

    def failed(self, exc: Exception) -> Exception:
        """Record ``exc`` as the stage's final state; returns it to raise."""
        self.state("failed", last_error=first_line(exc, 500))
        return exc

    def retrying(self, error: str) -> None:
        """Record a transient failure of the queries before they restart."""
        with self.lock:
            self.progress.add(query_restarts=1)
            self.progress.set(state="retrying", last_error=error[:300])
            self.progress.flush()

    def _legs(self, out: BatchOutcome, started: float) -> None:
        """The latency legs of a batch started at ``started`` and its duration (hold the lock)."""
        good = 0
        for ts_ms, count in out.timestamps_ms:
            self.progress.observe("latency.kafka_to_batch", started * 1000 - ts_ms, count)
            good += count
        for sink in out.result.results:  # the sinks write one after the other: the batch's written time for each
            self.progress.observe(f"latency.batch_to_sink.{sink}", (out.written_at - started) * 1000, good)
            self.progress.observe(f"sink_write.{sink}", out.sink_seconds * 1000)
        self.progress.observe("batch", (time.time() - started) * 1000)

    def _latency(self, timestamps_ms: list[tuple[float, int]], written_at: float) -> None:
        """Add (Kafka timestamp ms, records) written at ``written_at`` to the latency histogram (hold the lock)."""
        for ts_ms, count in timestamps_ms:
            self.latency.record(written_at * 1000 - ts_ms, count)
            self.progress.observe("latency.end_to_end", written_at * 1000 - ts_ms, count)
        self.progress.set(latency_ms=self.latency.to_list(), p50_ms=self.latency.percentile(0.5),
                          p99_ms=self.latency.percentile(0.99))  # fmt: skip
