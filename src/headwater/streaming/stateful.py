"""Stateful mode of the process stage: a transform keeps state (``dedupe``, ``window``) in the query.

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
import time
from typing import TYPE_CHECKING, Any

from headwater.errors import ConfigError
from headwater.streaming import decode as dec
from headwater.streaming import dlq
from headwater.streaming.expectations import apply_expectations, count_expectations, progress_counters
from headwater.testing import fault_point
from headwater.transforms.python import split_errors

if TYPE_CHECKING:
    import threading

    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.streaming import StreamingQuery  # type: ignore[attr-defined]
    from pyspark.sql.types import StructType

    from headwater.context import PipelineContext
    from headwater.observability.progress import ProgressFile
    from headwater.spec.models import PipelineSpec
    from headwater.streaming.fanout import BatchWrite, SinkFanOut

log = logging.getLogger("headwater.process")


class StatefulMode:
    """The stateful-mode methods of :class:`~headwater.streaming.process.ProcessStage`."""

    watermarks: Any
    if TYPE_CHECKING:  # provided by ProcessStage
        ctx: PipelineContext
        spec: PipelineSpec
        schema: StructType | None
        required: list[str]
        keyed: bool
        kafka_fields: dict[str, str]
        progress: ProgressFile
        stop_event: threading.Event
        _lock: threading.Lock
        side_query: StreamingQuery | None
        _main: StreamingQuery | None
        _replay: list[Any] | None
        _window: Any
        _cut: int

        @property
        def spark(self) -> SparkSession: ...
        def _kafka_stream(self) -> DataFrame: ...
        def _trigger(self, writer: Any, available_now: bool) -> Any: ...
        def _dead_letter(self, frames: list[DataFrame], decoded: DataFrame | None, stage: str) -> int: ...
        def _send_rejected(self, result: BatchWrite) -> int: ...

        @property
        def fanout(self) -> SinkFanOut: ...
        def _record_latency(self, timestamps_ms: list[tuple[float, int]], written_at: float) -> None: ...

    def _plan_stateful(self, empty: DataFrame) -> None:
        """The side query's transforms (the main query's instances: one enrich copy for both) and window."""
        ts = self.ctx.transforms
        for t in ts:  # planned once: a static table is refreshed in place (see refresh_planned)
            t.planned = True
        windows = [i for i, t in enumerate(ts) if t.is_window]
        self._cut = windows[0] if windows else max(i for i, t in enumerate(ts) if t.stateful)
        self._window = ts[self._cut] if windows else None
        replay = [t for t in ts[: self._cut] if not t.stateful]
        needed = self._window is not None or any(t.marks_errors for t in replay)
        self._replay = replay if needed else None
        out = functools.reduce(lambda df, t: split_errors(t.apply(df), None, None), self._replay or [], empty)
        lost = [c for c in ("_hw_partition", "_hw_offset") if c not in out.columns]
        if self._window is not None and lost:
            raise ConfigError(f"transforms: the window's late-data check needs {lost} in the records reaching it; "
                              "keep them in the transforms before the window (select columns / SELECT *)")  # fmt: skip

    def _start_stateful(self, available_now: bool) -> StreamingQuery:
        from pyspark.sql import functions as F

        from headwater.streaming import observe
        from headwater.transforms.window import BatchWatermarks

        assert self.schema is not None
        base = self.ctx.checkpoint.rstrip("/")
        self.watermarks = BatchWatermarks(self.spark, f"{base}/main", self.spec.topic.name)
        decoded = dec.decode(self._kafka_stream(), self.schema, self.required, self.keyed, self.kafka_fields)
        # Expectations: drop and dead_letter rows leave the main query here; the side query counts,
        # dead-letters and, for a `fail` rule, stops the pipeline (the main query never writes such a row).
        decoded = apply_expectations(decoded, self.spec.expectations, check_fail=False)
        df = dec.good_records(observe.fenced(decoded), self.schema)
        for i, t in enumerate(self.ctx.transforms):
            df = t.apply(df)
            if dec.ERROR in df.columns and i < self._cut:  # the side query dead-letters these
                df = df.where(F.col(dec.ERROR).isNull()).drop(dec.ERROR, dec.ERROR_DETAIL)
        main = (df.writeStream.foreachBatch(self.write_batch).outputMode("update" if self._window else "append")
                .option("checkpointLocation", f"{base}/main").queryName(f"headwater_{self.spec.name}"))  # fmt: skip
        side = (self._kafka_stream().writeStream.foreachBatch(self.process_side_batch)
                .option("checkpointLocation", f"{base}/dlq").queryName(f"headwater_{self.spec.name}_dlq"))  # fmt: skip
        self._main = self._trigger(main, available_now).start()
        self.side_query = self._trigger(side, available_now).start()
        return self._main

    def refresh_planned(self) -> None:
        """Re-read the static tables planned into the running queries (``enrich``) once they are stale.

        A failed re-read keeps the copy in use and is tried again on the next call.
        """
        for t in self.ctx.transforms:
            try:
                refreshed = t.refresh_planned()
            except Exception as exc:  # metastore or files away: keep the old copy, retry next time
                log.warning("%s: refresh failed, keeping the loaded copy: %s", t.config.type, str(exc)[:300])
                continue
            if refreshed:
                with self._lock:
                    self.progress.add(**{f"{t.config.type}_refreshes": 1})

    def write_batch(self, df: DataFrame, batch_id: int) -> None:
        """Main query of stateful mode: one micro-batch of transformed rows -> the sink."""

        from headwater.streaming import observe

        t0 = time.time()
        errors: list[DataFrame] = []
        cached: list[DataFrame] = []
        stamps = None
        try:  # rows marked by a transform after the stateful ones: dead-lettered as they are
            df = split_errors(df, errors, cached)
            failed = self._dead_letter(errors, None, "transform")
            if "_hw_kafka_ts" in df.columns:  # a window keeps its newest record's (see WindowTransform)
                df, stamps = observe.stamped(df)
            result = self.fanout.write(df)
            written_at = time.time()
            rejected = self._send_rejected(result)
        finally:
            for c in cached:
                c.unpersist()
        fault_point("process.after_sink")
        with self._lock:
            if stamps is not None:
                self._record_latency(observe.timestamps(stamps), written_at)
            result.record(self.progress)
            self.progress.add(batches=1, dead_lettered=failed + rejected, busy_seconds=time.time() - t0)
            self.progress.set(last_batch=batch_id)
            self.progress.flush()
        log.info("batch %d: %d written in %.2fs", batch_id, result.primary.written, time.time() - t0)

    def process_side_batch(self, batch: DataFrame, batch_id: int) -> None:
        """Side query of stateful mode: decode failures, transform failures and late rows -> dead letters."""
        from pyspark import StorageLevel
        from pyspark.sql import functions as F

        assert self.schema is not None
        t0 = time.time()
        raw = dec.decode(batch, self.schema, self.required, self.keyed, self.kafka_fields).persist(
            StorageLevel.MEMORY_AND_DISK
        )
        cached: list[DataFrame] = [raw]
        failed = late = 0
        try:
            exp_counts = count_expectations(raw, self.spec.expectations)
            with self._lock:  # before a `fail` rule raises: the counts show what stopped the pipeline
                self.progress.add(**progress_counters(exp_counts))
            decoded = apply_expectations(raw, self.spec.expectations, exp_counts)
            stats = decoded.groupBy(F.col(dec.ERROR).isNull().alias("ok")).count().collect()
            rows_in = sum(r["count"] for r in stats)
            bad = sum(r["count"] for r in stats if not r["ok"])
            if bad:
                dlq.write(dlq.envelopes(dec.bad_records(decoded), self.spec.name, "decode"),
                          self.spec.connections.kafka, self.spec.dead_letter.topic)  # fmt: skip
            if self._replay is not None and rows_in > bad:
                errors: list[DataFrame] = []
                df = dec.good_records(decoded, self.schema)
                for t in self._replay:
                    df = split_errors(t.apply(df), errors, cached)
                failed = self._dead_letter(errors, decoded, "transform")
                if self._window is not None:
                    late = self._late_rows(df, decoded, cached)
        finally:
            for c in cached:
                c.unpersist()
        late_dl = late if self._window is not None and self._window.config.late == "dead_letter" else 0
        with self._lock:
            self.progress.add(side_batches=1, rows_in=rows_in, dead_lettered=bad + failed + late_dl,
                              late_rows=late, busy_seconds=time.time() - t0)  # fmt: skip
            self.progress.flush()
        log.info("side batch %d: %d in, %d bad, %d failed, %d late", batch_id, rows_in, bad, failed, late)

    def _late_rows(self, df: DataFrame, decoded: DataFrame, cached: list[DataFrame]) -> int:
        """Count the rows the main query drops as late (and dead-letter them if the window says so)."""
        from pyspark.sql import functions as F

        last = {r[0]: r[1] for r in decoded.groupBy("_hw_partition").agg(F.max("_hw_offset")).collect()}
        main = self._main
        self.watermarks.wait(last, lambda: not self.stop_event.is_set() and main is not None and main.isActive)
        late = self.watermarks.mark_late(df, self._window).persist()
        cached.append(late)
        n = late.count()
        if n and self._window.config.late == "dead_letter":
            self._dead_letter([late], decoded, "window")
        return n
