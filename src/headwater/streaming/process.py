"""The process stage: one Structured Streaming query per pipeline, Kafka -> decode -> transforms -> sink.

Every micro-batch (``foreachBatch``):
1. decodes the records (bad ones get a reason code, see :mod:`headwater.streaming.decode`);
2. applies the spec's transforms to the good ones and writes them to the sink (idempotent);
3. writes the bad ones (and any the sink rejected) to the dead-letter topic;
4. only then does Spark commit the batch. A crash anywhere replays the whole batch with the same
   offsets; the idempotent sink and the position-keyed dead letters absorb the replay.

Rows a transform marks with ``_hw_error`` (``python`` failures) are split off and dead-lettered.

Stateful mode (a transform with ``stateful = True``) runs two queries: see
:mod:`headwater.streaming.stateful`.
"""

from __future__ import annotations

import functools
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from headwater import kafka
from headwater.errors import (
    ConfigError,
    DataLossError,
    NotFoundError,
    PermanentError,
    RetriesExhausted,
    TransientError,
)
from headwater.faults import RetryBudget, classify
from headwater.observability.progress import LatencyHistogram, ProgressFile
from headwater.streaming import data_loss, dlq, warm
from headwater.streaming import decode as dec
from headwater.streaming.data_loss import DataLossGuard
from headwater.streaming.expectations import (
    apply_expectations,
    count_expectations,
    progress_counters,
    validate_expectations,
)
from headwater.streaming.failed_rows import dead_letter_rows, split_errors
from headwater.streaming.fanout import BatchWrite, SinkFanOut, empty_write
from headwater.streaming.stateful import StatefulMode
from headwater.testing import fault_point
from headwater.timeutil import parse_duration

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.streaming import StreamingQuery  # type: ignore[attr-defined]
    from pyspark.sql.types import StructType

    from headwater.context import PipelineContext

log = logging.getLogger("headwater.process")


