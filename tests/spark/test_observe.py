"""One-pass batch counting: the observation arrives with the sink's action, bad positions read back."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from headwater.streaming import observe


def _decoded(spark):  # type: ignore[no-untyped-def]

    t0 = datetime(2025, 1, 1, 12, 0)
    rows = [(i % 2, i, t0 + timedelta(milliseconds=i), "bad" if i % 97 == 0 else None) for i in range(2000)]
    return spark.createDataFrame(rows, "_hw_partition int, _hw_offset long, _hw_kafka_ts timestamp, _hw_error string")


@pytest.mark.spark
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


@pytest.mark.spark
def test_at_positions_reads_back_only_those_rows(spark) -> None:  # type: ignore[no-untyped-def]
    batch = spark.createDataFrame(
        [(i % 3, i, b"v%d" % i) for i in range(300)], "partition int, offset long, value binary"
    )
    got = observe.at_positions(batch, [(0, 3), (2, 5), (1, 7), (0, 4)]).collect()
    assert sorted((r.partition, r.offset) for r in got) == [(0, 3), (1, 7), (2, 5)]


@pytest.mark.integration
def test_bad_records_read_back_by_offset_or_by_join(spark, stack) -> None:  # type: ignore[no-untyped-def]
    """Both read-back paths give the same Kafka rows: direct by offset (few) and the semi-join (many)."""
    import uuid

    from confluent_kafka import Producer

    from headwater import kafka
    from headwater.spec.connections import KafkaConnection

    conn = KafkaConnection(bootstrap_servers=stack.config.kafka_bootstrap)
    topic = f"readback_{uuid.uuid4().hex[:8]}"
    kafka.ensure_topic(conn, topic, 2)
    producer = Producer({"bootstrap.servers": conn.bootstrap_servers})
    for i in range(40):
        producer.produce(topic, key=b"k%d" % i, value=b"v%d" % i, partition=i % 2)
    assert producer.flush(30) == 0
    batch = (spark.read.format("kafka").options(**kafka.spark_options(conn)).option("subscribe", topic)
             .option("startingOffsets", "earliest").load())  # fmt: skip
    positions = [(0, 3), (1, 0), (1, 19)]
    direct = observe.fetch_by_offset(conn, topic, positions)
    assert direct is not None
    joined = observe.at_positions(batch, positions).select("key", "value", "topic", "partition", "offset", "timestamp")
    by_offset = observe.bad_records_at(batch, conn, topic, positions)
    assert sorted(by_offset.collect()) == sorted(joined.collect())
    assert sorted(r.value for r in by_offset.collect()) == [b"v1", b"v39", b"v6"]
    assert observe.fetch_by_offset(conn, topic, [(0, 999)], timeout=2) is None  # not there: caller falls back
