"""The sink's executor writer against a real HBase: what it writes, what it rejects and why."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa
import pytest
from pyspark.sql import types as T

from headwater.sinks.hbase import HBaseSink, HBaseSinkConfig
from headwater.sinks.hbase import writer as hbase_writer
from headwater.sinks.hbase.admin import connect, ensure_table
from headwater.sinks.hbase.writer import make_writer
from headwater.spec.connections import Connections, HBaseConnection
from kit import hbase_cells

pytestmark = pytest.mark.integration

SPARK = T.StructType([T.StructField("customer_id", T.StringType()), T.StructField("order_id", T.LongType()),
                      T.StructField("ts", T.TimestampType()), T.StructField("status", T.StringType()),
                      T.StructField("note", T.StringType())])  # fmt: skip
ARROW = pa.schema([("customer_id", pa.string()), ("order_id", pa.int64()), ("ts", pa.timestamp("us", tz="UTC")),
                   ("status", pa.string()), ("note", pa.string()), ("_hw_partition", pa.int32()),
                   ("_hw_offset", pa.int64())])  # fmt: skip
T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def rows() -> list[dict[str, Any]]:
    good = [{"customer_id": f"c{i % 3}", "order_id": i, "ts": T0 + timedelta(seconds=i), "status": "paid",
             "note": None if i % 2 else f"n{i}"} for i in range(1, 3001)]  # fmt: skip
    bad = [
        {"customer_id": "c|1", "order_id": 9001, "ts": T0, "status": "paid", "note": None},  # separator in the key
        {"customer_id": None, "order_id": 9002, "ts": T0, "status": "paid", "note": None},  # key field null
        {"customer_id": "c1", "order_id": 9003, "ts": None, "status": "paid", "note": None},  # no cell timestamp
        {"customer_id": "c1", "order_id": 9004, "ts": T0, "status": None, "note": None},  # nothing to write
    ]
    again = {**good[9], "status": "shipped"}  # the same row again in the same call: written once, last wins
    out = [*good[:1500], *bad, *good[1500:], again]
    return [{**r, "_hw_partition": 0, "_hw_offset": i} for i, r in enumerate(out)]


@pytest.fixture
def sink(stack):  # type: ignore[no-untyped-def]
    conn = HBaseConnection(host=stack.config.host, port=stack.config.thrift2_port)
    config = HBaseSinkConfig(type="hbase", table=f"writer_{uuid.uuid4().hex[:8]}", row_key="{customer_id}|{order_id:long}",
                             version="ts", columns={"d": ["status", "note"]}, batch_rows=1000)  # fmt: skip
    ensure_table(config, conn)
    yield config, conn
    with connect(conn) as client:
        client.delete_table(config.full_table)


def test_writes_good_rows_and_names_each_rejected_one(sink, stack) -> None:  # type: ignore[no-untyped-def]
    config, conn = sink
    data = rows()
    desc = HBaseSink(config, Connections(hbase=conn)).describe(SPARK)
    batches = [pa.RecordBatch.from_pylist(data[i : i + 700], schema=ARROW) for i in range(0, len(data), 700)]
    out = [r for b in make_writer(desc)(iter(batches)) for r in b.to_pylist()]
    stats = next(r for r in out if r["kind"] == "stats")
    rejected = {r["offset"]: (r["reason"], r["message"]) for r in out if r["kind"] == "rejected"}
    assert rejected == {
        1500: ("encode_error", "row-key field 'customer_id': value 'c|1' contains the separator '|' that ends it"),
        1501: ("encode_error", "row-key field 'customer_id' is missing or null (template '{customer_id}|{order_id:long}')"),
        1502: ("encode_error", "version field 'ts': version field is null"),
        1503: ("empty_row", "no non-null column to write"),
    }  # fmt: skip
    assert stats["rows"] == len(data) and stats["written"] + stats["deduped"] == 3001 and stats["deduped"] <= 1

    cells = hbase_cells(stack.config.host, stack.config.thrift2_port, config.full_table)
    assert len(cells) == 3000
    for r in data[:1500] + data[1504:-1]:
        key = r["customer_id"].encode() + b"|" + (r["order_id"] + 2**63).to_bytes(8, "big")
        millis = int(r["ts"].timestamp() * 1000)
        status = "shipped" if r["order_id"] == 10 else "paid"
        assert cells[key]["d:status"] == [(millis, status.encode())], r
        assert cells[key].get("d:note") == ([(millis, r["note"].encode())] if r["note"] else None), r


def test_compact_protocol_builds_the_same_puts(sink, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The compact path (thriftpy2 objects) carries the same rows, cells and timestamps as the binary one."""
    config, conn = sink
    sent: list[Any] = []
    monkeypatch.setattr(hbase_writer._Sender, "_send", lambda self, puts: sent.extend(puts))
    compact = HBaseSink(config, Connections(hbase=conn.model_copy(update={"protocol": "compact"}))).describe(SPARK)
    data = rows()[:20]
    list(make_writer(compact)(iter([pa.RecordBatch.from_pylist(data, schema=ARROW)])))
    got = {p.row: {(c.family, c.qualifier): (c.timestamp, c.value) for c in p.columnValues} for p in sent}
    assert len(got) == 20
    for r in data:
        key = r["customer_id"].encode() + b"|" + (r["order_id"] + 2**63).to_bytes(8, "big")
        millis = int(r["ts"].timestamp() * 1000)
        want = {(b"d", b"status"): (millis, b"paid")} | (
            {(b"d", b"note"): (millis, r["note"].encode())} if r["note"] else {}
        )
        assert got[key] == want


