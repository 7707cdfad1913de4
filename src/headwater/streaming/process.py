"""The process stage: one Structured Streaming query per pipeline, Kafka -> decode -> transforms -> sink.

Every micro-batch (``foreachBatch``):
1. decodes the records (bad ones get a reason code, see :mod:`headwater.streaming.decode`);
2. applies the spec's transforms to the good ones and writes them to the sink (idempotent);
3. writes the bad ones (and any the sink rejected) to the dead-letter topic;
4. only then does Spark commit the batch. A crash anywhere replays the whole batch with the same
   offsets; the idempotent sink and the position-keyed dead letters absorb the replay.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from headwater import kafka
from headwater.errors import ConfigError, NotFoundError
from headwater.observability.progress import LatencyHistogram, ProgressFile
from headwater.streaming import decode as dec
from headwater.streaming import dlq
from headwater.testing import fault_point

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.streaming import StreamingQuery
    from pyspark.sql.types import StructType

    from headwater.context import PipelineContext

log = logging.getLogger("headwater.process")


class ProcessStage:
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
        self._lock = threading.Lock()

    @property
    def spark(self) -> SparkSession:
        if self._spark is None:
            self._spark = self.ctx.spark("process")
        return self._spark

    def record_schema(self) -> StructType:
        """The declared schema (spec ``schema``), else the source's."""
        from pyspark.sql.types import StructType

        if self.spec.schema_:
            ddl = ", ".join(f"`{k}` {v}" for k, v in self.spec.schema_.items())
            self.spark  # noqa: B018 - fromDDL needs a live session
            try:
                return StructType.fromDDL(ddl)
            except Exception as exc:  # noqa: BLE001 - Spark's parse error, made readable
                raise ConfigError(f"schema: cannot parse as Spark SQL types ({ddl}): {exc}") from None
        return self.ctx.source.schema(self.spark)

    def prepare(self) -> None:
        """Check Kafka and the topic, create the dead-letter topic and the sink table, dry-run the plan."""
        from headwater.sinks.rowkey import RowKeyTemplate

        conn = self.spec.connections.kafka
        kafka.check_reachable(conn)
        topics = kafka.admin(conn).list_topics(timeout=10).topics
        if self.spec.topic.name not in topics:
            raise NotFoundError(
                f"topic.name: Kafka topic '{self.spec.topic.name}' not found at {conn.bootstrap_servers}; "
                "run the ingest stage first (it creates the topic)"
            )
        d = self.spec.dead_letter
        kafka.ensure_topic(conn, d.topic, d.partitions, getattr(d, "replication", 1))
        self.schema = self.record_schema()
        row_key_fields = RowKeyTemplate.parse(self.spec.sink.row_key).fields if hasattr(self.spec.sink, "row_key") else []
        self.required = list(dict.fromkeys([*self.spec.topic.key, *row_key_fields]))
        # Dry run: transforms over an empty frame must yield what the sink needs (fails before any data).
        empty = self.spark.createDataFrame([], self.schema)
        for meta, typ in (("_hw_topic", "string"), ("_hw_partition", "int"), ("_hw_offset", "bigint"),
                          ("_hw_kafka_ts", "timestamp")):  # fmt: skip
            from pyspark.sql import functions as F

            empty = empty.withColumn(meta, F.lit(None).cast(typ))
        out = self._transform(empty)
        if hasattr(self.ctx.sink, "describe"):
            self.ctx.sink.describe(out.schema)
        self.ctx.sink.prepare()

    def _transform(self, df: DataFrame) -> DataFrame:
        for t in self.ctx.transforms:
            df = t.apply(df)
        return df

    # --- one micro-batch ------------------------------------------------------------------------
    def process_batch(self, batch: DataFrame, batch_id: int) -> None:
        from pyspark import StorageLevel
        from pyspark.sql import functions as F

        assert self.schema is not None
        t0 = time.time()
        decoded = dec.decode(batch, self.schema, self.required).persist(StorageLevel.MEMORY_AND_DISK)
        try:
            bucket = (F.col("_hw_kafka_ts").cast("double") * 100).cast("long")
            stats = decoded.groupBy(F.col(dec.ERROR).isNull().alias("ok"), bucket.alias("b")).count().collect()
            rows_in = sum(r["count"] for r in stats)
            bad = sum(r["count"] for r in stats if not r["ok"])
            result: dict[str, Any] = {"rows": 0, "written": 0, "deduped": 0, "rejected": []}
            if rows_in - bad > 0:
                result = self.ctx.sink.write(self._transform(dec.good_records(decoded, self.schema)))
            written_at = time.time()
            if bad:
                dlq.write(dlq.envelopes(dec.bad_records(decoded), self.spec.name, "decode"),
                          self.spec.connections.kafka, self.spec.dead_letter.topic)  # fmt: skip
            rejected = result.get("rejected", [])
            if rejected:
                env = dlq.rejected_envelopes(self.spark, rejected, self.spec.name, self.spec.topic.name)
                dlq.write(env, self.spec.connections.kafka, self.spec.dead_letter.topic)
        finally:
            decoded.unpersist()
        fault_point("process.after_sink")
        with self._lock:
            for r in stats:
                if r["ok"]:
                    self.latency.record(written_at * 1000 - r["b"] * 10 - 5, r["count"])
            self.progress.add(
                batches=1, rows_in=rows_in, rows_written=result.get("written", 0),
                rows_deduped=result.get("deduped", 0), dead_lettered=bad + len(rejected),
                filtered=max(0, rows_in - bad - result.get("rows", 0)), write_calls=result.get("calls", 0),
                write_retries=result.get("retries", 0), busy_seconds=time.time() - t0,
            )  # fmt: skip
            self.progress.set(last_batch=batch_id, latency_ms=self.latency.to_list(),
                              p50_ms=self.latency.percentile(0.5), p99_ms=self.latency.percentile(0.99))  # fmt: skip
            self.progress.flush()
        log.info("batch %d: %d in, %d written, %d dead-lettered in %.2fs", batch_id, rows_in,
                 result.get("written", 0), bad + len(rejected), time.time() - t0)  # fmt: skip

    # --- the query ------------------------------------------------------------------------------
    def start(self, available_now: bool = False) -> StreamingQuery:
        p = self.spec.process
        reader = (
            self.spark.readStream.format("kafka").options(**kafka.spark_options(self.spec.connections.kafka))
            .option("subscribe", self.spec.topic.name).option("startingOffsets", p.starting_offsets)
            .option("failOnDataLoss", "true")
        )  # fmt: skip
        if p.max_offsets_per_trigger:
            reader = reader.option("maxOffsetsPerTrigger", str(p.max_offsets_per_trigger))
        writer = reader.load().writeStream.foreachBatch(self.process_batch)
        writer = writer.option("checkpointLocation", self.ctx.checkpoint).queryName(f"headwater_{self.spec.name}")
        writer = writer.trigger(availableNow=True) if available_now else writer.trigger(processingTime=p.trigger)
        return writer.start()

    def lag(self, query: StreamingQuery) -> tuple[int, dict[int, int]]:
        """(total lag, end offsets) of the topic against what the query has committed."""
        ends = kafka.end_offsets(self.spec.connections.kafka, self.spec.topic.name)
        done = committed_offsets(query, self.spec.topic.name)
        return sum(max(0, end - done.get(p, 0)) for p, end in ends.items()), ends

    def run(self, until_drained: bool = False, upstream_done: Callable[[], bool] | None = None) -> dict[str, Any]:
        """Run until stopped; with ``until_drained``, until upstream is done and the lag is 0."""
        self.progress.set(state="preparing")
        self.progress.flush()
        self.prepare()
        query = self.start()
        self.progress.set(state="running", query_id=str(query.id), checkpoint=self.ctx.checkpoint)
        self.progress.flush()
        try:
            while not self.stop_event.wait(1.0):
                if not query.isActive:
                    exc = query.exception()
                    raise RuntimeError(f"streaming query stopped: {exc}")
                lag, _ = self.lag(query)
                with self._lock:
                    self.progress.set(lag=lag, input_rate=_rate(query))
                    self.progress.flush()
                if until_drained and lag == 0 and (upstream_done is None or upstream_done()):
                    if not query.status["isTriggerActive"] and self.lag(query)[0] == 0:
                        break
        finally:
            query.stop()
        self.progress.set(state="drained" if until_drained else "stopped")
        self.progress.flush()
        return dict(self.progress.data)


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
