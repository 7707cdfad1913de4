"""Dead-letter replay bookkeeping without Kafka: position ranges, envelope parsing, the summary line."""

from __future__ import annotations

import base64

from headwater.streaming.replay import DeadLetter, ReplaySummary, from_ranges, reason_counts, to_ranges


def test_positions_round_trip_as_offset_ranges() -> None:
    positions = {"a.b:0:5", "a.b:0:6", "a.b:0:7", "a.b:0:9", "a.b:1:0", "x:y:0:3"}
    ranges = to_ranges(positions)
    assert ranges == {"a.b:0": [[5, 7], [9, 9]], "a.b:1": [[0, 0]], "x:y:0": [[3, 3]]}
    assert from_ranges(ranges) == positions
    assert to_ranges(["no-offset", "t:0:x"]) == {} and from_ranges({}) == set()


def test_envelope_original_accepts_wrapped_base64() -> None:
    value = b'{"order_id": 123, "amount": "N/A"}' * 5
    wrapped = base64.b64encode(value).decode()
    wrapped = "\r\n".join(wrapped[i : i + 76] for i in range(0, len(wrapped), 76))  # as Spark 4 writes it
    env = {"reason": "type_mismatch", "stage": "decode", "value_b64": wrapped, "key": "123",
           "source": {"topic": "t", "partition": 1, "offset": 42}}  # fmt: skip
    letter = DeadLetter("t:1:42", env, 0, 7)
    assert letter.original() == value
    assert letter.source == ("t", 1, 42)
    assert letter.as_dict()["value"] == value.decode()
    assert DeadLetter("t:1:43", {"value_b64": "%%%"}, 0, 8).original() is None
    assert DeadLetter("t:1:44", {}, 0, 9).source is None


def test_reason_counts_and_summary() -> None:
    letters = [DeadLetter(f"t:0:{i}", {"reason": r}, 0, i) for i, r in enumerate(["a", "b", "b", None])]
    assert reason_counts(letters) == {"b": 2, "a": 1, "unknown": 1}
    assert ReplaySummary(found=4, replayed=1, skipped=3).render() == (
        "found 4 dead letter(s), replayed 1, skipped 3 (already replayed)"
    )
    summary = ReplaySummary(found=2, replayed=1, skipped=0, unavailable=["t:0:9"], dry_run=True)
    assert summary.render() == (
        "found 2 dead letter(s), would replay 1, skipped 0 (already replayed), 1 without their original record: t:0:9"
    )
