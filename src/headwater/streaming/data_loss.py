"""Records gone from Kafka (retention, deletion) before the process stage read them.

Spark's Kafka source notices such a gap only while it reads, and names one partition at best. The
stage instead compares what each query's checkpoint reads next with every partition's log start
offset, so the loss is named exactly, all partitions at once, before any record is read.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from headwater import kafka
from headwater.errors import DataLossError
from headwater.streaming import checkpoint as offset_log

if TYPE_CHECKING:
    import threading

    from pyspark.sql import SparkSession

    from headwater.observability.progress import ProgressFile
    from headwater.spec.models import PipelineSpec

log = logging.getLogger("headwater.process")


@dataclass(frozen=True)
class LostRange:
    """Offsets ``first..last`` (inclusive) of one partition, gone from Kafka before they were read."""

    partition: int
    first: int
    last: int

    @property
    def records(self) -> int:
        """How many offsets the range spans."""
        return self.last - self.first + 1

    def describe(self) -> str:
        """``partition 0: offsets 0..499``."""
        return f"partition {self.partition}: offsets {self.first}..{self.last}"

    def as_dict(self) -> dict[str, int]:
        """The range as the progress file stores it."""
        return {"partition": self.partition, "first": self.first, "last": self.last}


def lost_ranges(next_offsets: dict[int, int], log_start: dict[int, int]) -> list[LostRange]:
    """Per partition, the offsets between the next one to read and the first one Kafka still has."""
    return [
        LostRange(p, nxt, log_start[p] - 1)
        for p, nxt in sorted(next_offsets.items())
        if p in log_start and log_start[p] > nxt >= 0
    ]


def merge(ranges: list[LostRange]) -> list[LostRange]:
    """One range per partition covering every given range of it (the queries of stateful mode)."""
    by_partition: dict[int, LostRange] = {}
    for r in ranges:
        old = by_partition.get(r.partition)
        by_partition[r.partition] = r if old is None else LostRange(
            r.partition, min(old.first, r.first), max(old.last, r.last)
        )  # fmt: skip
    return [by_partition[p] for p in sorted(by_partition)]


def message(topic: str, ranges: list[LostRange]) -> str:
    """The one-line error of ``on_data_loss: fail``."""
    total = sum(r.records for r in ranges)
    return (
        f"topic {topic} {', '.join(r.describe() for r in ranges)} are no longer in Kafka (retention or "
        f"deletion): {total:,} records lost before the process stage read them; set "
        "process.on_data_loss: skip to continue past them"
    )


def next_offsets(spark: Any, checkpoint: str, topic: str) -> dict[int, int] | None:
    """Per partition, the next offset the query of ``checkpoint`` reads; None for a query not started yet.

    That is the end of the last committed batch (``offsets/<last of commits/>``), else the initial
    offsets (``sources/0/0``). A batch planned but not committed is replayed from that same point.
    """
    commits = [int(name) for name in offset_log.list_names(spark, f"{checkpoint}/commits") if name.isdigit()]
    path = f"{checkpoint}/offsets/{max(commits)}" if commits else f"{checkpoint}/sources/0/0"
    text = offset_log.read_text(spark, path)
    return None if text is None else offset_log.source_offsets(text, topic)


class DataLossGuard:
    """The process stage's guard against records gone from Kafka before it read them (``process.on_data_loss``).

    Composed into the stage with what it needs: the spec, a way to the SparkSession (to read the
    checkpoints), the checkpoints of the stage's queries, and the progress file it records skipped
    ranges in (under the stage's lock).
    """

    def __init__(self, spec: PipelineSpec, spark: Callable[[], SparkSession], checkpoints: Callable[[], list[str]],
                 progress: ProgressFile, lock: threading.Lock) -> None:  # fmt: skip
        self.spec = spec
        self.spark = spark
        self.checkpoints = checkpoints
        self.progress = progress
        self.lock = lock
        self.lost: dict[tuple[int, int], int] = {}  # on_data_loss skip: (partition, first) -> last offset lost

    def check(self) -> None:
        """Compare where each query's checkpoint reads next with the topic's log start offsets.

        Records gone in between aged out (or were deleted) before the stage read them. With
        ``on_data_loss: fail`` that stops the stage; with ``skip`` the ranges are recorded and the
        query goes on past them.

        Raises:
            DataLossError: records were lost and ``on_data_loss`` is ``fail``; names every range.
            TransientError: Kafka did not answer.
        """
        topic = self.spec.topic.name
        log_start = kafka.start_offsets(self.spec.connections.kafka, topic)
        found: list[LostRange] = []
        for checkpoint in self.checkpoints():
            found += lost_ranges(next_offsets(self.spark(), checkpoint, topic) or {}, log_start)
        ranges = merge(found)
        if not ranges:
            return
        if self.spec.process.on_data_loss == "fail":
            raise DataLossError(message(topic, ranges))
        self.note(ranges)

    def note(self, ranges: list[LostRange]) -> None:
        """Record ranges skipped under ``on_data_loss: skip`` (each offset counted once)."""
        for r in ranges:
            before = self.lost.get((r.partition, r.first), r.first - 1)
            if r.last <= before:
                continue
            self.lost[(r.partition, r.first)] = r.last
            log.warning("on_data_loss skip: topic %s %s no longer in Kafka; skipped", self.spec.topic.name,
                        r.describe())  # fmt: skip
            with self.lock:
                self.progress.add(records_lost=r.last - before)
                self.progress.set(data_loss=[
                    LostRange(p, first, last).as_dict() for (p, first), last in sorted(self.lost.items())
                ])  # fmt: skip
                self.progress.flush()
