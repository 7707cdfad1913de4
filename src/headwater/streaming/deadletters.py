"""Routing a micro-batch's failed records to the pipeline's dead-letter topic.

Three kinds reach it: records that failed to decode or an expectation (``decode``), rows a
transform marked with ``_hw_error`` (``transform``, or ``window`` for late rows), and records a
sink rejected (``sink``). The envelopes are built by :mod:`headwater.streaming.dlq`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING

from headwater.streaming import decode as dec
from headwater.streaming import dlq
from headwater.streaming.failed_rows import dead_letter_rows

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from headwater.spec.models import PipelineSpec
    from headwater.streaming.fanout import BatchWrite


class DeadLetterRouter:
    """Sends one pipeline's failed records to its dead-letter topic."""

    def __init__(self, spec: PipelineSpec, spark: Callable[[], SparkSession]) -> None:
        self.spec = spec
        self.spark = spark

    def bad(self, decoded: DataFrame) -> None:
        """Send the records of ``decoded`` that failed to decode or an expectation."""
        self.send(dlq.envelopes(dec.bad_records(decoded), self.spec.name, "decode"))

    def send(self, envelopes: DataFrame) -> None:
        """Append envelope rows to the dead-letter topic."""
        dlq.write(envelopes, self.spec.connections.kafka, self.spec.dead_letter.topic)

    def marked(self, frames: list[DataFrame], decoded: DataFrame | None, stage: str) -> int:
        """Send rows marked with ``_hw_error`` to the dead-letter topic; returns how many were sent."""
        if not frames:
            return 0
        rows = functools.reduce(lambda a, b: a.unionByName(b, allowMissingColumns=True), frames)
        env = dlq.envelopes(dead_letter_rows(rows, decoded), self.spec.name, stage).persist()
        try:
            n = env.count()
            if n:
                self.send(env)
        finally:
            env.unpersist()
        return n

    def rejected(self, result: BatchWrite) -> int:
        """Dead-letter the records the sinks rejected; returns how many."""
        rejected = result.rejected()
        if rejected:
            self.send(dlq.rejected_envelopes(self.spark(), rejected, self.spec.name, self.spec.topic.name))
        return len(rejected)
