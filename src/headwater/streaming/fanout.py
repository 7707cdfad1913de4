"""Writing one micro-batch to every sink of the pipeline.

The sinks write one after the other inside the micro-batch; the batch commits (Spark writes its
commit log entry) only after ``foreachBatch`` returns, so only when every sink has written it. A
sink that fails fails the batch for all: the query restarts from its checkpoint and replays the
batch into every sink, which each sink's ``guarantee`` absorbs (an idempotent store rewrites the same cells; a log
sink appends again, with the source position in each record for consumers to drop duplicates).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from headwater.observability.progress import ProgressFile
    from headwater.sinks.base import Sink, SinkResult


@dataclass
class BatchWrite:
    """What every sink did with one micro-batch, by sink name (spec order)."""

    results: dict[str, SinkResult]

    @property
    def primary(self) -> SinkResult:
        """The first sink's result: the stage-level counters (rows_written, ...) are its own."""
        return next(iter(self.results.values()))

    @property
    def rows(self) -> int:
        """Records given to the sinks (the same frame for all)."""
        return self.primary.rows

    def rejected(self) -> list[dict[str, Any]]:
        """Every sink's rejected records; with several sinks the message names the sink."""
        several = len(self.results) > 1
        return [{**r, "message": f"sink {name}: {r['message']}"} if several else r
                for name, result in self.results.items() for r in result.rejected]  # fmt: skip

    def record(self, progress: ProgressFile) -> None:
        """Add the batch to the stage counters (first sink) and to each sink's own counters."""
        p = self.primary
        progress.add(rows_written=p.written, rows_deduped=p.deduped,
                     write_calls=sum(r.calls for r in self.results.values()),
                     write_retries=sum(r.retries for r in self.results.values()))  # fmt: skip
        for name, result in self.results.items():
            progress.add_sink(name, **result.counters())


def empty_write(sinks: list[Sink]) -> BatchWrite:
    """The write of a batch with no record to write."""
    from headwater.sinks.base import SinkResult

    return BatchWrite({s.name: SinkResult() for s in sinks})


class SinkFanOut:
    """The pipeline's sinks, asked through the sink contract only."""

    def __init__(self, sinks: list[Sink]) -> None:
        self.sinks = sinks

    def required_fields(self) -> list[str]:
        """Fields every record must carry for some sink (e.g. a row key's)."""
        return list(dict.fromkeys(f for s in self.sinks for f in s.required_fields()))

    def prepare(self, records: DataFrame) -> None:
        """Check that the records (an empty frame of their schema) fit every sink, then create the targets."""
        from headwater.errors import ConfigError

        for s in self.sinks:
            try:
                frame = _selected(s, records)
            except Exception as exc:  # AnalysisException: the predicate names no such column, or is no SQL
                raise ConfigError(f"sink {s.name}: where {s.config.where!r}: {str(exc).splitlines()[0]}") from None
            s.check(frame.schema)
        for s in self.sinks:
            s.prepare()

    def write(self, df: DataFrame) -> BatchWrite:
        """Write ``df`` to every sink; several sinks read one cached copy of the batch."""
        if len(self.sinks) == 1:
            return BatchWrite({self.sinks[0].name: self.sinks[0].write(_selected(self.sinks[0], df))})
        df = df.persist()
        try:
            return BatchWrite({s.name: s.write(_selected(s, df)) for s in self.sinks})
        finally:
            df.unpersist()

    def rehearse(self, df: DataFrame) -> None:
        """Run every sink's write path over ``df`` (synthetic records) without writing (:meth:`Sink.rehearse`)."""
        for s in self.sinks:
            s.rehearse(_selected(s, df))


def _selected(sink: Sink, df: DataFrame) -> DataFrame:
    """The records ``sink`` takes (its ``where``), analysed now so a bad predicate fails here."""
    if not sink.config.where:
        return df
    out = df.where(sink.config.where)
    out.schema  # noqa: B018 - resolves the predicate
    return out
