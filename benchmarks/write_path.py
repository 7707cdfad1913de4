"""Write-path benchmark: the HBase sink's executor writer vs raw happybase batches, same rows, from memory.

Run alone: .venv/bin/python benchmarks/write_path.py [--rows 100000]
"""

from __future__ import annotations

import argparse
import datetime as dt
import decimal
import statistics
import sys
import time
from typing import Any


def make_rows(n: int) -> Any:
    import pyarrow as pa

    base = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    return pa.table({
        "order_id": pa.array(range(n), pa.int64()),
        "customer_id": [f"c{i % 5000:05d}" for i in range(n)],
        "amount": pa.array([decimal.Decimal(i % 100000) / 100 for i in range(n)], pa.decimal128(12, 2)),
        "quantity": pa.array([i % 9 + 1 for i in range(n)], pa.int32()),
        "status": [("new", "paid", "shipped")[i % 3] for i in range(n)],
        "updated_at": pa.array([base + dt.timedelta(seconds=i) for i in range(n)], pa.timestamp("us", tz="UTC")),
        "dt": ["2025-01-01"] * n,
        "items": [[{"sku": f"sku-{i % 100}", "qty": 1}] for i in range(n)],
        "attrs": pa.array([[("channel", "web")] for _ in range(n)], pa.map_(pa.string(), pa.string())),
    })  # fmt: skip


def sink_writer(cfg: Any, table: Any, batch_rows: int) -> float:
    from pyspark.sql import types as T

    from headwater.sinks.hbase import HBaseSink, HBaseSinkConfig
    from headwater.sinks.hbase.admin import connect, ensure_table
    from headwater.sinks.hbase.writer import make_writer
    from headwater.spec.connections import Connections, HBaseConnection

    sc = HBaseSinkConfig(
        type="hbase", table="bench:sink_path", row_key="{customer_id}|{order_id:long}", version="updated_at",
        columns={"d": ["amount", "quantity", "status", "updated_at", "dt"], "x": {"items": "json", "attrs": "json"}},
        batch_rows=batch_rows,
    )  # fmt: skip
    conns = Connections(hbase=HBaseConnection(host=cfg.host, port=cfg.thrift2_port))
    with connect(conns.hbase) as c:
        if c.table_exists(sc.full_table):
            c.delete_table(sc.full_table)
    ensure_table(sc, conns.hbase)
    schema = T.StructType([
        T.StructField("order_id", T.LongType()), T.StructField("customer_id", T.StringType()),
        T.StructField("amount", T.DecimalType(12, 2)), T.StructField("quantity", T.IntegerType()),
        T.StructField("status", T.StringType()), T.StructField("updated_at", T.TimestampType()),
        T.StructField("dt", T.StringType()),
        T.StructField("items", T.ArrayType(T.StructType([T.StructField("sku", T.StringType()),
                                                          T.StructField("qty", T.IntegerType())]))),
        T.StructField("attrs", T.MapType(T.StringType(), T.StringType())),
    ])  # fmt: skip
    writer = make_writer(HBaseSink(sc, conns).describe(schema))
    t0 = time.perf_counter()
    out = list(writer(iter(table.to_batches(max_chunksize=10_000))))
    elapsed = time.perf_counter() - t0
    assert out[0].to_pylist()[0]["written"] == table.num_rows
    return table.num_rows / elapsed


def row_by_row(cfg: Any, table: Any, batch_rows: int = 1000) -> float:
    """The alternative design (the sink's first writer): Python rows, value-by-value codec, Thrift objects, no overlap."""
    from headwater.sinks.hbase import thrift2
    from headwater.sinks.hbase.arrow_codec import cell_timestamp, typed_plain
    from headwater.sinks.hbase.codec import encode_value
    from headwater.sinks.hbase.rowkey import RowKeyTemplate

    template = RowKeyTemplate.parse("{customer_id}|{order_id:long}")
    cells = [(b"d", c.encode(), c, t) for c, t in (("amount", "decimal"), ("quantity", "int"), ("status", "string"),
                                                  ("updated_at", "timestamp"), ("dt", "string"))]  # fmt: skip
    cells += [(b"x", b"items", "items", "json"), (b"x", b"attrs", "attrs", "json")]
    t0 = time.perf_counter()
    with thrift2.Thrift2Client(cfg.host, cfg.thrift2_port) as client:
        pending = []
        for batch in table.to_batches(max_chunksize=10_000):
            for rec in batch.to_pylist():
                ts = cell_timestamp(rec["updated_at"], "timestamp")
                triples = [(f, q, encode_value(typed_plain(rec[c], batch.schema.field(c).type) if t == "json" else rec[c], t))
                           for f, q, c, t in cells]  # fmt: skip
                pending.append(thrift2.put_object(template.encode(rec), triples, ts, 3))
                if len(pending) >= batch_rows:
                    client.put_multiple("bench:sink_path", pending)
                    pending = []
        if pending:
            client.put_multiple("bench:sink_path", pending)
    return table.num_rows / (time.perf_counter() - t0)


