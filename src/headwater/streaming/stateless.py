"""Stateless execution of the process stage: one query, everything inside ``foreachBatch``.

Every micro-batch:
1. decodes the records (bad ones get a reason code, see :mod:`headwater.streaming.decode`);
2. applies the spec's transforms to the good ones and writes them to the sinks (idempotent);
3. writes the bad ones (and any the sinks rejected) to the dead-letter topic;
4. only then does Spark commit the batch. A crash anywhere replays the whole batch with the same
   offsets; the idempotent sinks and the position-keyed dead letters absorb the replay.

A batch takes one of two paths, chosen once: the one-pass path (:mod:`headwater.streaming.observe`)
or, with a ``fail`` expectation or a transform that marks failed rows, a decoded cache.
"""

from __future__ import annotations

import time
import uuid
from typing import TYPE_CHECKING

from headwater.streaming import dlq
from headwater.streaming.expectations import apply_expectations, count_expectations
from headwater.streaming.fanout import empty_write
from headwater.streaming.report import BatchOutcome
from headwater.testing import fault_point

if TYPE_CHECKING:
    from pyspark.sql import DataFrame
    from pyspark.sql.streaming import StreamingQuery  # type: ignore[attr-defined]

    from headwater.streaming.decode import RecordDecoder
    from headwater.streaming.execution import StageParts


class StatelessExecution:
    """One query; each micro-batch is decoded, checked, transformed, written and dead-lettered."""

    def __init__(self, parts: StageParts) -> None:
        self.parts = parts
        spec = parts.spec
        # Not with a `fail` expectation (it is checked before anything is written) nor with a transform
        # that marks failed rows (their dead letters join back to the decoded batch): those decode into a cache.
        self.one_pass = not any(e.action == "fail" for e in spec.expectations) and not any(
            t.marks_errors for t in parts.ctx.transforms
        )
        self._decoder: RecordDecoder | None = None

    @property
    def decoder(self) -> RecordDecoder:
        """The decoder given by :meth:`plan`."""
        assert self._decoder is not None, "plan() first"
        return self._decoder

    def checkpoints(self) -> list[str]:
        """The one query's checkpoint."""
        return [self.parts.ctx.checkpoint]

    def plan(self, decoder: RecordDecoder, empty: DataFrame) -> None:
        """Nothing to plan beyond the stage's dry run; keep the decoder."""
        self._decoder = decoder

    def start(self, available_now: bool = False) -> list[StreamingQuery]:
        """Start the query: Kafka -> :meth:`process_batch`."""
        p = self.parts
        writer = (p.kafka_stream().writeStream.foreachBatch(self.process_batch)
                  .option("checkpointLocation", p.ctx.checkpoint).queryName(f"headwater_{p.spec.name}"))  # fmt: skip
        return [p.trigger(writer, available_now).start()]

    @property
    def rehearses(self) -> bool:
        """Only the one-pass path rehearses: on the decoded-cache path a ``fail`` expectation would fail on
        synthetic records, and a transform that marks failed rows (``python``) runs user code, which may act
        outside Spark."""
        return self.one_pass

    def rehearse(self, batch: DataFrame) -> None:
        """The one-pass batch over ``batch`` with the sinks rehearsing and no dead letter sent."""
        self._one_pass_batch(batch, dry=True)

    def tick(self) -> None:
        """Nothing to do between batches."""

    def stopping(self) -> None:
        """Nothing to do before the query stops."""

    def process_batch(self, batch: DataFrame, batch_id: int) -> None:
        """One micro-batch of Kafka rows -> sinks and dead letters, then its figures."""
        t0 = time.time()
        out = self._one_pass_batch(batch) if self.one_pass else self._cached_batch(batch)
        fault_point("process.after_sink")
        self.parts.report.batch(out, batch_id, t0)

    def _one_pass_batch(self, batch: DataFrame, dry: bool = False) -> BatchOutcome:
        """Decode, check, transform and write in one job; counts come with it (see :mod:`observe`).

        ``dry``: the sinks rehearse instead of writing and the bad records are not dead-lettered.
        """
        from headwater.streaming import decode as dec
        from headwater.streaming import observe
        from headwater.streaming.expectations import expectation_aggregates, expectation_counts, flag_expectations

        p = self.parts
        rules = p.spec.expectations
        decoded = self.decoder.decode(batch)
        exp_obs = None
        if rules:
            from pyspark.sql import Observation

            exp_obs = Observation(f"headwater_rules_{uuid.uuid4().hex}")
            flagged = flag_expectations(decoded, rules).observe(exp_obs, *expectation_aggregates(rules))
            decoded = apply_expectations(flagged, rules, check_fail=False)
        observed, obs = observe.counted(decoded)
        sink_start = time.time()
        good = p.transform(self.decoder.good(observed))
        if dry:
            p.fanout.rehearse(good)
            result = empty_write(p.fanout.sinks)
        else:
            result = p.fanout.write(good)
        written_at = time.time()
        if not observe.complete(obs):  # a sink that ran no action over the records: count them now
            observed.count()
        counts = observe.read(obs)
        if counts.bad and not dry:
            rows = observe.bad_records_at(batch, p.spec.connections.kafka, p.spec.topic.name, counts.bad_positions)
            again = self.decoder.decode(rows)
            bad = dec.bad_records(apply_expectations(again, rules, check_fail=False) if rules else again)
            p.dead_letters.send(dlq.envelopes(bad, p.spec.name, "decode"))
        rejected = p.dead_letters.rejected(result)
        exp_counts = expectation_counts(exp_obs.get, rules) if exp_obs is not None else {}
        return BatchOutcome(counts.rows, counts.bad, 0, rejected, result, exp_counts, counts.timestamps_ms, written_at,
                            written_at - sink_start, counts.reasons)  # fmt: skip

    def _cached_batch(self, batch: DataFrame) -> BatchOutcome:
        """Decode once into a cache that the checks, the sinks and the dead letters all read."""
        from pyspark import StorageLevel
        from pyspark.sql import functions as F

        from headwater.streaming.decode import ERROR

        p = self.parts
        raw = self.decoder.decode(batch).persist(StorageLevel.MEMORY_AND_DISK)
        cached: list[DataFrame] = []
        try:
            exp_counts = count_expectations(raw, p.spec.expectations)
            decoded = apply_expectations(raw, p.spec.expectations, exp_counts)
            bucket = (F.col("_hw_kafka_ts").cast("double") * 100).cast("long")
            stats = decoded.groupBy(F.col(ERROR).alias("reason"), bucket.alias("b")).count().collect()
            rows_in = sum(r["count"] for r in stats)
            bad = sum(r["count"] for r in stats if r["reason"] is not None)
            result = empty_write(p.fanout.sinks)
            errors: list[DataFrame] = []
            sink_start = time.time()
            if rows_in - bad > 0:
                result = p.fanout.write(p.transform(self.decoder.good(decoded), errors, cached))
            written_at = time.time()
            if bad:
                p.dead_letters.bad(decoded)
            failed = p.dead_letters.marked(errors, decoded, "transform")
            rejected = p.dead_letters.rejected(result)
        finally:
            for df in cached:
                df.unpersist()
            raw.unpersist()
        stamps = [(r["b"] * 10 + 5, r["count"]) for r in stats if r["reason"] is None]
        reasons: dict[str, int] = {}
        for r in stats:
            if r["reason"] is not None:
                reasons[r["reason"]] = reasons.get(r["reason"], 0) + r["count"]
        return BatchOutcome(rows_in, bad, failed, rejected, result, exp_counts, stamps, written_at,
                            written_at - sink_start, reasons)  # fmt: skip
