"""The stages' retry loops end: a permanent error stops at once, transient ones only within the spec's bound.

The stages run without services: their query (process) or poll (ingest) is replaced by a function that
fails as the real ones do, the clock of the bound is injected, and the progress file is read back.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from headwater.context import PipelineContext
from headwater.errors import PermanentError, RetriesExhausted, TransientError
from headwater.ingest.runner import IngestStage
from headwater.spec import load_spec_text
from headwater.streaming.process import ProcessStage, QueryFailed

SPEC = """
name: orders
source: {type: hive, table: db.orders, mode: incremental, watermark: updated_at}
topic: {name: t.orders, key: [id]}
sink: {type: hbase, table: "ns:orders", row_key: "{id:long}", columns: {d: [amount]}}
dead_letter: {topic: t.orders.dlq}
process: {restarts: {max: 3, within: 10 minutes}}
ingest: {retries: {max: 2, within: 1 minute}}
"""

PERMANENT = (
    "streaming query headwater_orders stopped: [FOREACH_BATCH_USER_FUNCTION_ERROR] ... PythonException: ...\n"
    "headwater.errors.PermanentError: HBase table 'ns:orders': column family 'x' does not exist; first record of "
    "the failing call: partition 1, offset 40\n"
)
TRANSIENT = "streaming query headwater_orders stopped: org.apache.thrift.transport.TTransportException: refused"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _process(tmp_path: Path, fails: Callable[[int], Any]) -> tuple[ProcessStage, list[int], Clock]:
    spec = load_spec_text(SPEC, "pipeline.yaml", env={})
    stage = ProcessStage(PipelineContext(spec, home=tmp_path))
    calls: list[int] = []
    clock = Clock()

    def run_queries(until_drained: bool, upstream_done: Any) -> dict[str, Any]:
        calls.append(len(calls))
        return fails(len(calls))  # type: ignore[no-any-return]

    stage.prepare = lambda: None  # type: ignore[method-assign]
    stage.check_data_loss = lambda: None  # type: ignore[method-assign]
    stage._run_queries = run_queries  # type: ignore[method-assign]
    stage.first_backoff = 0.0
    stage.clock = clock
    return stage, calls, clock


def _progress(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())  # type: ignore[no-any-return]


def test_process_permanent_error_stops_at_once(tmp_path: Path) -> None:
    def fail(_: int) -> Any:
        raise QueryFailed(PERMANENT)

    stage, calls, _ = _process(tmp_path, fail)
    with pytest.raises(PermanentError) as err:
        stage.run(until_drained=True)
    assert len(calls) == 1
    line = (
        "process stage stopped: HBase table 'ns:orders': column family 'x' does not exist; first record of the "
        "failing call: partition 1, offset 40"
    )
    assert str(err.value) == line
    progress = _progress(stage.progress.path)
    assert progress["state"] == "failed" and progress["last_error"] == line
    assert "query_restarts" not in progress["counters"]


def test_process_restarts_are_bounded_then_fail_with_the_last_cause(tmp_path: Path) -> None:
    def fail(n: int) -> Any:
        raise QueryFailed(f"{TRANSIENT} (attempt {n})")

    stage, calls, _ = _process(tmp_path, fail)
    with pytest.raises(RetriesExhausted) as err:
        stage.run(until_drained=True)
    assert len(calls) == 4  # the first run and 3 restarts
    assert str(err.value).startswith("process stage stopped after 3 query restarts within 10 minutes: ")
    progress = _progress(stage.progress.path)
    assert progress["state"] == "failed" and progress["counters"]["query_restarts"] == 3
    assert progress["last_error"] == str(err.value)
    assert RetriesExhausted.exit_code not in (0, PermanentError.exit_code)


def test_process_restarts_spread_over_time_go_on(tmp_path: Path) -> None:
    clock_box: list[Clock] = []

    def fail(n: int) -> Any:
        if n <= 6:
            clock_box[0].now += 300.0  # one failure every 5 minutes: at most 2 in any 10 minutes
            raise QueryFailed(TRANSIENT)
        return {"state": "drained"}

    stage, calls, clock = _process(tmp_path, fail)
    clock_box.append(clock)
    assert stage.run(until_drained=True) == {"state": "drained"}
    assert len(calls) == 7


def test_process_kafka_away_while_checking_is_transient(tmp_path: Path) -> None:
    """Waited out (see below), for at most the restart window; then the stage fails naming the cause."""
    stage, calls, clock = _process(tmp_path, lambda n: {"state": "drained"})

    def away() -> None:
        clock.now += 60.0
        raise TransientError("Kafka at 127.0.0.1:9092: reading the offsets of topic 't.orders': timed out")

    stage.check_data_loss = away  # type: ignore[method-assign]
    with pytest.raises(RetriesExhausted, match=r"^process stage stopped: Kafka did not answer for 10 minutes: .*"
                       r"reading the offsets of topic 't\.orders'"):  # fmt: skip
        stage.run()
    assert calls == [] and _progress(stage.progress.path)["state"] == "failed"


def _ingest(tmp_path: Path, poll: Callable[[int], Any]) -> tuple[IngestStage, list[int]]:
    spec = load_spec_text(SPEC, "pipeline.yaml", env={})
    stage = IngestStage(PipelineContext(spec, home=tmp_path))
    calls: list[int] = []

    def poll_once() -> Any:
        calls.append(len(calls))
        return poll(len(calls))

    stage.prepare = lambda: None  # type: ignore[method-assign]
    stage.poll_once = poll_once  # type: ignore[method-assign]
    stage.first_backoff = 0.0
    stage.clock = Clock()
    return stage, calls


class _Py4JError(Exception):
    """A JVM error as py4j raises it: the Java chain is in the text."""


def test_ingest_transient_retries_are_bounded(tmp_path: Path) -> None:
    def fail(_: int) -> Any:
        raise _Py4JError("An error occurred while calling o127.save.\n: org.apache.kafka.common.errors."
                         "TimeoutException: Expiring 12 record(s) for t-0:60001 ms")  # fmt: skip

    stage, calls = _ingest(tmp_path, fail)
    with pytest.raises(RetriesExhausted, match=r"^ingest stage stopped after 2 retries within 1 minute: An error"):
        stage.run(until_drained=True)
    assert len(calls) == 3
    progress = _progress(stage.progress.path)
    assert progress["state"] == "failed" and progress["counters"]["retries"] == 2


def test_ingest_permanent_error_stops_at_once(tmp_path: Path) -> None:
    def fail(_: int) -> Any:
        raise _Py4JError("An error occurred while calling o127.save.\n: org.apache.kafka.common.errors."
                         "RecordTooLargeException: The message is 2000088 bytes when serialized which is larger "
                         "than 1048576, which is the value of the max.request.size configuration.")  # fmt: skip

    stage, calls = _ingest(tmp_path, fail)
    with pytest.raises(PermanentError, match=r"^ingest stage stopped \(too_large\): "):
        stage.run(until_drained=True)
    assert len(calls) == 1
    assert _progress(stage.progress.path)["state"] == "failed"


def test_ingest_recovers_within_the_bound(tmp_path: Path) -> None:
    def flaky(n: int) -> Any:
        if n <= 2:
            raise TransientError("Kafka at 127.0.0.1:9092: reading positions: Local: Broker transport failure")
        return None  # nothing new: drained

    stage, calls = _ingest(tmp_path, flaky)
    assert stage.run(until_drained=True)["state"] == "drained"
    assert len(calls) == 3


class _Query:
    """A streaming query as the monitor sees it: stopped with ``error``, or active until stopped."""

    def __init__(self, name: str, error: str | None) -> None:
        self.id, self.name, self.error = name, name, error
        self.isActive = error is None
        self.status = {"isTriggerActive": False}
        self.lastProgress = None

    def exception(self) -> str | None:
        return self.error

    def stop(self) -> None:
        self.isActive = False


def test_stateful_stage_restarts_after_a_transient_failure(tmp_path: Path) -> None:
    """The stateful strategy's stop of one attempt's queries is not the stage's stop: the restart happens."""
    spec_text = SPEC.replace(
        "dead_letter:",
        "transforms:\n  - {type: dedupe, keys: [id], event_time: updated_at, within: 1 day}\ndead_letter:",
    )
    spec = load_spec_text(spec_text, "pipeline.yaml", env={})
    stage = ProcessStage(PipelineContext(spec, home=tmp_path))
    assert stage.stateful
    attempts: list[int] = []

    def start(available_now: bool = False) -> list[Any]:
        attempts.append(len(attempts) + 1)
        error = f"{TRANSIENT} (attempt {len(attempts)})" if len(attempts) <= 2 else None
        return [_Query("headwater_orders", error), _Query("headwater_orders_dlq", None)]

    stage.prepare = lambda: None  # type: ignore[method-assign]
    stage.check_data_loss = lambda: None  # type: ignore[method-assign]
    stage.execution.start = start  # type: ignore[method-assign]
    stage.monitor.max_lag = lambda queries: 0  # type: ignore[method-assign]
    stage.first_backoff = 0.0
    result = stage.run(until_drained=True)
    assert attempts == [1, 2, 3]
    assert result["state"] == "drained" and result["counters"]["query_restarts"] == 2
    assert not stage.stop_event.is_set()


def test_process_waits_for_kafka_before_its_queries_start(tmp_path: Path) -> None:
    """Kafka away while the stage starts (the data-loss check asks it) is waited out, not counted as restarts."""
    stage, calls, clock = _process(tmp_path, lambda _: {"state": "drained"})
    checks: list[int] = []

    def kafka_away_eight_times() -> None:
        checks.append(1)
        clock.now += 30.0
        if len(checks) <= 8:  # 4 minutes away: more tries than process.restarts.max (3)
            raise TransientError("Kafka at 127.0.0.1:9092: reading the offsets of topic 't.orders': transport failure")

    stage.check_data_loss = kafka_away_eight_times  # type: ignore[method-assign]
    assert stage.run(until_drained=True)["state"] == "drained"
    assert len(checks) == 9 and len(calls) == 1
    assert "query_restarts" not in _progress(stage.progress.path)["counters"]