def raw_happybase(cfg: Any, table: Any, batch_size: int = 1000) -> float:
    """Raw happybase batches (Thrift1) of the same rows; encoding included, as simple as it gets."""
    import json

    import happybase

    rows = table.to_pylist()
    conn = happybase.Connection(cfg.host, cfg.thrift_port, timeout=60000)
    if b"bench_raw" in conn.tables():
        conn.delete_table("bench_raw", disable=True)
    conn.create_table("bench_raw", {"d": {}, "x": {}})
    t = conn.table("bench_raw")
    t0 = time.perf_counter()
    with t.batch(batch_size=batch_size) as b:
        for r in rows:
            b.put(f"{r['customer_id']}|{r['order_id']:020d}".encode(), {
                b"d:amount": str(r["amount"]).encode(), b"d:quantity": str(r["quantity"]).encode(),
                b"d:status": r["status"].encode(), b"d:updated_at": r["updated_at"].isoformat().encode(),
                b"d:dt": r["dt"].encode(), b"x:items": json.dumps(r["items"]).encode(),
                b"x:attrs": json.dumps(dict(r["attrs"])).encode(),
            })  # fmt: skip
    elapsed = time.perf_counter() - t0
    conn.close()
    return len(rows) / elapsed


def run(cfg: Any, rows: int, repeat: int = 3) -> None:
    table = make_rows(rows)
    results: dict[str, list[float]] = {"raw happybase (thrift1, 1000/batch)": [], "sink writer (default 2000/batch)": [],
                                       "sink writer 500/batch": [], "sink writer 1000/batch": [],
                                       "row by row (pylist, objects, 1000/batch)": [],
                                       "raw happybase 2000/batch": []}  # fmt: skip
    for _ in range(repeat):  # interleaved, medians reported
        results["raw happybase (thrift1, 1000/batch)"].append(raw_happybase(cfg, table))
        results["sink writer (default 2000/batch)"].append(sink_writer(cfg, table, 2000))
        results["sink writer 500/batch"].append(sink_writer(cfg, table, 500))
        results["sink writer 1000/batch"].append(sink_writer(cfg, table, 1000))
        results["row by row (pylist, objects, 1000/batch)"].append(row_by_row(cfg, table))
        results["raw happybase 2000/batch"].append(raw_happybase(cfg, table, 2000))
    print(f"\nsink write path, {rows:,} rows from memory, median of {repeat} interleaved runs:")
    med = {k: statistics.median(v) for k, v in results.items()}
    for k, v in med.items():
        print(f"  {k:<42} {v:>10,.0f} rows/s   runs: {', '.join(f'{x:,.0f}' for x in results[k])}")
    best_raw = max(med["raw happybase (thrift1, 1000/batch)"], med["raw happybase 2000/batch"])
    ratio = med["sink writer (default 2000/batch)"] / best_raw
    print(f"RATIO sink writer / raw happybase (its better batch size) = {ratio:.2f} (target >= 0.85)")
    alt = med["sink writer 1000/batch"] / med["row by row (pylist, objects, 1000/batch)"]
    print(f"RATIO column-wise + binary + overlapped / row by row = {alt:.2f}")


if __name__ == "__main__":
    from headwater.stack import Stack, StackConfig

    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    cfg = StackConfig.from_env()
    Stack(cfg).up()
    sys.exit(run(cfg, a.rows, a.repeat))
