"""The process stage: the pipeline's streaming queries, Kafka -> decode -> transforms -> sinks.

The stage is composed of parts with one job each, built once here and passed to each other:

- decode and validate: :class:`~headwater.streaming.decode.RecordDecoder` (and the expectations);
- apply transforms and hold the collaborators: :class:`~headwater.streaming.execution.StageParts`;
- route dead letters: :class:`~headwater.streaming.deadletters.DeadLetterRouter`;
- write sinks: :class:`~headwater.streaming.fanout.SinkFanOut`;
- report progress: :class:`~headwater.streaming.report.StageReport`;
- run and restart the queries: :class:`~headwater.streaming.runner.QueryMonitor` and
  :class:`~headwater.streaming.runner.RestartLoop` (with the :class:`BatchWatchdog`);
- guard against data loss: :class:`~headwater.streaming.data_loss.DataLossGuard`.

What a micro-batch does is the execution strategy's, chosen once from the transforms:
:class:`~headwater.streaming.stateless.StatelessExecution` (one query) or, when a transform keeps
state, :class:`~headwater.streaming.stateful.StatefulExecution` (a main and a side query).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from headwater import kafka
from headwater.errors import ConfigError, DataLossError, NotFoundError
from headwater.streaming import decode as dec
from headwater.streaming import warm
from headwater.streaming.data_loss import DataLossGuard, next_offsets
from headwater.streaming.deadletters import DeadLetterRouter
from headwater.streaming.execution import Execution, StageParts
from headwater.streaming.expectations import validate_expectations
from headwater.streaming.fanout import SinkFanOut
from headwater.streaming.report import StageReport
from headwater.streaming.runner import (
    STOP_GRACE_SECONDS,
    STOP_TIMEOUT_SECONDS,
    BatchWatchdog,
    QueryFailed,
    QueryMonitor,
    RestartLoop,
    committed_offsets,
)
from headwater.streaming.stateful import StatefulExecution
from headwater.streaming.stateless import StatelessExecution

if TYPE_CHECKING:
    from pyspark.sql import SparkSession
    from pyspark.sql.types import StructType

    from headwater.context import PipelineContext

__all__ = [
    "STOP_GRACE_SECONDS",
    "STOP_TIMEOUT_SECONDS",
    "BatchWatchdog",
    "ProcessStage",
    "QueryFailed",
    "committed_offsets",
]

log = logging.getLogger("headwater.process")

_META_COLUMNS = (("_hw_topic", "string"), ("_hw_partition", "int"), ("_hw_offset", "bigint"),
                 ("_hw_kafka_ts", "timestamp"))  # fmt: skip


class ProcessStage:
    """Runs the streaming queries of one pipeline in this process."""

    def __init__(self, ctx: PipelineContext, spark: SparkSession | None = None) -> None:
        self.ctx = ctx
        self.spec = ctx.spec
        self._spark = spark
        self.report = StageReport(ctx.progress_path("process"))
        self.progress = self.report.progress
        self.stop_event = threading.Event()
        self.parts = StageParts(ctx, lambda: self.spark, SinkFanOut(ctx.sinks), DeadLetterRouter(self.spec,
                                lambda: self.spark), self.report, self.stop_event)  # fmt: skip
        self.stateful = any(t.stateful for t in ctx.transforms)  # chosen once: the execution strategy
        self.execution: Execution = StatefulExecution(self.parts) if self.stateful else StatelessExecution(self.parts)
        self.guard = DataLossGuard(self.spec, lambda: self.spark, self.execution.checkpoints, self.progress,
                                   self.report.lock)  # fmt: skip
        self.monitor = QueryMonitor(self.spec, self.execution, self.report, self.guard, self.stop_event,
                                    ctx.checkpoint)  # fmt: skip
        self.clock: Callable[[], float] = time.monotonic  # the restart bound's clock (tests inject one)
        self.first_backoff = 2.0  # seconds before the first query restart; doubles up to 60
        self.warm_workers = True  # start the sinks' Python workers in prepare() (see streaming.warm)
        self.rehearse_when_idle = True  # then rehearse a micro-batch while no record waits (process.rehearse)

    @property
    def spark(self) -> SparkSession:
        """The stage's SparkSession (created on first use)."""
        if self._spark is None:
            self._spark = self.ctx.spark("process")
        return self._spark

    def check_data_loss(self) -> None:
        """Fail (``on_data_loss: fail``, recorded as the stage's final state) or note records gone from Kafka."""
        try:
            self.guard.check()
        except DataLossError as exc:
            raise self.report.failed(exc) from None

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
        """Check Kafka and the topic, create the dead-letter topic and the sink table, dry-run the plan, warm up."""
        from pyspark.sql import functions as F

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
        kafka_fields = self.spec.source.kafka_fields()  # record fields from the Kafka record itself
        schema = dec.with_kafka_fields(self.record_schema(), kafka_fields)
        required = list(dict.fromkeys([*self.spec.topic.key, *self.parts.fanout.required_fields()]))
        # records without a Kafka key are dead letters (missing_key) when the topic is keyed
        decoder = dec.RecordDecoder(schema, required, bool(self.spec.topic.key), kafka_fields)
        # Dry run: transforms over an empty frame must yield what the sink needs (fails before any data).
        empty = self.spark.createDataFrame([], schema)
        for meta, typ in _META_COLUMNS:
            empty = empty.withColumn(meta, F.lit(None).cast(typ))
        validate_expectations(self.spec.expectations, empty)
        out = self.parts.transform(empty)
        self.execution.plan(decoder, empty)
        self.parts.fanout.prepare(out)
        self.warm_up(decoder)

    def warm_up(self, decoder: dec.RecordDecoder) -> None:
        """Start the sinks' Python workers, then rehearse a micro-batch while no record waits (:mod:`warm`)."""
        if not self.warm_workers:
            return
        modules = [m for s in self.parts.fanout.sinks for m in s.worker_modules]
        t0 = time.monotonic()
        if warm.try_python_workers(self.spark, modules):
            log.info("Python workers warm in %.2fs", time.monotonic() - t0)
        if self.rehearse_when_idle and self.spec.process.rehearse and self.execution.rehearses:
            spec = self.spec
            done = warm.try_rehearse(
                lambda: warm.synthetic_batch(self.spark, decoder, spec.topic.name, spec.topic.key,
                                             warm.REHEARSAL_RECORDS),
                self.execution.rehearse, self.records_waiting,
            )  # fmt: skip
            log.info("%s", done.describe())
            with self.report.lock:
                self.progress.set(rehearsal=done.as_dict())

    def records_waiting(self) -> int:
        """Records of the topic the stage has yet to read (from its checkpoint and Kafka's offsets)."""
        conn, topic = self.spec.connections.kafka, self.spec.topic.name
        marks = kafka.watermarks(conn, topic)
        start, end = {p: low for p, (low, _) in marks.items()}, {p: high for p, (_, high) in marks.items()}
        nexts = next_offsets(self.spark, self.execution.checkpoints()[0], topic)
        return warm.records_waiting(end, start, nexts, self.spec.process.starting_offsets)

    def run(self, until_drained: bool = False, upstream_done: Callable[[], bool] | None = None) -> dict[str, Any]:
        """Run until stopped; with ``until_drained``, until upstream is done and the lag is 0.

        A transient failure of the query (a store or Kafka away longer than the writer's own retries)
        restarts it from its checkpoint after a pause, at most ``process.restarts.max`` times within
        ``process.restarts.within``; one more fails the stage with the last cause (RetriesExhausted).
        A permanent one (:func:`headwater.faults.classify`) fails it at once (PermanentError). Either
        way the progress file says ``failed`` with the reason.
        """
        self.report.state("preparing")
        # A run until drained catches up and stops: there is no first record to be ready for.
        self.rehearse_when_idle = not until_drained
        self.prepare()
        restarts = RestartLoop(self.spec, self.report, self.stop_event, self.clock, self.first_backoff)
        return restarts.run(lambda: self._run_queries(until_drained, upstream_done), self.check_data_loss)

    def _run_queries(self, until_drained: bool, upstream_done: Callable[[], bool] | None) -> dict[str, Any]:
        """One attempt: start the queries and watch them until stopped or drained."""
        return self.monitor.run(until_drained, upstream_done)