def _versioned_sink(stack, **extra: Any) -> tuple[HBaseSinkConfig, HBaseConnection]:  # type: ignore[no-untyped-def]
    conn = HBaseConnection(host=stack.config.host, port=stack.config.thrift2_port)
    config = HBaseSinkConfig(type="hbase", table=f"versions_{uuid.uuid4().hex[:8]}", row_key="{customer_id}|{order_id:long}",
                             version="ts", columns={"d": ["status", "note"]}, families={"d": {"max_versions": 5}},
                             **extra)  # fmt: skip
    ensure_table(config, conn)
    return config, conn


def _three_versions(n: int) -> list[dict[str, Any]]:
    """For each of ``n`` keys a newer update, the original and an older backfill, in that arrival order."""
    out = []
    for i in range(n):
        base = {"customer_id": f"c{i % 7}", "order_id": i, "note": f"n{i}"}
        out += [{**base, "ts": T0 + timedelta(minutes=5), "status": "shipped"},
                {**base, "ts": T0, "status": "paid"},
                {**base, "ts": T0 - timedelta(days=3), "status": "draft"}]  # fmt: skip
    return [{**r, "_hw_partition": 0, "_hw_offset": i} for i, r in enumerate(out)]


@pytest.mark.parametrize("split", ["one call", "one batch, many calls", "separate writes"])
def test_newest_version_wins_whatever_the_arrival_order(stack, split: str) -> None:  # type: ignore[no-untyped-def]
    """Three versions of each key (newer, original, older): HBase serves the newest, and keeps all three."""
    config, conn = _versioned_sink(stack, batch_rows=7 if split != "one call" else 2000)
    desc = HBaseSink(config, Connections(hbase=conn)).describe(SPARK)
    data = _three_versions(500)
    if split == "separate writes":  # each version in its own task, as across micro-batches and restarts
        for v in range(3):
            part = [r for i, r in enumerate(data) if i % 3 == v]
            list(make_writer(desc)(iter([pa.RecordBatch.from_pylist(part, schema=ARROW)])))
    else:
        out = [
            r for b in make_writer(desc)(iter([pa.RecordBatch.from_pylist(data, schema=ARROW)])) for r in b.to_pylist()
        ]
        stats = next(r for r in out if r["kind"] == "stats")
        assert stats["written"] == 1500 and stats["deduped"] == 0 and len(out) == 1
    cells = hbase_cells(stack.config.host, stack.config.thrift2_port, config.full_table)
    assert len(cells) == 500
    millis = [int((T0 + d).timestamp() * 1000) for d in (timedelta(minutes=5), timedelta(0), -timedelta(days=3))]
    for i in range(500):
        key = f"c{i % 7}".encode() + b"|" + (i + 2**63).to_bytes(8, "big")
        assert cells[key]["d:status"] == list(zip(millis, [b"shipped", b"paid", b"draft"], strict=True)), i
        assert [ts for ts, _ in cells[key]["d:note"]] == millis
    with connect(conn) as client:
        client.delete_table(config.full_table)


