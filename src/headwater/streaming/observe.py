"""Count a micro-batch while the sink writes it, so the batch is read and decoded once.

The process stage's one-pass path attaches a Spark ``Observation`` to the decoded records: the
metrics (records in, bad records, an approximate histogram of the good records' Kafka timestamps,
the positions of the bad records) arrive with the sink's own job. No cache and no extra job; and
because the JVM decodes while the Python writer waits for the store, decoding and writing overlap.

The observation also keeps the filter that picks the good records above the decode: pushed below
it, Spark would inline the error expression, and its JSON parses, once per reference.

The bad records are few; only their positions travel to the driver, and :func:`bad_records_at`
reads just those back to dead-letter them: straight from Kafka by offset when there are a few
(milliseconds), else from the micro-batch by a semi-join (one more read of the batch from Kafka;
still no decode of the good records).
"""

from __future__ import annotations

import functools
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from headwater.records import complete as complete  # re-exported: the stage asks here
from headwater.streaming.decode import ERROR

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, Observation

    from headwater.spec.connections import KafkaConnection

HISTOGRAM_BINS = 64
DIRECT_FETCH_MAX = 500  # bad records per batch read back by offset with a plain consumer


@dataclass
class BatchCounts:
    """What the observation saw: records, bad ones (and where), Kafka timestamps of the good ones."""

    rows: int
    bad: int
    timestamps_ms: list[tuple[float, int]] = field(default_factory=list)  # (centre, records) per bin
    bad_positions: list[tuple[int, int]] = field(default_factory=list)  # (partition, offset)
    reasons: dict[str, int] = field(default_factory=dict)  # bad records per reason code


def counted(decoded: DataFrame, reasons: bool = True) -> tuple[DataFrame, Observation]:
    """``decoded`` with an observation of its records attached (read it after an action).

    ``reasons``: also collect the reason code of each bad record (off only to measure its cost).
    """
    from pyspark.sql import Observation

    obs = Observation(f"headwater_batch_{uuid.uuid4().hex}")
    return decoded.observe(obs, *_metrics(reasons, decoded.sparkSession.sparkContext.applicationId)), obs


@functools.lru_cache(maxsize=4)
def _metrics(reasons: bool, app_id: str) -> tuple[Column, ...]:
    """The observation's metrics, built once per SparkContext (``app_id``): they are JVM objects."""
    from pyspark.sql import functions as F

    bad = F.col(ERROR).isNotNull()
    ts_ms = F.col("_hw_kafka_ts").cast("double") * 1000
    metrics = [
        F.count(F.lit(1)).alias("rows"),
        F.count_if(bad).alias("bad"),
        F.histogram_numeric(F.when(~bad, ts_ms), F.lit(HISTOGRAM_BINS)).alias("ts"),
        F.collect_list(F.when(bad, F.struct("_hw_partition", "_hw_offset"))).alias("positions"),
    ]
    if reasons:
        metrics.append(F.collect_list(F.when(bad, F.col(ERROR))).alias("reasons"))
    return tuple(metrics)


def fenced(df: DataFrame) -> DataFrame:
    """``df`` behind a metrics node, for streaming frames (an ``Observation`` only takes batches).

    Spark pushes no filter through it: below, the decode projection is computed once; without it
    the good-records filter lands below the decode and inlines its JSON parses per reference.
    """
    from pyspark.sql import functions as F

    return df.observe(f"headwater_fence_{uuid.uuid4().hex[:8]}", F.count(F.lit(1)).alias("rows"))


def stamped(df: DataFrame) -> tuple[DataFrame, Observation]:
    """``df`` with a histogram of its ``_hw_kafka_ts`` observed (stateful mode: rows leaving the state)."""
    from pyspark.sql import Observation
    from pyspark.sql import functions as F

    obs = Observation(f"headwater_stamps_{uuid.uuid4().hex}")
    ts_ms = F.col("_hw_kafka_ts").cast("double") * 1000
    return df.observe(obs, F.histogram_numeric(ts_ms, F.lit(HISTOGRAM_BINS)).alias("ts")), obs


def timestamps(obs: Observation) -> list[tuple[float, int]]:
    """(centre ms, records) per bin of a completed :func:`stamped` observation; [] if none ran."""
    if not complete(obs):
        return []
    return _bins(obs.get.get("ts"))


def read(obs: Observation) -> BatchCounts:
    """The metrics of a completed observation."""
    m = obs.get
    bins = _bins(m.get("ts"))
    positions = [(int(p["_hw_partition"]), int(p["_hw_offset"])) for p in (m.get("positions") or [])]
    reasons: dict[str, int] = {}
    for r in m.get("reasons") or []:
        reasons[str(r)] = reasons.get(str(r), 0) + 1
    return BatchCounts(int(m["rows"]), int(m["bad"]), bins, positions, reasons)


def _bins(histogram: Any) -> list[tuple[float, int]]:
    """(centre, records) per bin of a ``histogram_numeric`` result."""
    return [(float(b["x"]), round(float(b["y"]))) for b in (histogram or [])]


def bad_records_at(batch: DataFrame, conn: KafkaConnection, topic: str,
                   positions: list[tuple[int, int]]) -> DataFrame:  # fmt: skip
    """The Kafka rows of ``batch`` at ``positions`` (columns as Spark's Kafka source gives them)."""
    if len(positions) <= DIRECT_FETCH_MAX:
        rows = fetch_by_offset(conn, topic, positions)
        if rows is not None:
            return batch.sparkSession.createDataFrame(rows, batch.select(*_KAFKA_COLUMNS).schema)
    return at_positions(batch, positions).select(*_KAFKA_COLUMNS)


_KAFKA_COLUMNS = ["key", "value", "topic", "partition", "offset", "timestamp"]


def fetch_by_offset(conn: KafkaConnection, topic: str, positions: list[tuple[int, int]],
                    timeout: float = 30.0) -> list[tuple[Any, ...]] | None:  # fmt: skip
    """Read the records at ``positions`` with one consumer; None if one is not there any more."""
    from datetime import UTC, datetime

    from confluent_kafka import Consumer, TopicPartition

    from headwater.kafka import client_config

    consumer = Consumer(client_config(conn, **{"group.id": "headwater-dlq-readback", "enable.auto.commit": False}))
    out = []
    try:
        for partition, offset in sorted(positions):
            consumer.assign([TopicPartition(topic, partition, offset)])
            deadline = time.monotonic() + timeout
            msg = None
            while msg is None and time.monotonic() < deadline:
                msg = consumer.poll(1.0)
                if msg is not None and msg.error():
                    return None
            if msg is None or msg.offset() != offset:
                return None
            ts = datetime.fromtimestamp(msg.timestamp()[1] / 1000, UTC)
            out.append((msg.key(), msg.value(), topic, partition, offset, ts))
    finally:
        consumer.close()
    return out


def at_positions(batch: DataFrame, positions: list[tuple[int, int]]) -> DataFrame:
    """The Kafka rows of ``batch`` at ``positions``, materialized (a broadcast semi-join).

    Materialized so that whatever is planned on top (decode, then a filter on its error column)
    runs on these rows only: a filter would otherwise be pushed below the join, onto every row.
    """
    from pyspark.sql import functions as F

    wanted = batch.sparkSession.createDataFrame(positions, "partition int, offset long")
    return batch.join(F.broadcast(wanted), ["partition", "offset"], "left_semi").localCheckpoint(eager=True)
