"""Running the process stage's queries: watch them, notice a stuck batch, restart them on transient failures.

:class:`QueryMonitor` runs one attempt: it starts the execution's queries and watches them (dead
query, stuck micro-batch, lag, drained) until they are stopped. :class:`RestartLoop` runs attempts:
a transient failure restarts the queries from their checkpoints after a pause, within the spec's
bound; a permanent one, or records lost from Kafka, fails the stage at once.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from headwater import kafka
from headwater.errors import DataLossError, PermanentError, RetriesExhausted, TransientError, first_line
from headwater.faults import RetryBudget, classify
from headwater.streaming import data_loss
from headwater.timeutil import parse_duration

if TYPE_CHECKING:
    from pyspark.sql.streaming import StreamingQuery  # type: ignore[attr-defined]

    from headwater.spec.models import PipelineSpec
    from headwater.streaming.data_loss import DataLossGuard
    from headwater.streaming.execution import Execution
    from headwater.streaming.report import StageReport

log = logging.getLogger("headwater.process")

STOP_GRACE_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 120.0


class QueryFailed(RuntimeError):
    """A streaming query of the stage terminated with an error."""


class BatchWatchdog:
    """Says when a micro-batch has been running for longer than ``timeout`` seconds (it is stuck)."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.since: float | None = None

    def check(self, active: bool, now: float) -> float | None:
        """Feed whether a batch runs at ``now``; returns how long it has run once that is over the timeout."""
        if not active:
            self.since = None
            return None
        if self.since is None:
            self.since = now
        running = now - self.since
        return running if running > self.timeout else None


class RestartLoop:
    """Runs attempts of the stage's queries until one ends, restarting after transient failures.

    At most ``process.restarts.max`` restarts within ``process.restarts.within``; one more fails the
    stage with the last cause (RetriesExhausted). A permanent failure
    (:func:`headwater.faults.classify`) fails it at once (PermanentError). Either way the report
    says ``failed`` with the reason.
    """

    def __init__(self, spec: PipelineSpec, report: StageReport, stop_event: threading.Event,
                 clock: Callable[[], float], first_backoff: float) -> None:  # fmt: skip
        self.spec = spec
        self.report = report
        self.stop_event = stop_event
        self.clock = clock
        self.first_backoff = first_backoff

    def run(self, attempt: Callable[[], dict[str, Any]], check_data_loss: Callable[[], None]) -> dict[str, Any]:
        """Call ``check_data_loss`` then ``attempt`` until an attempt returns; returns what it returned."""
        bound = self.spec.process.restarts
        budget = RetryBudget(bound.max, bound.within_seconds, self.clock)
        backoff = self.first_backoff
        kafka_away_since: float | None = None
        while True:
            try:
                check_data_loss()
            except TransientError as exc:  # Kafka away before the queries start: wait for it, bounded by time
                kafka_away_since = self.clock() if kafka_away_since is None else kafka_away_since
                if self.clock() - kafka_away_since > bound.within_seconds:
                    raise self.report.failed(RetriesExhausted(
                        f"process stage stopped: Kafka did not answer for {bound.within}: {exc}"
                    )) from None  # fmt: skip
                log.warning("Kafka does not answer; the queries start when it does (next try in %.0fs): %s",
                            backoff, str(exc)[:300])  # fmt: skip
                self.report.update(state="retrying", last_error=str(exc)[:300])  # not a query restart: none ran
                if self.stop_event.wait(backoff):  # asked to stop while waiting
                    self.report.state("stopped")
                    return dict(self.report.progress.data)
                backoff = min(backoff * 2, 60.0)
                continue
            kafka_away_since = None
            try:
                return attempt()
            except QueryFailed as exc:
                if is_data_loss(str(exc)):  # never retried: the records will not come back
                    check_data_loss()
                    reason = first_line(exc)
                    raise self.report.failed(DataLossError(f"topic {self.spec.topic.name}: {reason}")) from None
                fault = classify(str(exc))
            except TransientError as exc:  # Kafka away while a query starts
                fault = classify(exc)
            except PermanentError as exc:  # a stuck query that would not stop
                raise self.report.failed(exc) from None
            if not fault.transient:
                raise self.report.failed(PermanentError(f"process stage stopped: {fault.message}")) from None
            if not budget.take():
                raise self.report.failed(RetriesExhausted(
                    f"process stage stopped after {bound.max} query restarts within {bound.within}: {fault.message}"
                )) from None  # fmt: skip
            if not self._pause(fault.message, backoff):  # asked to stop while waiting
                self.report.state("stopped")
                return dict(self.report.progress.data)
            backoff = min(backoff * 2, 60.0)

    def _pause(self, error: str, backoff: float) -> bool:
        """Record a transient failure, then wait ``backoff`` seconds; False if the stage is stopping."""
        if self.stop_event.is_set():
            return False
        # Infrastructure trouble (a store or Kafka away longer than the writer's retries): restart
        # from the checkpoint after a pause; the failed batch is replayed, nothing is lost.
        log.warning("query failed with a transient error; restarting in %.0fs: %s", backoff, error[:300])
        self.report.retrying(error)
        return not self.stop_event.wait(backoff)