class ProcessStage(StatefulMode):
    """Runs the streaming query of one pipeline in this process."""

    def __init__(self, ctx: PipelineContext, spark: SparkSession | None = None) -> None:
        self.ctx = ctx
        self.spec = ctx.spec
        self._spark = spark
        self.progress = ProgressFile(ctx.progress_path("process"), "process")
        self.latency = LatencyHistogram()
        self.stop_event = threading.Event()
        self.schema: StructType | None = None
        self.required: list[str] = []
        self.keyed = bool(self.spec.topic.key)  # records without a Kafka key are dead letters (missing_key)
        self.kafka_fields = self.spec.source.kafka_fields()  # record fields from the Kafka record itself
        self._lock = threading.Lock()
        # Stateful mode: queries, transforms the side query replays, its window, where error rows stop.
        self.side_query: StreamingQuery | None = None
        self._main: StreamingQuery | None = None
        self._replay: list[Any] | None = None
        self._window: Any = None
        self._cut = 0
        self.guard = DataLossGuard(self.spec, lambda: self.spark, self._checkpoints, self.progress, self._lock)
        self._kafka_away = False
        self.clock: Callable[[], float] = time.monotonic  # the restart bound's clock (tests inject one)
        self.first_backoff = 2.0  # seconds before the first query restart; doubles up to 60
        self.warm_workers = True  # start the sinks' Python workers in prepare() (see streaming.warm)

    @property
    def spark(self) -> SparkSession:
        if self._spark is None:
            self._spark = self.ctx.spark("process")
        return self._spark

    def check_data_loss(self) -> None:
        """Fail (``on_data_loss: fail``, recorded as the stage's final state) or note records gone from Kafka."""
        try:
            self.guard.check()
        except DataLossError as exc:
            raise self._failed(exc) from None

    def _checkpoints(self) -> list[str]:
        """The checkpoint of every query the stage runs (stateful mode: main and dead-letter queries)."""
        base = self.ctx.checkpoint.rstrip("/")
        return [f"{base}/main", f"{base}/dlq"] if self.stateful else [self.ctx.checkpoint]

    @functools.cached_property
    def fanout(self) -> SinkFanOut:
        """The pipeline's sinks, written together."""
        return SinkFanOut(self.ctx.sinks)

    def record_schema(self) -> StructType:
        """The declared schema (spec ``schema``), else the source's."""
        from pyspark.sql.types import StructType

        if self.spec.schema_:
            ddl = ", ".join(f"`{k}` {v}" for k, v in self.spec.schema_.items())
            self.spark  # noqa: B018 - fromDDL needs a live session
            try:
                return StructType.fromDDL(ddl)  # type: ignore[return-value]
            except Exception as exc:
                raise ConfigError(f"schema: cannot parse as Spark SQL types ({ddl}): {exc}") from None
        return self.ctx.source.schema(self.spark)

    def prepare(self) -> None:
        """Check Kafka and the topic, create the dead-letter topic and the sink table, dry-run the plan."""
        conn = self.spec.connections.kafka
        kafka.check_reachable(conn)
        topics = kafka.admin(conn).list_topics(timeout=10).topics
        if self.spec.topic.name not in topics:
            hint = "run the ingest stage first (it creates the topic)" if self.ctx.source.needs_ingest else (
                "the application that writes it must create it")  # fmt: skip
            raise NotFoundError(
                f"topic.name: Kafka topic '{self.spec.topic.name}' not found at {conn.bootstrap_servers}; {hint}"
            )
        d = self.spec.dead_letter
        kafka.ensure_topic(conn, d.topic, d.partitions, d.replication, field="dead_letter.replication")
        self.schema = dec.with_kafka_fields(self.record_schema(), self.kafka_fields)
        self.required = list(dict.fromkeys([*self.spec.topic.key, *self.fanout.required_fields()]))
        # Dry run: transforms over an empty frame must yield what the sink needs (fails before any data).
        empty = self.spark.createDataFrame([], self.schema)
        for meta, typ in (("_hw_topic", "string"), ("_hw_partition", "int"), ("_hw_offset", "bigint"),
                          ("_hw_kafka_ts", "timestamp")):  # fmt: skip
            from pyspark.sql import functions as F

            empty = empty.withColumn(meta, F.lit(None).cast(typ))
        validate_expectations(self.spec.expectations, empty)
        out = self._transform(empty)
        if self.stateful:
            self._plan_stateful(empty)
        self.fanout.prepare(out)
        self.warm_up()

    def warm_up(self) -> None:
        """Start the Python workers the sinks' executor code runs in, with its modules imported (:mod:`warm`)."""
        if not self.warm_workers:
            return
        modules = [m for s in self.fanout.sinks for m in s.worker_modules]
        t0 = time.monotonic()
        if warm.try_python_workers(self.spark, modules):
            log.info("Python workers warm in %.2fs", time.monotonic() - t0)

    def _transform(self, df: DataFrame, errors: list[DataFrame] | None = None,
                   cached: list[DataFrame] | None = None) -> DataFrame:  # fmt: skip
        """Apply the transforms; rows one marks with ``_hw_error`` go to ``errors`` (dropped if None)."""
        for t in self.ctx.transforms:
            df = split_errors(t.apply(df), errors, cached)
        return df

    @property
    def stateful(self) -> bool:
        """Whether a transform keeps state (then the stage runs in stateful mode)."""
        return any(t.stateful for t in self.ctx.transforms)

    # --- one micro-batch ------------------------------------------------------------------------
    @property
    def one_pass(self) -> bool:
        """Whether batches take the one-pass path (:mod:`headwater.streaming.observe`).

        Not with a ``fail`` expectation (it is checked before anything is written) nor with a
        transform that marks failed rows (their dead letters join back to the decoded batch): those
        batches are decoded once into a cache instead.
        """
        return not any(e.action == "fail" for e in self.spec.expectations) and not any(
            t.marks_errors for t in self.ctx.transforms
        )

    def process_batch(self, batch: DataFrame, batch_id: int) -> None:
        t0 = time.time()
        out = self._one_pass_batch(batch) if self.one_pass else self._cached_batch(batch)
        fault_point("process.after_sink")
        result = out.result
        dead = out.bad + out.failed + out.rejected
        with self._lock:
            self._record_latency(out.timestamps_ms, out.written_at)
            result.record(self.progress)
            self._record_legs(out, t0)
            self.progress.add(**out.dead_letter_counters())
            self.progress.add(
                batches=1, rows_in=out.rows, dead_lettered=dead,
                filtered=max(0, out.rows - out.bad - out.failed - result.rows), busy_seconds=time.time() - t0,
            )  # fmt: skip
            self.progress.add(**progress_counters(out.expectations))
            self.progress.set(last_batch=batch_id)
            if result.primary.written:
                self.progress.set(last_written_at=out.written_at)
            self.progress.flush()
        log.info("batch %d: %d in, %d written, %d dead-lettered in %.2fs", batch_id, out.rows,
                 result.primary.written, dead, time.time() - t0)  # fmt: skip

    def _record_legs(self, out: _Batch, started: float) -> None:
        """The latency legs of a batch started at ``started`` and its duration (hold the lock)."""
        good = 0
        for ts_ms, count in out.timestamps_ms:
            self.progress.observe("latency.kafka_to_batch", started * 1000 - ts_ms, count)
            good += count
        for sink in out.result.results:  # the sinks write one after the other: the batch's written time for each
            self.progress.observe(f"latency.batch_to_sink.{sink}", (out.written_at - started) * 1000, good)
            self.progress.observe(f"sink_write.{sink}", out.sink_seconds * 1000)
        self.progress.observe("batch", (time.time() - started) * 1000)

    def _record_latency(self, timestamps_ms: list[tuple[float, int]], written_at: float) -> None:
        """Add (Kafka timestamp ms, records) written at ``written_at`` to the latency histogram (hold the lock)."""
        for ts_ms, count in timestamps_ms:
            self.latency.record(written_at * 1000 - ts_ms, count)
            self.progress.observe("latency.end_to_end", written_at * 1000 - ts_ms, count)
        self.progress.set(latency_ms=self.latency.to_list(), p50_ms=self.latency.percentile(0.5),
                          p99_ms=self.latency.percentile(0.99))  # fmt: skip

    def _one_pass_batch(self, batch: DataFrame) -> _Batch:
        """Decode, check, transform and write in one job; counts come with it (see :mod:`observe`)."""
        from headwater.streaming import observe
        from headwater.streaming.expectations import expectation_aggregates, expectation_counts, flag_expectations

        assert self.schema is not None
        rules = self.spec.expectations
        decoded = dec.decode(batch, self.schema, self.required, self.keyed, self.kafka_fields)
        exp_obs = None
        if rules:
            from pyspark.sql import Observation

            exp_obs = Observation(f"headwater_rules_{uuid.uuid4().hex}")
            flagged = flag_expectations(decoded, rules).observe(exp_obs, *expectation_aggregates(rules))
            decoded = apply_expectations(flagged, rules, check_fail=False)
        observed, obs = observe.counted(decoded)
        sink_start = time.time()
        result = self.fanout.write(self._transform(dec.good_records(observed, self.schema)))
        written_at = time.time()
        if not observe.complete(obs):  # a sink that ran no action over the records: count them now
            observed.count()
        counts = observe.read(obs)
        if counts.bad:
            rows = observe.bad_records_at(batch, self.spec.connections.kafka, self.spec.topic.name,
                                          counts.bad_positions)  # fmt: skip
            again = dec.decode(rows, self.schema, self.required, self.keyed, self.kafka_fields)
            bad = dec.bad_records(apply_expectations(again, rules, check_fail=False) if rules else again)
            dlq.write(dlq.envelopes(bad, self.spec.name, "decode"), self.spec.connections.kafka,
                      self.spec.dead_letter.topic)  # fmt: skip
        rejected = self._send_rejected(result)
        exp_counts = expectation_counts(exp_obs.get, rules) if exp_obs is not None else {}
        return _Batch(counts.rows, counts.bad, 0, rejected, result, exp_counts, counts.timestamps_ms, written_at,
                      written_at - sink_start, counts.reasons)  # fmt: skip

    def _cached_batch(self, batch: DataFrame) -> _Batch:
        """Decode once into a cache that the checks, the sink and the dead letters all read."""
        from pyspark import StorageLevel
        from pyspark.sql import functions as F

        assert self.schema is not None
        raw = dec.decode(batch, self.schema, self.required, self.keyed, self.kafka_fields).persist(
            StorageLevel.MEMORY_AND_DISK
        )
        cached: list[DataFrame] = []
        try:
            exp_counts = count_expectations(raw, self.spec.expectations)
            decoded = apply_expectations(raw, self.spec.expectations, exp_counts)
            bucket = (F.col("_hw_kafka_ts").cast("double") * 100).cast("long")
            stats = decoded.groupBy(F.col(dec.ERROR).alias("reason"), bucket.alias("b")).count().collect()
            rows_in = sum(r["count"] for r in stats)
            bad = sum(r["count"] for r in stats if r["reason"] is not None)
            result = empty_write(self.fanout.sinks)
            errors: list[DataFrame] = []
            sink_start = time.time()
            if rows_in - bad > 0:
                result = self.fanout.write(self._transform(dec.good_records(decoded, self.schema), errors, cached))
            written_at = time.time()
            if bad:
                dlq.write(dlq.envelopes(dec.bad_records(decoded), self.spec.name, "decode"),
                          self.spec.connections.kafka, self.spec.dead_letter.topic)  # fmt: skip
            failed = self._dead_letter(errors, decoded, "transform")
            rejected = self._send_rejected(result)
        finally:
            for df in cached:
                df.unpersist()
            raw.unpersist()
        stamps = [(r["b"] * 10 + 5, r["count"]) for r in stats if r["reason"] is None]
        reasons: dict[str, int] = {}
        for r in stats:
            if r["reason"] is not None:
                reasons[r["reason"]] = reasons.get(r["reason"], 0) + r["count"]
        return _Batch(rows_in, bad, failed, rejected, result, exp_counts, stamps, written_at,
                      written_at - sink_start, reasons)  # fmt: skip

    # --- the query ------------------------------------------------------------------------------
    def start(self, available_now: bool = False) -> StreamingQuery:
        if self.stateful:
            return self._start_stateful(available_now)
        return self._trigger(self._kafka_stream().writeStream.foreachBatch(self.process_batch)
                             .option("checkpointLocation", self.ctx.checkpoint)
                             .queryName(f"headwater_{self.spec.name}"), available_now).start()  # fmt: skip

    def _kafka_stream(self) -> DataFrame:
        p = self.spec.process
        reader = (
            self.spark.readStream.format("kafka").options(**kafka.spark_options(self.spec.connections.kafka))
            .option("subscribe", self.spec.topic.name).option("startingOffsets", p.starting_offsets)
            .option("failOnDataLoss", str(p.on_data_loss == "fail").lower())
        )  # fmt: skip
        if p.max_offsets_per_trigger:
            reader = reader.option("maxOffsetsPerTrigger", str(p.max_offsets_per_trigger))
        return reader.load()

    def _trigger(self, writer: Any, available_now: bool) -> Any:
        return (
            writer.trigger(availableNow=True)
            if available_now
            else writer.trigger(processingTime=self.spec.process.trigger)
        )

    def lag(self, query: StreamingQuery) -> tuple[int, dict[int, int]]:
        """(total lag, end offsets) of the topic against what the query has committed.

        With ``on_data_loss: skip``, records that aged out ahead of the query are noted on the way.
        """
        marks = kafka.watermarks(self.spec.connections.kafka, self.spec.topic.name)
        done = committed_offsets(query, self.spec.topic.name)
        if self.spec.process.on_data_loss == "skip":
            self.guard.note(data_loss.lost_ranges(done, {p: low for p, (low, _) in marks.items()}))
        ends = {p: high for p, (_, high) in marks.items()}
        per_partition = {p: max(0, end - done.get(p, 0)) for p, end in ends.items()}
        self.progress.set(lag_partitions=per_partition, topic=self.spec.topic.name)
        return sum(per_partition.values()), ends

    def _max_lag(self, queries: list[StreamingQuery]) -> int | None:
        """The largest lag of ``queries``; None while Kafka does not answer (the queries ride it out)."""
        try:
            lag = max(self.lag(q)[0] for q in queries)
        except TransientError as exc:
            if not self._kafka_away:
                log.warning("lag unknown while Kafka does not answer (the query retries): %s", exc)
            self._kafka_away = True
            return None
        if self._kafka_away:
            log.warning("Kafka answers again; lag %d", lag)
        self._kafka_away = False
        return lag

    def _failed(self, exc: Exception) -> Exception:
        """Record ``exc`` as the stage's final state; returns it to raise."""
        with self._lock:
            self.progress.set(state="failed", last_error=str(exc).strip().splitlines()[0][:500])
            self.progress.flush()
        return exc

    def run(self, until_drained: bool = False, upstream_done: Callable[[], bool] | None = None) -> dict[str, Any]:
        """Run until stopped; with ``until_drained``, until upstream is done and the lag is 0.

        A transient failure of the query (a store or Kafka away longer than the writer's own retries)
        restarts it from its checkpoint after a pause, at most ``process.restarts.max`` times within
        ``process.restarts.within``; one more fails the stage with the last cause (RetriesExhausted).
        A permanent one (:func:`headwater.faults.classify`) fails it at once (PermanentError). Either
        way the progress file says ``failed`` with the reason.
        """
        self.progress.set(state="preparing")
        self.progress.flush()
        self.prepare()
        bound = self.spec.process.restarts
        budget = RetryBudget(bound.max, bound.within_seconds, self.clock)
        backoff = self.first_backoff
        while True:
            try:
                self.check_data_loss()
                return self._run_queries(until_drained, upstream_done)
            except QueryFailed as exc:
                if _is_data_loss(str(exc)):  # never retried: the records will not come back
                    self.check_data_loss()
                    reason = str(exc).strip().splitlines()[0][:300]
                    raise self._failed(DataLossError(f"topic {self.spec.topic.name}: {reason}")) from None
                fault = classify(str(exc))
            except TransientError as exc:  # Kafka away while the checkpoints are checked against it
                fault = classify(exc)
            except PermanentError as exc:  # a stuck query that would not stop
                raise self._failed(exc) from None
            if not fault.transient:
                raise self._failed(PermanentError(f"process stage stopped: {fault.message}")) from None
            if not budget.take():
                raise self._failed(RetriesExhausted(
                    f"process stage stopped after {bound.max} query restarts within {bound.within}: {fault.message}"
                )) from None  # fmt: skip
            if not self._pause_before_restart(fault.message, backoff):  # asked to stop while waiting
                self.progress.set(state="stopped")
                self.progress.flush()
                return dict(self.progress.data)
            backoff = min(backoff * 2, 60.0)

    def _pause_before_restart(self, error: str, backoff: float) -> bool:
        """Record a transient failure, then wait ``backoff`` seconds; False if the stage is stopping."""
        if self.stop_event.is_set():
            return False
        # Infrastructure trouble (a store or Kafka away longer than the writer's retries): restart
        # from the checkpoint after a pause; the failed batch is replayed, nothing is lost.
        log.warning("query failed with a transient error; restarting in %.0fs: %s", backoff, error[:300])
        with self._lock:
            self.progress.add(query_restarts=1)
            self.progress.set(state="retrying", last_error=error[:300])
            self.progress.flush()
        return not self.stop_event.wait(backoff)

    def _run_queries(self, until_drained: bool, upstream_done: Callable[[], bool] | None) -> dict[str, Any]:
        query = self.start()
        self.progress.set(state="running", query_id=str(query.id), checkpoint=self.ctx.checkpoint)
        self.progress.flush()
        queries = [q for q in (query, self.side_query) if q is not None]
        watchdog = BatchWatchdog(parse_duration(self.spec.process.batch_timeout))
        grace = STOP_GRACE_SECONDS
        try:
            while not self.stop_event.wait(1.0):
                for q in queries:
                    if not q.isActive:
                        exc = q.exception()
                        raise QueryFailed(f"streaming query {q.name} stopped: {exc}")
                stuck = watchdog.check(any(q.status["isTriggerActive"] for q in queries), time.monotonic())
                if stuck is not None:
                    grace = 0.0  # it will not finish: stop it now
                    raise QueryFailed(
                        f"micro-batch stuck: running for {stuck:.0f}s, over process.batch_timeout "
                        f"({self.spec.process.batch_timeout}); the query is stopped and restarted from its checkpoint"
                    )
                if self.stateful:
                    self.refresh_planned()
                lag = self._max_lag(queries)
                with self._lock:
                    self.progress.set(lag=lag, input_rate=_rate(query))
                    self.progress.flush()
                if until_drained and lag == 0 and (upstream_done is None or upstream_done()):
                    busy = any(q.status["isTriggerActive"] for q in queries)
                    if not busy and self._max_lag(queries) == 0:
                        break
        finally:
            if self.side_query is not None:
                self.stop_event.set()  # a side batch waiting for the main query gives up
            _stop_between_batches(queries, grace)
        self.progress.set(state="drained" if until_drained else "stopped")
        self.progress.flush()
        return dict(self.progress.data)

    # --- dead letters -----------------------------------------------------------------------------
    def _dead_letter(self, frames: list[DataFrame], decoded: DataFrame | None, stage: str) -> int:
        """Send rows marked with ``_hw_error`` to the dead-letter topic; returns how many were sent."""
        if not frames:
            return 0
        rows = functools.reduce(lambda a, b: a.unionByName(b, allowMissingColumns=True), frames)
        env = dlq.envelopes(dead_letter_rows(rows, decoded), self.spec.name, stage).persist()
        try:
            n = env.count()
            if n:
                dlq.write(env, self.spec.connections.kafka, self.spec.dead_letter.topic)
        finally:
            env.unpersist()
        return n

    def _send_rejected(self, result: BatchWrite) -> int:
        """Dead-letter the records the sinks rejected; returns how many."""
        rejected = result.rejected()
        if rejected:
            env = dlq.rejected_envelopes(self.spark, rejected, self.spec.name, self.spec.topic.name)
            dlq.write(env, self.spec.connections.kafka, self.spec.dead_letter.topic)
        return len(rejected)


