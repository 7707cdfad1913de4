"""The process stage's execution strategies: how its queries are built and what a micro-batch does.

Two strategies, chosen once when the stage is built:

- :class:`~headwater.streaming.stateless.StatelessExecution`: one query; each micro-batch decodes,
  checks, transforms, writes the sinks and dead-letters inside ``foreachBatch``.
- :class:`~headwater.streaming.stateful.StatefulExecution` (a transform keeps state): a main query
  whose transforms run on the stream, and a side query for the dead letters.

Both are given the same already-built collaborators (:class:`StageParts`): they write sinks through
the fan-out, dead letters through the router and figures through the report, and own nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from headwater import kafka
from headwater.streaming.failed_rows import split_errors

if TYPE_CHECKING:
    import threading
    from collections.abc import Callable

    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.streaming import StreamingQuery  # type: ignore[attr-defined]

    from headwater.context import PipelineContext
    from headwater.spec.models import PipelineSpec
    from headwater.streaming.deadletters import DeadLetterRouter
    from headwater.streaming.decode import RecordDecoder
    from headwater.streaming.fanout import SinkFanOut
    from headwater.streaming.report import StageReport


class Execution(Protocol):
    """What the process stage asks of an execution strategy."""

    def checkpoints(self) -> list[str]:
        """The checkpoint of every query the strategy runs."""
        ...

    def plan(self, decoder: RecordDecoder, empty: DataFrame) -> None:
        """Take the decoder and check the plan on an empty decoded frame (before any data)."""
        ...

    def start(self, available_now: bool = False) -> list[StreamingQuery]:
        """Start the queries (the main one first); ``available_now``: read what is there, then end."""
        ...

    @property
    def rehearses(self) -> bool:
        """Whether :meth:`rehearse` may run (see :mod:`headwater.streaming.warm`)."""
        ...

    def rehearse(self, batch: DataFrame) -> None:
        """Run a micro-batch's work over ``batch`` (synthetic Kafka rows), writing nothing anywhere."""
        ...

    def tick(self) -> None:
        """Called about once a second while the queries run."""
        ...

    def stopping(self) -> None:
        """Called before the queries are stopped."""
        ...


@dataclass
class StageParts:
    """The collaborators an execution strategy is built with (built once by the stage)."""

    ctx: PipelineContext
    spark: Callable[[], SparkSession]
    fanout: SinkFanOut
    dead_letters: DeadLetterRouter
    report: StageReport
    stop_event: threading.Event

    @property
    def spec(self) -> PipelineSpec:
        """The pipeline's spec."""
        return self.ctx.spec

    def transform(self, df: DataFrame, errors: list[DataFrame] | None = None,
                  cached: list[DataFrame] | None = None) -> DataFrame:  # fmt: skip
        """Apply the transforms; rows one marks with ``_hw_error`` go to ``errors`` (dropped if None)."""
        for t in self.ctx.transforms:
            df = split_errors(t.apply(df), errors, cached)
        return df

    def kafka_stream(self) -> DataFrame:
        """The pipeline's topic as a streaming DataFrame of Kafka rows."""
        p = self.spec.process
        reader = (
            self.spark().readStream.format("kafka").options(**kafka.spark_options(self.spec.connections.kafka))
            .option("subscribe", self.spec.topic.name).option("startingOffsets", p.starting_offsets)
            .option("failOnDataLoss", str(p.on_data_loss == "fail").lower())
        )  # fmt: skip
        if p.max_offsets_per_trigger:
            reader = reader.option("maxOffsetsPerTrigger", str(p.max_offsets_per_trigger))
        return reader.load()

    def trigger(self, writer: Any, available_now: bool) -> Any:
        """``writer`` with the spec's trigger (or once over what is available)."""
        if available_now:
            return writer.trigger(availableNow=True)
        return writer.trigger(processingTime=self.spec.process.trigger)
