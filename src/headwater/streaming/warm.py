"""Have a process stage warm before its first data comes: its Python workers, then its code paths.

Measured (benchmarks/latency_bench.py, loaded machine): the first micro-batch with data in a new
process stage took 20 s where the next took 3 s; starting the Python workers of local[2] with
pyarrow, numpy and the HBase writer imported took 14 s cold and 2 s warm (the same job, run twice),
and an empty micro-batch does not do it: Spark runs no task for a Kafka batch without new offsets,
and no Python function for an empty partition. :func:`python_workers` runs a one-row job per core
whose Python function imports what the sinks' executor code imports; the workers it starts are the
ones the next batch reuses (they were still there after 65 s idle: Spark reaps idle workers only
when it needs a new one). The stage runs it once when it starts; it writes nothing anywhere.

Warm workers are not a warm JVM: the first micro-batch still pays for Spark compiling its generated
code and the JIT compiling JSON parsing, Arrow and the projections. :func:`rehearse` runs the stage's
own micro-batch over synthetic records that fit the record schema (:func:`synthetic_batch`), with the
sinks rehearsing (:meth:`headwater.sinks.base.Sink.rehearse`: every encoding step, nothing sent) and no
dead letter sent. It runs only while no record waits to be read, so a backlog is never delayed by it.
"""

from __future__ import annotations

import importlib
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from headwater.errors import first_line

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession
    from pyspark.sql.types import DataType

    from headwater.streaming.decode import RecordDecoder

log = logging.getLogger("headwater.process")

BASE_MODULES = ("pyarrow", "numpy")


def python_workers(spark: SparkSession, modules: list[str]) -> int:
    """Start (or keep alive) one Python worker per core, each with ``modules`` imported; returns the workers run."""
    wanted = list(dict.fromkeys([*BASE_MODULES, *modules]))
    tasks = max(1, spark.sparkContext.defaultParallelism)

    def touch(batches: Iterator[Any]) -> Iterator[Any]:
        for name in wanted:
            importlib.import_module(name)
        yield from batches

    return len(spark.range(0, tasks, 1, tasks).mapInArrow(touch, "id long").collect())


def try_python_workers(spark: SparkSession, modules: list[str]) -> bool:
    """:func:`python_workers`, logging instead of raising (a warm-up is never the reason a stage stops)."""
    try:
        python_workers(spark, modules)
        return True
    except Exception as exc:  # the batch that follows meets the same trouble and reports it properly
        log.warning("warm-up of the Python workers failed (the next batch starts them): %s", first_line(exc))
        return False


# --- rehearsal: a micro-batch's code path over synthetic records ----------------------------------

REHEARSAL_RECORDS = 10_000  # per round; enough for the JIT to compile the per-record paths
REHEARSAL_ROUNDS = 3


