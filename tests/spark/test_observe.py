"""One-pass batch counting: the observation arrives with the sink's action, bad positions read back."""

from __future__ import annotations

from datetime import datetime, timedelta

from headwater.streaming import observe


def _decoded(spark):  # type: ignore[no-untyped-def]

    t0 = datetime(2025, 1, 1, 12, 0)
    rows = [(i % 2, i, t0 + timedelta(milliseconds=i), "bad" if i % 97 == 0 else None) for i in range(2000)]
    return spark.createDataFrame(rows, "_hw_partition int, _hw_offset long, _hw_kafka_ts timestamp, _hw_error string")


def test_counts_come_with_the_action_over_the_good_rows(spark) -> None:  # type: ignore[no-untyped-def]
    observed, obs = observe.counted(_decoded(spark))
    assert not observe.complete(obs)
    good = observed.where("_hw_error IS NULL").mapInArrow(lambda it: (b.slice(0, 0) for b in it), observed.schema)
    assert good.collect() == []
    assert observe.complete(obs)
    counts = observe.read(obs)
    bad = [i for i in range(2000) if i % 97 == 0]
    assert (counts.rows, counts.bad) == (2000, len(bad))
    assert sorted(counts.bad_positions) == sorted((i % 2, i) for i in bad)
    assert sum(n for _, n in counts.timestamps_ms) == 2000 - len(bad)
    centres = [x for x, _ in counts.timestamps_ms]
    lo = datetime(2025, 1, 1, 12, 0).timestamp() * 1000
    assert all(lo <= x <= lo + 2000 for x in centres)


def test_at_positions_reads_back_only_those_rows(spark) -> None:  # type: ignore[no-untyped-def]
    batch = spark.createDataFrame(
        [(i % 3, i, b"v%d" % i) for i in range(300)], "partition int, offset long, value binary"
    )
    got = observe.at_positions(batch, [(0, 3), (2, 5), (1, 7), (0, 4)]).collect()
    assert sorted((r.partition, r.offset) for r in got) == [(0, 3), (1, 7), (2, 5)]
