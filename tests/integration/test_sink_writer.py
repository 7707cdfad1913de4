"""The sink's executor writer against a real HBase: what it writes, what it rejects and why."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa
import pytest
from pyspark.sql import types as T

from headwater.sinks import hbase_writer
from headwater.sinks.hbase import HBaseSink, HBaseSinkConfig
from headwater.sinks.hbase_admin import connect, ensure_table
from headwater.sinks.hbase_writer import make_writer
from headwater.spec.models import Connections, HBaseConnection
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
