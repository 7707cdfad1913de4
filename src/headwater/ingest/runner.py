"""The ingest loop: read the next increment, produce it to Kafka, then (and only then) commit the position.

A crash between produce and commit re-produces the same increment on restart: Kafka may hold a
record twice, and the process stage writes it to the same sink cell with the same timestamp (an idempotent sink), so
the store is unchanged. The position never advances past data that is not acknowledged by Kafka.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from headwater import kafka
from headwater.errors import HeadwaterError, PermanentError, RetriesExhausted, TransientError, first_line
from headwater.faults import RetryBudget, classify
from headwater.ingest import warm
from headwater.observability.progress import ProgressFile
from headwater.records import complete, counted_records, fits, record_size, to_records, too_large_records
from headwater.sources import drift
from headwater.testing import fault_point

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.types import StructType

    from headwater.context import PipelineContext

log = logging.getLogger("headwater.ingest")


@dataclass
class PollResult:
    """What one poll did."""

    rows: int
    produced: int
    description: str
    seconds: float


class IngestStage:
    """Runs the ingest loop of one pipeline in this process."""

    def __init__(self, ctx: PipelineContext, spark: SparkSession | None = None) -> None:
        self.ctx = ctx
        self.spec = ctx.spec
        self._spark = spark
        self.progress = ProgressFile(ctx.progress_path("ingest"), "ingest")
        self.positions = kafka.PositionStore(self.spec.connections.kafka, self.spec.state_topic)
        self.stop_event = threading.Event()
        self.clock: Callable[[], float] = time.monotonic  # the retry bound's clock (tests inject one)
        self.first_backoff = 1.0  # seconds before the first retry; doubles up to 60
        self.warm_up_enabled = ctx.spec.ingest.rehearse
        self.last_produced: float | None = None  # clock() of the last produce or warm-up (None: neither yet)

    @property
    def spark(self) -> SparkSession:
        if self._spark is None:
            self._spark = self.ctx.spark("ingest")
        return self._spark

    def prepare(self) -> None:
        """Check the source and Kafka, create the topic and the state topic if missing."""
        conn = self.spec.connections.kafka
        kafka.check_reachable(conn)
        self.ctx.source.check(self.spark)
        t = self.spec.topic
        if kafka.ensure_topic(conn, t.name, t.partitions, t.replication, t.config, field="topic.replication"):
            log.info("created topic %s with %d partitions", t.name, t.partitions)
        self.positions.ensure()
        kafka.use_v2_writes(self.spark)

    @functools.cached_property
    def record_limit(self) -> int:
        """The largest record (key + value bytes) the pipeline's topic takes."""
        return kafka.max_record_bytes(self.spec.connections.kafka, self.spec.topic.name)

    def poll_once(self) -> PollResult | None:
        """Read, produce and commit one increment; None when the source has nothing new."""
        t0 = time.monotonic()
        position = self.positions.load(self.ctx.position_key)
        # read() refreshes the table's metadata and plans the increment; nothing is produced yet.
        inc = self.ctx.source.read(self.spark, position)
        if inc is None:
            _, schema_fields = self._check_schema(position)
            if position is not None and schema_fields and schema_fields["schema"] != position.get("schema"):
                self.positions.commit(self.ctx.position_key, {**position, **schema_fields})  # record the change
            return None
        # The schema checked is the increment's own, so the check and the rows cannot disagree.
        _, schema_fields = self._check_schema(position, inc.df.schema)  # raises SchemaDriftError
        for event in inc.events:
            log.info("%s", event)
        self.progress.set(state="producing", last=inc.description)
        self.progress.flush()
        conn = self.spec.connections.kafka
        before = sum(kafka.end_offsets(conn, self.spec.topic.name).values())
        # The rows are counted by the job that produces them (an observation; no second read).
        records, obs = counted_records(to_records(inc.df, self.spec.topic.key), self.record_limit)
        (
            fits(records, self.record_limit).write.format("kafka").options(**kafka.spark_options(conn))
            .options(**kafka.PRODUCER_OPTIONS).option("topic", self.spec.topic.name).mode("append").save()
        )  # fmt: skip
        rows, too_large = (int(obs.get["rows"]), int(obs.get["too_large"])) if complete(obs) else (None, None)
        if rows is None or too_large is None:
            rows = inc.df.count()
            too_large = too_large_records(to_records(inc.df, self.spec.topic.key), self.record_limit).count()
        if too_large:  # before the position moves: a record too large for Kafka is never silently dropped
            self._dead_letter_too_large(inc.df, inc.description)
            self.progress.add(too_large=too_large, **{"dead_letter.too_large": too_large})
        produced = sum(kafka.end_offsets(conn, self.spec.topic.name).values()) - before
        committed_ms = source_commit_ms(inc.position)
        if committed_ms is not None:  # leg 1: the source's commit of the newest row -> in Kafka
            self.progress.observe("latency.source_to_kafka", time.time() * 1000 - committed_ms, rows)
        fault_point("ingest.after_produce")
        # Only now, with every record acknowledged, does the position move.
        self.positions.commit(self.ctx.position_key, {**inc.position, **schema_fields, "committed_at": time.time()})
        return PollResult(rows, produced, inc.description, time.monotonic() - t0)

    def _dead_letter_too_large(self, df: DataFrame, increment: str) -> None:
        """Send the increment's records over the topic's size limit to the dead-letter topic (reason ``too_large``)."""
        from pyspark.sql import functions as F

        from headwater.streaming import dlq

        source = self.ctx.source.describe()
        big = too_large_records(to_records(df, self.spec.topic.key), self.record_limit)
        detail = F.concat(F.lit("record of key "), F.substring(F.col("key"), 1, 200), F.lit(" is "),
                          record_size().cast("string"), F.lit(f" bytes; topic '{self.spec.topic.name}' takes at most "
                                                              f"{self.record_limit} (max.message.bytes)"))  # fmt: skip
        bad = big.select(
            "key", F.col("value").cast("binary").alias("value"), F.lit(source).alias("_hw_topic"),
            F.lit(None).cast("int").alias("_hw_partition"), F.lit(None).cast("long").alias("_hw_offset"),
            F.lit(None).cast("timestamp").alias("_hw_kafka_ts"), F.lit("too_large").alias("_hw_error"),
            detail.alias("_hw_error_detail"),
        )  # fmt: skip
        position = F.concat_ws(":", F.lit(source), F.lit(increment), F.col("key"))
        d = self.spec.dead_letter
        kafka.ensure_topic(
            self.spec.connections.kafka, d.topic, d.partitions, d.replication, field="dead_letter.replication"
        )
        envelopes = dlq.envelopes(bad, self.spec.name, "ingest", position=position)
        dlq.write(envelopes, self.spec.connections.kafka, self.spec.dead_letter.topic)
        log.warning("%s: records over the size limit of topic %s went to %s", increment, self.spec.topic.name,
                    self.spec.dead_letter.topic)  # fmt: skip

    def _check_schema(
        self, position: dict[str, Any] | None, struct: StructType | None = None
    ) -> tuple[dict[str, str] | None, dict[str, Any]]:
        """Compare the source schema (``struct``, else read from the source) with the one recorded in ``position``.

        Returns the current schema (None when not checked: a finished snapshot) and the position
        fields to commit with the next position (``schema``, ``schema_changes``).

        Raises:
            SchemaDriftError: an incompatible change of a column the pipeline uses.
        """
        if position is not None and position.get("done"):
            return None, {}
        if struct is None:
            struct = self.ctx.source.schema(self.spark)
        current = drift.schema_of(struct)
        changes = list((position or {}).get("schema_changes") or [])
        recorded = (position or {}).get("schema")
        if isinstance(recorded, dict) and recorded != current:
            diff = drift.compare(recorded, current, drift.used_columns(self.spec), drift.required_columns(struct))
            source = self.ctx.source.describe()
            if not diff.compatible:
                self.progress.set(state="failed", last_error="incompatible source schema change")
                self.progress.flush()
                raise drift.SchemaDriftError(source, diff)
            if diff:
                log.warning("source schema of %s changed (compatible, ingest goes on):\n%s", source, diff.table())
                changes.append(diff.record(datetime.now(UTC).isoformat(timespec="seconds")))
                self.progress.add(schema_changes=1)
        return current, {"schema": current, "schema_changes": changes}

    def run(self, until_drained: bool = False) -> dict[str, Any]:
        """Poll until stopped (or, with ``until_drained``, until a poll finds nothing new).

        A poll that fails with a transient error (:func:`headwater.faults.classify`: Kafka or the
        metastore away) is retried with backoff, at most ``ingest.retries.max`` times within
        ``ingest.retries.within``; one more fails the stage with the last cause (RetriesExhausted). A
        permanent error fails it at once (PermanentError). The progress file then says ``failed``.
        """
        self.progress.set(state="preparing")
        self.progress.flush()
        self.prepare()
        poll = self.ctx.source.poll_seconds()
        bound = self.spec.ingest.retries
        budget = RetryBudget(bound.max, bound.within_seconds, self.clock)
        backoff = self.first_backoff
        self.progress.set(state="running")
        self.progress.flush()
        while not self.stop_event.is_set():
            try:
                result = self.poll_once()
                backoff = self.first_backoff
            except drift.SchemaDriftError:
                raise  # its own message and exit code; the progress file already says failed
            except Exception as exc:  # TransientError, or Spark/Py4J errors: the classifier decides
                fault = classify(exc)  # on the whole text: a JVM error's chain of causes included
                why = str(exc) if isinstance(exc, HeadwaterError) else first_line(exc)  # the root cause's line
                if not fault.transient:
                    raise self._failed(exc, PermanentError(f"ingest stage stopped ({fault.reason}): {why}")) from None
                if not budget.take():
                    raise self._failed(exc, RetriesExhausted(
                        f"ingest stage stopped after {bound.max} retries within {bound.within}: {why}"
                    )) from None  # fmt: skip
                self._retry_later(why, backoff)
                backoff = min(backoff * 2, 60)
                continue
            if result is None:
                if not until_drained and self.warm_up_due():
                    self.warm_up()
                    continue  # poll again at once: data may have come during the warm-up
                self.progress.set(state="idle")
                self.progress.flush()
                if until_drained:
                    break
                self.stop_event.wait(poll)
                continue
            if result.produced:  # an empty increment (a snapshot of an empty table) creates no producer
                self.last_produced = self.clock()
            self.progress.add(polls=1, rows_read=result.rows, records_produced=result.produced,
                              busy_seconds=result.seconds)  # fmt: skip
            self.progress.observe("poll", result.seconds * 1000)
            self.progress.set(state="running", last=result.description)
            self.progress.flush()
            log.info("%s: %d rows -> %d records in %.1fs", result.description, result.rows, result.produced,
                     result.seconds)  # fmt: skip
        self.positions.close()
        self.progress.set(state="drained" if until_drained else "stopped")
        self.progress.flush()
        return dict(self.progress.data)

    def warm_up_due(self) -> bool:
        """Idle, and the producer never used or unused long enough for Spark to evict it (:mod:`warm`)."""
        if not self.warm_up_enabled:
            return False
        return self.last_produced is None or self.clock() - self.last_produced >= warm.PRODUCER_KEEPALIVE_SECONDS

    def warm_up(self) -> None:
        """Rehearse an increment (sample read, serialization, one tombstone to the state topic) while idle."""
        if self.last_produced is None:
            line = warm.rehearse(self.spark, self.ctx, self.record_limit)
        else:
            line = warm.keep_producer(self.spark, self.ctx)
        self.last_produced = self.clock()
        self.progress.set(rehearsal=line)
        log.info("%s", line)

    def _failed(self, cause: BaseException, error: HeadwaterError) -> HeadwaterError:
        """Record ``error`` as the stage's final state (a headwater error ``cause`` keeps its own type)."""
        final = cause if isinstance(cause, HeadwaterError) and not isinstance(cause, TransientError) else error
        self.progress.set(state="failed", last_error=str(error))
        self.progress.flush()
        log.error("%s", error)
        return final

    def _retry_later(self, why: str, delay: float) -> None:
        log.warning("ingest: transient error, retrying in %.0fs: %s", delay, why)
        self.progress.add(retries=1)
        self.progress.set(state="retrying", last_error=why)
        self.progress.flush()
        self.stop_event.wait(delay)


def source_commit_ms(position: dict[str, Any]) -> float | None:
    """When the newest row of an increment was committed at the source (epoch ms), if its position says.

    The watermark when it is a timestamp (naive ones are local time, as Spark writes them); None
    for numeric watermarks and partition-only positions.
    """
    value = position.get("watermark")
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value).timestamp() * 1000
    except ValueError:
        return None