@dataclass
class _Batch:
    """The outcome of one micro-batch, whichever path it took."""

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

    def dead_letter_counters(self) -> dict[str, int]:
        """Progress counters ``dead_letter.<reason>`` of this batch (sink rejections by their own reason)."""
        out: dict[str, int] = dict((self.reasons or {}).items())
        if self.failed:
            out["transform_error"] = out.get("transform_error", 0) + self.failed
        for r in self.result.rejected():
            reason = str(r.get("reason") or "sink_rejected")
            out[reason] = out.get(reason, 0) + 1
        return {f"dead_letter.{k}": v for k, v in out.items() if v}


class QueryFailed(RuntimeError):
    """A streaming query of the stage terminated with an error."""


STOP_GRACE_SECONDS = 60.0


STOP_TIMEOUT_SECONDS = 120.0


class BatchWatchdog:
    """Says when a micro-batch has been running for longer than ``timeout`` seconds (it is stuck)."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.since: float | None = None

    def check(self, active: bool, now: float) -> float | None:
        """Feed whether a batch runs at ``now``; returns how long it has run once that is over the timeout."""
        if not active:
            self.since = None
            return None
        if self.since is None:
            self.since = now
        running = now - self.since
        return running if running > self.timeout else None


def _stop_between_batches(queries: list[StreamingQuery], grace: float = STOP_GRACE_SECONDS) -> None:
    """Stop the queries, letting a micro-batch in flight finish first (sink, dead letters, commit).

    ``StreamingQuery.stop`` interrupts a running batch; it would be replayed on restart (nothing is
    lost), but its rows would already be in the sink while its dead letters and counts were not.
    A stop that does not return within :data:`STOP_TIMEOUT_SECONDS` (a task stuck beyond Spark's
    interrupt) fails the stage rather than hanging it.
    """
    deadline = time.monotonic() + grace
    for q in reversed(queries):
        while q.isActive and q.status["isTriggerActive"] and time.monotonic() < deadline:
            time.sleep(0.05)
        stopper = threading.Thread(target=q.stop, name="headwater-query-stop", daemon=True)
        stopper.start()
        stopper.join(STOP_TIMEOUT_SECONDS)
        if stopper.is_alive():
            raise PermanentError(f"streaming query {q.name} did not stop within {STOP_TIMEOUT_SECONDS:.0f}s")


def _is_data_loss(message: str) -> bool:
    """Whether Spark's Kafka source failed because records it had to read are gone."""
    return "KAFKA_DATA_LOSS" in message or "failOnDataLoss" in message


def committed_offsets(query: StreamingQuery, topic: str) -> dict[int, int]:
    """Per partition, the next offset the query will read (everything before it is committed)."""
    prog = query.lastProgress
    if not prog:
        return {}
    data = json.loads(prog.json) if hasattr(prog, "json") else dict(prog)
    out: dict[int, int] = {}
    for src in data.get("sources", []):
        end = src.get("endOffset")
        if isinstance(end, str):
            end = json.loads(end)
        for p, off in (end or {}).get(topic, {}).items():
            out[int(p)] = int(off)
    return out


def _rate(query: StreamingQuery) -> float | None:
    prog = query.lastProgress
    if not prog:
        return None
    data = json.loads(prog.json) if hasattr(prog, "json") else dict(prog)
    return data.get("processedRowsPerSecond")
