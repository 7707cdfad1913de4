"""The idle warm-up leaves Python workers with the sinks' modules imported, and the next job runs in them."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from headwater.streaming.warm import python_workers

pytestmark = pytest.mark.spark

MODULE = "wave"  # a stdlib module nothing in a Spark worker imports by itself


def _workers(spark: Any) -> list[tuple[int, bool]]:
    """(pid, MODULE imported) of the Python worker that ran each task of a one-row-per-core job."""
    tasks = spark.sparkContext.defaultParallelism

    def probe(batches: Iterator[Any]) -> Iterator[Any]:
        import pyarrow as pa

        for _ in batches:
            yield pa.RecordBatch.from_pydict({"pid": [os.getpid()], "has": [MODULE in sys.modules]})

    rows = spark.range(0, tasks, 1, tasks).mapInArrow(probe, "pid long, has boolean").collect()
    return [(r["pid"], r["has"]) for r in rows]


def test_warm_workers_have_the_modules_and_serve_the_next_job(spark: Any) -> None:
    before = _workers(spark)
    assert before and not any(has for _, has in before)  # the oracle can tell: not imported yet
    assert all(pid != os.getpid() for pid, _ in before)  # the probe runs in worker processes

    assert python_workers(spark, [MODULE]) == spark.sparkContext.defaultParallelism

    after = _workers(spark)
    assert after and all(has for _, has in after)  # the next job ran in workers the warm-up prepared
