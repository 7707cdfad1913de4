"""Have a process stage's Python workers started before its first data comes.

Measured (benchmarks/latency_bench.py, loaded machine): the first micro-batch with data in a new
process stage took 20 s where the next took 3 s; starting the Python workers of local[2] with
pyarrow, numpy and the HBase writer imported took 14 s cold and 2 s warm (the same job, run twice),
and an empty micro-batch does not do it: Spark runs no task for a Kafka batch without new offsets,
and no Python function for an empty partition. :func:`python_workers` runs a one-row job per core
whose Python function imports what the sinks' executor code imports; the workers it starts are the
ones the next batch reuses (they were still there after 65 s idle: Spark reaps idle workers only
when it needs a new one). The stage runs it once when it starts; it writes nothing anywhere.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

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
        log.warning("warm-up of the Python workers failed (the next batch starts them): %s", str(exc)[:300])
        return False
