"""Per micro-batch Kafka offset ranges and watermarks of the stateful main query, read from its checkpoint.

The process stage's side query uses them to find, per row, the rows a window drops as late (see
:class:`headwater.transforms.base.Transform.late_condition`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from headwater.transforms.base import Transform


log = logging.getLogger("headwater.process")


class BatchWatermarks:
    """Per micro-batch of a streaming query: the Kafka offset range it read and the watermark it dropped by.

    Read from the query's offset log (``<checkpoint>/offsets/<batchId>``: ``v1``, metadata JSON with
    ``batchWatermarkMs``, then the source offsets ``{"topic": {"partition": end offset}}``), which
    Spark writes before it runs a batch and keeps across restarts. Batch N read the offsets from
    the end of batch N-1 to its own end; Spark drops the late rows of batch N against the watermark
    of batch N-1 (so the rows of batch 0 are never late).

    Limits: exact for one Kafka source and one watermark (:func:`watermarked` enforces one per
    query). Spark keeps the last 100 offset-log entries (``spark.sql.streaming.minBatchesToRetain``)
    and this class the last :attr:`KEEP`: rows of a batch whose entry, or that of the batch before,
    is gone (a side query more than that many batches behind) are not recognised as late.
    """

    KEEP = 200

    def __init__(self, spark: SparkSession, checkpoint: str, topic: str) -> None:
        self.spark = spark
        self.path = checkpoint.rstrip("/") + "/offsets"
        self.topic = topic
        self.batches: dict[int, tuple[int, dict[int, int]]] = {}  # id -> (watermark ms, end offsets)
        self._floor = 0  # entries below this id were dropped (bounded memory)

    def refresh(self) -> None:
        """Read the offset-log entries not read yet (entries are immutable once written)."""
        from headwater.streaming import checkpoint as offset_log

        for name in offset_log.list_names(self.spark, self.path):
            if not name.isdigit() or int(name) in self.batches or int(name) < self._floor:
                continue
            text = offset_log.read_text(self.spark, f"{self.path}/{name}")
            if text is None:
                continue
            ends = offset_log.source_offsets(text, self.topic)
            self.batches[int(name)] = (offset_log.batch_watermark_ms(text), ends)
        if self.batches:
            self._floor = max(self._floor, max(self.batches) - self.KEEP)
            self.batches = {b: v for b, v in self.batches.items() if b >= self._floor}

    def covers(self, last_offsets: dict[int, int]) -> bool:
        """Whether the query has planned batches up to (and including) these offsets per partition."""
        self.refresh()
        if not self.batches:
            return False
        ends = self.batches[max(self.batches)][1]
        return all(ends.get(p, 0) > off for p, off in last_offsets.items())

    def wait(self, last_offsets: dict[int, int], alive: Callable[[], bool], poll: float = 0.5) -> None:
        """Block until :meth:`covers`; RuntimeError once ``alive()`` is false (the caller's batch is replayed)."""
        while not self.covers(last_offsets):
            if not alive():
                raise RuntimeError("the main query stopped before reading these records; the batch is replayed")
            time.sleep(poll)

    def ranges(self) -> list[tuple[int, int, int, int]]:
        """(partition, first offset, end offset, watermark ms that batch dropped late rows by)."""
        out: list[tuple[int, int, int, int]] = []
        for bid, (_, ends) in sorted(self.batches.items()):
            if bid == 0:
                out.extend((p, 0, end, 0) for p, end in ends.items())
                continue
            prev = self.batches.get(bid - 1)
            if prev is None:
                continue
            out.extend((p, prev[1].get(p, 0), end, prev[0]) for p, end in ends.items() if end > prev[1].get(p, 0))
        return out

    def mark_late(self, df: DataFrame, window: Transform) -> DataFrame:
        """Rows of ``df`` (with ``_hw_partition``/``_hw_offset``) Spark drops as late, with ``_hw_error*`` set.

        Rows outside the known ranges are not late (see the limits above).
        """
        from pyspark.sql import functions as F

        ranges = self.ranges()
        if not ranges:
            return (
                df.limit(0)
                .withColumn("_hw_error", F.lit(None).cast("string"))
                .withColumn("_hw_error_detail", F.lit(None).cast("string"))
            )
        r = self.spark.createDataFrame(ranges, "_p int, _lo long, _hi long, _wm long")
        on = (F.col("_hw_partition") == r["_p"]) & (F.col("_hw_offset") >= r["_lo"]) & (F.col("_hw_offset") < r["_hi"])
        joined = df.join(F.broadcast(r), on, "inner")
        late = joined.where(window.late_condition(F.col("_wm")))
        return late.select(
            *[F.col(f"`{c}`") for c in df.columns], F.lit("late_data").alias("_hw_error"),
            window.late_detail(F.col("_wm")).alias("_hw_error_detail"),
        )  # fmt: skip
