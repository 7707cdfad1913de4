"""Stateful execution of the process stage: a transform keeps state (``dedupe``, ``window``) in the query.

The stage then runs two queries in one SparkSession. ``<checkpoint>/main``: Kafka -> decode ->
expectations -> transforms on the streaming DataFrame -> ``foreachBatch`` that only writes to the
sink (output mode ``update`` with a window, else ``append``). ``<checkpoint>/dlq`` (side query):
Kafka -> decode -> ``foreachBatch`` that counts the expectations, dead-letters decode failures and
expectation failures, and replays the stateless transforms before the first window (or last
stateful transform) to dead-letter their ``_hw_error`` rows (the main query drops them before its
state) and to find the window's late rows against the main query's per-batch watermarks
(:class:`headwater.transforms.window.BatchWatermarks`; it waits for the main query to plan them).
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from headwater.errors import ConfigError
from headwater.streaming import decode as dec
from headwater.streaming.expectations import apply_expectations, count_expectations, progress_counters
from headwater.streaming.failed_rows import split_errors
from headwater.testing import fault_point

if TYPE_CHECKING:
    from pyspark.sql import DataFrame
    from pyspark.sql.streaming import StreamingQuery  # type: ignore[attr-defined]

    from headwater.streaming.decode import RecordDecoder
    from headwater.streaming.execution import StageParts
    from headwater.streaming.watermarks import BatchWatermarks

log = logging.getLogger("headwater.process")


class StatefulExecution:
    """A main query with the stateful transforms on the stream, and a side query for the dead letters."""

    rehearses = False  # its main query is planned once, over the stream, with its state store

    def __init__(self, parts: StageParts) -> None:
        self.parts = parts
        base = parts.ctx.checkpoint.rstrip("/")
        self.main_checkpoint, self.side_checkpoint = f"{base}/main", f"{base}/dlq"
        self._decoder: RecordDecoder | None = None
        self.main: StreamingQuery | None = None
        self.watermarks: BatchWatermarks | None = None
        self.replay: list[Any] | None = None  # the transforms the side query replays (None: it needs none)
        self.window: Any = None  # the first window transform, if any
        self.cut = 0  # index of the first window (else of the last stateful transform): error rows stop before it
        # This attempt's queries are stopping: a side batch waiting for the main query's watermarks gives
        # up. Per attempt, not the stage's stop event: a transient failure must restart the queries.
        self.attempt_over = threading.Event()

    @property
    def decoder(self) -> RecordDecoder:
        """The decoder given by :meth:`plan`."""
        assert self._decoder is not None, "plan() first"
        return self._decoder

    def checkpoints(self) -> list[str]:
        """The main and the dead-letter queries' checkpoints."""
        return [self.main_checkpoint, self.side_checkpoint]

    def plan(self, decoder: RecordDecoder, empty: DataFrame) -> None:
        """The side query's transforms (the main query's instances: one enrich copy for both) and window."""
        self._decoder = decoder
        ts = self.parts.ctx.transforms
        for t in ts:  # planned once: a static table is refreshed in place (see tick)
            t.planned = True
        windows = [i for i, t in enumerate(ts) if t.is_window]
        self.cut = windows[0] if windows else max(i for i, t in enumerate(ts) if t.stateful)
        self.window = ts[self.cut] if windows else None
        replay = [t for t in ts[: self.cut] if not t.stateful]
        needed = self.window is not None or any(t.marks_errors for t in replay)
        self.replay = replay if needed else None
        out = functools.reduce(lambda df, t: split_errors(t.apply(df), None, None), self.replay or [], empty)
        lost = [c for c in ("_hw_partition", "_hw_offset") if c not in out.columns]
        if self.window is not None and lost:
            raise ConfigError(f"transforms: the window's late-data check needs {lost} in the records reaching it; "
                              "keep them in the transforms before the window (select columns / SELECT *)")  # fmt: skip

    def start(self, available_now: bool = False) -> list[StreamingQuery]:
        """Start the main query, then the side query."""
        from pyspark.sql import functions as F

        from headwater.streaming import observe
        from headwater.streaming.watermarks import BatchWatermarks

        p = self.parts
        self.attempt_over = threading.Event()
        self.watermarks = BatchWatermarks(p.spark(), self.main_checkpoint, p.spec.topic.name)
        decoded = self.decoder.decode(p.kafka_stream())
        # Expectations: drop and dead_letter rows leave the main query here; the side query counts,
        # dead-letters and, for a `fail` rule, stops the pipeline (the main query never writes such a row).
        decoded = apply_expectations(decoded, p.spec.expectations, check_fail=False)
        df = self.decoder.good(observe.fenced(decoded))
        for i, t in enumerate(p.ctx.transforms):
            df = t.apply(df)
            if dec.ERROR in df.columns and i < self.cut:  # the side query dead-letters these
                df = df.where(F.col(dec.ERROR).isNull()).drop(dec.ERROR, dec.ERROR_DETAIL)
        main = (df.writeStream.foreachBatch(self.write_batch).outputMode("update" if self.window else "append")
                .option("checkpointLocation", self.main_checkpoint).queryName(f"headwater_{p.spec.name}"))  # fmt: skip
        side = (p.kafka_stream().writeStream.foreachBatch(self.process_side_batch)
                .option("checkpointLocation", self.side_checkpoint).queryName(f"headwater_{p.spec.name}_dlq"))  # fmt: skip
        self.main = p.trigger(main, available_now).start()
        return [self.main, p.trigger(side, available_now).start()]

    def rehearse(self, batch: DataFrame) -> None:
        """Never called (:attr:`rehearses` is False)."""
        raise NotImplementedError("a stateful pipeline does not rehearse")

    def tick(self) -> None:
        """Re-read the static tables planned into the running queries (``enrich``) once they are stale.

        A failed re-read keeps the copy in use and is tried again on the next call.
        """
        for t in self.parts.ctx.transforms:
            try:
                refreshed = t.refresh_planned()
            except Exception as exc:  # metastore or files away: keep the old copy, retry next time
                log.warning("%s: refresh failed, keeping the loaded copy: %s", t.config.type, str(exc)[:300])
                continue
            if refreshed:
                self.parts.report.add(**{f"{t.config.type}_refreshes": 1})

    def stopping(self) -> None:
        """A side batch waiting for the main query's watermarks gives up (this attempt only)."""
        self.attempt_over.set()

    def write_batch(self, df: DataFrame, batch_id: int) -> None:
        """Main query: one micro-batch of transformed rows -> the sinks."""
        from headwater.streaming import observe

        p = self.parts
        t0 = time.time()
        errors: list[DataFrame] = []
        cached: list[DataFrame] = []
        stamps = None
        try:  # rows marked by a transform after the stateful ones: dead-lettered as they are
            df = split_errors(df, errors, cached)
            failed = p.dead_letters.marked(errors, None, "transform")
            if "_hw_kafka_ts" in df.columns:  # a window keeps its newest record's (see WindowTransform)
                df, stamps = observe.stamped(df)
            result = p.fanout.write(df)
            written_at = time.time()
            rejected = p.dead_letters.rejected(result)
        finally:
            for c in cached:
                c.unpersist()
        fault_point("process.after_sink")
        times = observe.timestamps(stamps) if stamps is not None else None
        p.report.sink_batch(result, batch_id, t0, failed + rejected, times, written_at)

    def process_side_batch(self, batch: DataFrame, batch_id: int) -> None:
        """Side query: decode failures, transform failures and late rows -> dead letters."""
        from pyspark import StorageLevel
        from pyspark.sql import functions as F

        p = self.parts
        t0 = time.time()
        raw = self.decoder.decode(batch).persist(StorageLevel.MEMORY_AND_DISK)
        cached: list[DataFrame] = [raw]
        failed = late = 0
        try:
            exp_counts = count_expectations(raw, p.spec.expectations)
            p.report.add(**progress_counters(exp_counts))  # before a `fail` rule raises: what stopped the pipeline
            decoded = apply_expectations(raw, p.spec.expectations, exp_counts)
            stats = decoded.groupBy(F.col(dec.ERROR).isNull().alias("ok")).count().collect()
            rows_in = sum(r["count"] for r in stats)
            bad = sum(r["count"] for r in stats if not r["ok"])
            if bad:
                p.dead_letters.bad(decoded)
            if self.replay is not None and rows_in > bad:
                errors: list[DataFrame] = []
                df = self.decoder.good(decoded)
                for t in self.replay:
                    df = split_errors(t.apply(df), errors, cached)
                failed = p.dead_letters.marked(errors, decoded, "transform")
                if self.window is not None:
                    late = self._late_rows(df, decoded, cached)
        finally:
            for c in cached:
                c.unpersist()
        late_dl = late if self.window is not None and self.window.config.late == "dead_letter" else 0
        p.report.side_batch(batch_id, t0, rows_in, bad, failed, late, late_dl)

    def _late_rows(self, df: DataFrame, decoded: DataFrame, cached: list[DataFrame]) -> int:
        """Count the rows the main query drops as late (and dead-letter them if the window says so)."""
        from pyspark.sql import functions as F

        assert self.watermarks is not None
        last = {r[0]: r[1] for r in decoded.groupBy("_hw_partition").agg(F.max("_hw_offset")).collect()}
        main, over, stop = self.main, self.attempt_over, self.parts.stop_event
        self.watermarks.wait(last, lambda: not (over.is_set() or stop.is_set()) and main is not None and main.isActive)
        late = self.watermarks.mark_late(df, self.window).persist()
        cached.append(late)
        n = late.count()
        if n and self.window.config.late == "dead_letter":
            self.parts.dead_letters.marked([late], decoded, "window")
        return n