class QueryMonitor:
    """One attempt: start the execution's queries and watch them until stopped (or drained)."""

    def __init__(self, spec: PipelineSpec, execution: Execution, report: StageReport, guard: DataLossGuard,
                 stop_event: threading.Event, checkpoint: str) -> None:  # fmt: skip
        self.spec = spec
        self.execution = execution
        self.report = report
        self.guard = guard
        self.stop_event = stop_event
        self.checkpoint = checkpoint
        self._kafka_away = False

    def run(self, until_drained: bool, upstream_done: Callable[[], bool] | None) -> dict[str, Any]:
        """Run until stopped; with ``until_drained``, until upstream is done and the lag is 0."""
        queries = self.execution.start(available_now=False)
        query = queries[0]
        self.report.update(state="running", query_id=str(query.id), checkpoint=self.checkpoint)
        watchdog = BatchWatchdog(parse_duration(self.spec.process.batch_timeout))
        grace = STOP_GRACE_SECONDS
        try:
            while not self.stop_event.wait(1.0):
                for q in queries:
                    if not q.isActive:
                        raise QueryFailed(f"streaming query {q.name} stopped: {q.exception()}")
                stuck = watchdog.check(any(q.status["isTriggerActive"] for q in queries), time.monotonic())
                if stuck is not None:
                    grace = 0.0  # it will not finish: stop it now
                    raise QueryFailed(
                        f"micro-batch stuck: running for {stuck:.0f}s, over process.batch_timeout "
                        f"({self.spec.process.batch_timeout}); the query is stopped and restarted from its checkpoint"
                    )
                self.execution.tick()
                lag = self.max_lag(queries)
                self.report.update(lag=lag, input_rate=_rate(query))
                if until_drained and lag == 0 and (upstream_done is None or upstream_done()):
                    busy = any(q.status["isTriggerActive"] for q in queries)
                    if not busy and self.max_lag(queries) == 0:
                        break
        finally:
            self.execution.stopping()
            stop_between_batches(queries, grace)
        self.report.state("drained" if until_drained else "stopped")
        return dict(self.report.progress.data)

    def lag(self, query: StreamingQuery) -> tuple[int, dict[int, int]]:
        """(total lag, end offsets) of the topic against what the query has committed.

        With ``on_data_loss: skip``, records that aged out ahead of the query are noted on the way.
        """
        topic = self.spec.topic.name
        marks = kafka.watermarks(self.spec.connections.kafka, topic)
        done = committed_offsets(query, topic)
        if self.spec.process.on_data_loss == "skip":
            self.guard.note(data_loss.lost_ranges(done, {p: low for p, (low, _) in marks.items()}))
        ends = {p: high for p, (_, high) in marks.items()}
        per_partition = {p: max(0, end - done.get(p, 0)) for p, end in ends.items()}
        self.report.progress.set(lag_partitions=per_partition, topic=topic)
        return sum(per_partition.values()), ends

    def max_lag(self, queries: list[StreamingQuery]) -> int | None:
        """The largest lag of ``queries``; None while Kafka does not answer (the queries ride it out)."""
        try:
            lag = max(self.lag(q)[0] for q in queries)
        except TransientError as exc:
            if not self._kafka_away:
                log.warning("lag unknown while Kafka does not answer (the query retries): %s", exc)
            self._kafka_away = True
            return None
        if self._kafka_away:
            log.warning("Kafka answers again; lag %d", lag)
        self._kafka_away = False
        return lag


def stop_between_batches(queries: list[StreamingQuery], grace: float = STOP_GRACE_SECONDS) -> None:
    """Stop the queries, letting a micro-batch in flight finish first (sink, dead letters, commit).

    ``StreamingQuery.stop`` interrupts a running batch; it would be replayed on restart (nothing is
    lost), but its rows would already be in the sink while its dead letters and counts were not.
    A stop that does not return within :data:`STOP_TIMEOUT_SECONDS` (a task stuck beyond Spark's
    interrupt) fails the stage rather than hanging it.
    """
    deadline = time.monotonic() + grace
    for q in reversed(queries):
        while q.isActive and q.status["isTriggerActive"] and time.monotonic() < deadline:
            time.sleep(0.05)
        stopper = threading.Thread(target=q.stop, name="headwater-query-stop", daemon=True)
        stopper.start()
        stopper.join(STOP_TIMEOUT_SECONDS)
        if stopper.is_alive():
            raise PermanentError(f"streaming query {q.name} did not stop within {STOP_TIMEOUT_SECONDS:.0f}s")


def is_data_loss(message: str) -> bool:
    """Whether Spark's Kafka source failed because records it had to read are gone."""
    return "KAFKA_DATA_LOSS" in message or "failOnDataLoss" in message


def committed_offsets(query: StreamingQuery, topic: str) -> dict[int, int]:
    """Per partition, the next offset the query will read (everything before it is committed)."""
    data = _last_progress(query)
    out: dict[int, int] = {}
    for src in (data or {}).get("sources", []):
        end = src.get("endOffset")
        if isinstance(end, str):
            end = json.loads(end)
        for p, off in (end or {}).get(topic, {}).items():
            out[int(p)] = int(off)
    return out


def _last_progress(query: StreamingQuery) -> dict[str, Any] | None:
    """The query's last progress as a dict (None before its first batch)."""
    prog = query.lastProgress
    if not prog:
        return None
    return json.loads(prog.json) if hasattr(prog, "json") else dict(prog)


def _rate(query: StreamingQuery) -> float | None:
    data = _last_progress(query)
    return None if data is None else data.get("processedRowsPerSecond")
