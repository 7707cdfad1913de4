"""When the process stage rehearses: records waiting to be read, and the rounds it runs (pure logic)."""

from __future__ import annotations

from typing import Any

import pytest

from headwater.streaming.warm import records_waiting, rehearse, try_rehearse


@pytest.mark.parametrize(
    ("end", "start", "nexts", "starting", "expected"),
    [
        ({0: 0, 1: 0}, {0: 0, 1: 0}, None, "earliest", 0),  # new query, empty topic
        ({0: 50, 1: 70}, {0: 0, 1: 20}, None, "earliest", 100),  # new query reads from the log start
        ({0: 50, 1: 70}, {0: 0, 1: 20}, None, "latest", 0),  # new query reads only what comes
        ({0: 50, 1: 70}, {0: 0, 1: 0}, {0: 50, 1: 70}, "earliest", 0),  # caught up
        ({0: 50, 1: 70}, {0: 0, 1: 0}, {0: 45, 1: 70}, "earliest", 5),
        ({0: 50, 1: 70, 2: 9}, {0: 0, 1: 0, 2: 0}, {0: 50, 1: 70}, "earliest", 9),  # a partition added since
        ({0: 50}, {0: 40}, {0: 10}, "earliest", 10),  # records gone before read: only what Kafka still has
    ],
)
def test_records_waiting(end: dict[int, int], start: dict[int, int], nexts: dict[int, int] | None, starting: str,
                         expected: int) -> None:  # fmt: skip
    assert records_waiting(end, start, nexts, starting) == expected


def test_rehearses_every_round_while_idle() -> None:
    ran: list[Any] = []
    done = rehearse(lambda: "batch", ran.append, lambda: 0, rounds=3)
    assert ran == ["batch"] * 3
    assert len(done.rounds) == 3 and not done.skipped
    assert done.describe().startswith("rehearsal rounds of synthetic records: ")


def test_does_not_rehearse_when_records_wait() -> None:
    ran: list[Any] = []
    done = rehearse(lambda: "batch", ran.append, lambda: 1200, rounds=3)
    assert ran == [] and done.rounds == []
    assert done.describe() == "no rehearsal: 1,200 records wait to be read"


def test_stops_rehearsing_when_records_arrive() -> None:
    ran: list[Any] = []
    waiting = iter([0, 0, 7])
    done = rehearse(lambda: "batch", ran.append, lambda: next(waiting), rounds=5)
    assert len(ran) == 2 and len(done.rounds) == 2 and not done.skipped


def test_a_failing_rehearsal_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    def boom(batch: Any) -> None:
        raise RuntimeError("transform failed on synthetic data")

    done = try_rehearse(lambda: "batch", boom, lambda: 0)
    assert done.skipped == "failed: transform failed on synthetic data"
    assert "rehearsal of a micro-batch failed" in caplog.text