def test_same_key_and_version_keeps_the_later_kafka_position(stack) -> None:  # type: ignore[no-untyped-def]
    """A tie on the version goes to the later Kafka offset, even when it arrived first."""
    config, conn = _versioned_sink(stack)
    desc = HBaseSink(config, Connections(hbase=conn)).describe(SPARK)
    base = {"customer_id": "c1", "order_id": 1, "ts": T0, "note": None}
    data = [{**base, "status": "later", "_hw_partition": 0, "_hw_offset": 20},
            {**base, "status": "earlier", "_hw_partition": 0, "_hw_offset": 10}]  # fmt: skip
    out = [r for b in make_writer(desc)(iter([pa.RecordBatch.from_pylist(data, schema=ARROW)])) for r in b.to_pylist()]
    assert out[0]["written"] == 1 and out[0]["deduped"] == 1
    cells = hbase_cells(stack.config.host, stack.config.thrift2_port, config.full_table)
    assert [v for _, v in next(iter(cells.values()))["d:status"]] == [b"later"]
    with connect(conn) as client:
        client.delete_table(config.full_table)


def test_rows_of_several_megabytes_are_split_by_bytes_and_oversized_ones_rejected(stack) -> None:  # type: ignore[no-untyped-def]
    """Calls stay under the byte bound; a cell or row key over HBase's limits is rejected as too_large."""
    config, conn = _versioned_sink(stack, batch_bytes=5_000_000)
    desc = HBaseSink(config, Connections(hbase=conn)).describe(SPARK)
    mb = 1024 * 1024
    data = [{"customer_id": f"c{i}", "order_id": i, "ts": T0, "status": "s" * (3 * mb), "note": None} for i in range(6)]
    data.append({"customer_id": "big", "order_id": 100, "ts": T0, "status": "s" * (11 * mb), "note": None})
    data.append({"customer_id": "k" * 40_000, "order_id": 101, "ts": T0, "status": "ok", "note": None})
    data = [{**r, "_hw_partition": 1, "_hw_offset": i} for i, r in enumerate(data)]
    out = [r for b in make_writer(desc)(iter([pa.RecordBatch.from_pylist(data, schema=ARROW)])) for r in b.to_pylist()]
    stats = next(r for r in out if r["kind"] == "stats")
    rejected = {r["offset"]: r for r in out if r["kind"] == "rejected"}
    assert stats["written"] == 6 and stats["calls"] == 6  # one 3 MB row per call under a 5 MB bound
    assert set(rejected) == {6, 7} and {r["reason"] for r in rejected.values()} == {"too_large"}
    assert (
        "cell d:status is 11534" in rejected[6]["message"]
        and "limit (max_cell_bytes) is 10485760" in rejected[6]["message"]
    )
    assert "is 40009 bytes; HBase's row key limit is 32767" in rejected[7]["message"]
    cells = hbase_cells(stack.config.host, stack.config.thrift2_port, config.full_table)
    assert len(cells) == 6 and all(len(c["d:status"][0][1]) == 3 * mb for c in cells.values())
    with connect(conn) as client:
        client.delete_table(config.full_table)