def sample_column(dtype: DataType, i: Column) -> Column:
    """A non-null value of ``dtype`` for synthetic record ``i`` (a ``long`` column): valid, varied, typed."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    def bounded(limit: int) -> Column:
        return (i % limit).cast(dtype)

    if isinstance(dtype, T.StringType):
        return F.concat(F.lit("warm-up-"), i.cast("string"))
    if isinstance(dtype, T.BooleanType):
        return i % 2 == 0
    if isinstance(dtype, T.ByteType):
        return bounded(100)
    if isinstance(dtype, T.ShortType):
        return bounded(10_000)
    if isinstance(dtype, T.IntegerType | T.LongType):
        return i.cast(dtype)
    if isinstance(dtype, T.FloatType | T.DoubleType):
        return (i + F.lit(0.5)).cast(dtype)
    if isinstance(dtype, T.DecimalType):
        digits = dtype.precision - dtype.scale
        whole = i % (10 ** min(digits, 9)) if digits > 0 else F.lit(0)
        return (whole + F.lit(0.25)).cast(dtype)
    if isinstance(dtype, T.DateType):
        return F.date_sub(F.current_date(), (i % 1000).cast("int"))
    if isinstance(dtype, T.TimestampType | T.TimestampNTZType):
        return (F.current_timestamp().cast("double") + i / 1000).cast("timestamp").cast(dtype)
    if isinstance(dtype, T.BinaryType):
        return F.concat(F.lit("warm-up-"), i.cast("string")).cast("binary")
    if isinstance(dtype, T.ArrayType):
        return F.array(sample_column(dtype.elementType, i))
    if isinstance(dtype, T.MapType):
        return F.create_map(sample_column(dtype.keyType, i), sample_column(dtype.valueType, i))
    if isinstance(dtype, T.StructType):
        return F.struct(*[sample_column(f.dataType, i).alias(f.name) for f in dtype.fields])
    return F.lit(None).cast(dtype)  # a type without a sample: null (the field may be dropped as missing)


def synthetic_batch(spark: SparkSession, decoder: RecordDecoder, topic: str, key: list[str], n: int) -> DataFrame:
    """``n`` Kafka rows (key, value, topic, partition, offset, timestamp) whose values fit the decoder's schema.

    The values are JSON as the ingest stage writes them (:func:`headwater.records.to_records`), in as
    many partitions as the session has cores, so every Python worker takes part.
    """
    from pyspark.sql import functions as F

    from headwater.records import to_records

    parts = max(1, spark.sparkContext.defaultParallelism)
    i = F.col("id")
    fields = [f for f in decoder.schema.fields if f.name not in decoder.kafka_fields]
    typed = spark.range(0, n, 1, parts).select(*[sample_column(f.dataType, i).alias(f.name) for f in fields])
    records = to_records(typed, [k for k in key if k in typed.columns])
    return records.select(
        F.col("key").cast("binary").alias("key"), F.col("value").cast("binary").alias("value"),
        F.lit(topic).alias("topic"), (F.spark_partition_id()).alias("partition"),
        F.monotonically_increasing_id().alias("offset"), F.current_timestamp().alias("timestamp"),
        F.lit(0).alias("timestampType"),
    )  # fmt: skip


def records_waiting(end: dict[int, int], start: dict[int, int], next_offsets: dict[int, int] | None,
                    starting: str) -> int:  # fmt: skip
    """Records of the topic the stage has yet to read.

    ``next_offsets``: from the checkpoint (None before the query's first batch, which then starts at
    ``starting``: ``earliest`` or ``latest``); a partition it does not list starts at its log start.
    """
    if next_offsets is None:
        return sum(end.values()) - sum(start.values()) if starting == "earliest" else 0
    return sum(max(0, e - max(next_offsets.get(p, start.get(p, 0)), start.get(p, 0))) for p, e in end.items())


@dataclass(frozen=True)
class Rehearsal:
    """What a rehearsal did: rounds run and their seconds, or why it did not run."""

    rounds: list[float]
    skipped: str = ""

    def as_dict(self) -> dict[str, Any]:
        """For the progress file: ``rounds_s`` (seconds per round) and ``skipped`` (why not, or empty)."""
        return {"rounds_s": [round(s, 2) for s in self.rounds], "skipped": self.skipped}

    def describe(self) -> str:
        """One line for the stage's log."""
        if self.skipped:
            return f"no rehearsal: {self.skipped}"
        return "rehearsal rounds of synthetic records: " + ", ".join(f"{s:.2f}s" for s in self.rounds)


def rehearse(batch: Callable[[], DataFrame], run: Callable[[DataFrame], None], waiting: Callable[[], int],
             rounds: int = REHEARSAL_ROUNDS) -> Rehearsal:  # fmt: skip
    """Run ``rounds`` rehearsals of a micro-batch (``run``) over ``batch()`` while no record waits (``waiting()``).

    Stops as soon as records wait: the real batch warms the stage then, and must not queue behind a
    rehearsal.
    """
    took: list[float] = []
    for _ in range(rounds):
        pending = waiting()
        if pending:
            return Rehearsal(took, "" if took else f"{pending:,} records wait to be read")
        t0 = time.monotonic()
        run(batch())
        took.append(time.monotonic() - t0)
    return Rehearsal(took)


def try_rehearse(batch: Callable[[], DataFrame], run: Callable[[DataFrame], None], waiting: Callable[[], int],
                 rounds: int = REHEARSAL_ROUNDS) -> Rehearsal:  # fmt: skip
    """:func:`rehearse`, logging instead of raising (the first real batch meets the same trouble and reports it)."""
    try:
        return rehearse(batch, run, waiting, rounds)
    except Exception as exc:
        log.warning("rehearsal of a micro-batch failed (the first batch warms the stage): %s", first_line(exc))
        return Rehearsal([], f"failed: {first_line(exc, 120)}")
