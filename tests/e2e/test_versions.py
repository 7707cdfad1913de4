"""Several versions of the same rows, in any arrival order: HBase serves the newest, and keeps them all.

An order is inserted, updated, and backfilled with an older version. The oracle, in plain Python from
the Hive rows: per row key, the versions that survive the pipeline's filter, newest first; HBase must
serve the newest and keep every one of them as a cell version (families keep 5).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC
from decimal import Decimal
from typing import Any

import pytest

from headwater.demo import create_orders, orders_sql
from headwater.sinks.hbase.codec import decode_value
from headwater.sinks.hbase.rowkey import RowKeyTemplate
from headwater.spec import load_spec
from kit import ROW_KEY, TYPES, hbase_cells, run_cli, write_spec

pytestmark = pytest.mark.e2e

IDS = (1000, 3000)  # no malformed ids in this range (see headwater.demo.malformed_ids)

# A version of each order: its timestamp moved by `shift`, a status and quantity of its own, in partition `dt`.
VERSION = """SELECT order_id, customer_id, amount, {quantity} AS quantity, {status} AS status,
             updated_at + INTERVAL {shift} AS updated_at, items, attrs, '{dt}' AS dt FROM ({orders})"""


def version_sql(kind: str, dt: str) -> str:
    orders = orders_sql(*IDS)
    if kind == "newer":
        return VERSION.format(quantity="quantity + 10", status="'shipped'", shift="1 HOUR", dt=dt, orders=orders)
    if kind == "older":
        return VERSION.format(quantity="quantity + 20", status="'new'", shift="-1 DAY", dt=dt, orders=orders)
    return VERSION.format(quantity="quantity", status="status", shift="0 SECONDS", dt=dt, orders=orders)


def insert(spark: Any, table: str, *kinds: str, dt: str) -> None:
    """One INSERT carrying the given versions of every order, in that order."""
    spark.sql(f"INSERT INTO {table} PARTITION (dt) " + " UNION ALL ".join(version_sql(k, dt) for k in kinds))


def oracle(spark: Any, table: str) -> dict[tuple[str, int], list[dict[str, Any]]]:
    """Per (customer_id, order_id): the versions the filter lets through, newest first."""
    out: dict[tuple[str, int], list[dict[str, Any]]] = defaultdict(list)
    for r in spark.sql(f"SELECT * FROM {table}").collect():
        if r.status == "test":
            continue
        amount = Decimal(r.amount)
        ts = r.updated_at.replace(tzinfo=UTC) if r.updated_at.tzinfo is None else r.updated_at
        out[(r.customer_id, r.order_id)].append({
            "d:amount": amount, "d:quantity": r.quantity, "d:total": amount * r.quantity, "d:status": r.status,
            "d:updated_at": ts, "d:dt": r.dt, "x:items": [{"sku": i.sku, "qty": i.qty} for i in r.items],
            "x:attrs": dict(r.attrs), "_ts": int(ts.timestamp() * 1000),
        })  # fmt: skip
    return {k: sorted(v, key=lambda e: -e["_ts"]) for k, v in out.items()}


def check(expected: dict[tuple[str, int], list[dict[str, Any]]], cells: dict[bytes, Any]) -> dict[str, list[Any]]:
    """Rows lost or phantom; a newest value other than the newest version's; a version missing or extra."""
    template = RowKeyTemplate.parse(ROW_KEY)
    report: dict[str, list[Any]] = {"lost": [], "phantom": [], "not_newest": [], "history": []}
    seen = set()
    for row, cols in cells.items():
        k = template.decode(row)
        key = (k["customer_id"], k["order_id"])
        seen.add(key)
        versions = expected.get(key)
        if versions is None:
            report["phantom"].append(key)
            continue
        for col, got in cols.items():
            newest = decode_value(got[0][1], TYPES[col])
            if newest != versions[0][col]:
                report["not_newest"].append((key, col, newest, versions[0][col]))
            history = [(ts, decode_value(v, TYPES[col])) for ts, v in got]
            if history != [(v["_ts"], v[col]) for v in versions]:
                report["history"].append((key, col, history))
    report["lost"] = sorted(set(expected) - seen)
    return {k: v[:5] for k, v in report.items() if v}


def run(path: Any) -> None:
    out = run_cli("run", str(path), "--until-drained")
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]


def test_three_versions_in_one_insert_one_batch(stack, spark, unique, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """newer, original and older versions of 2,000 orders in one INSERT, written in one micro-batch."""
    path = write_spec(tmp_path, unique, max_offsets=100_000)
    table = load_spec(path).source.table  # type: ignore[attr-defined]
    create_orders(spark, table, 0)
    insert(spark, table, "newer", "original", "older", dt="2024-01-01")
    run(path)
    expected = oracle(spark, table)
    assert len(expected) == IDS[1] - IDS[0]
    assert sum(len(v) for v in expected.values()) > 2 * len(expected)  # several versions per key
    cells = hbase_cells(stack.config.host, stack.config.thrift2_port, f"t{unique}:orders")
    assert check(expected, cells) == {}


def test_versions_across_batches_and_a_restart(stack, spark, unique, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The newer version first; after a restart the original and an older backfill, over many micro-batches."""
    path = write_spec(tmp_path, unique, max_offsets=1500)
    table = load_spec(path).source.table  # type: ignore[attr-defined]
    create_orders(spark, table, 0)
    insert(spark, table, "newer", dt="2024-01-01")
    run(path)
    insert(spark, table, "original", "older", dt="2024-01-02")  # a new partition: read whole, watermark or not
    run(path)
    expected = oracle(spark, table)
    cells = hbase_cells(stack.config.host, stack.config.thrift2_port, f"t{unique}:orders")
    assert check(expected, cells) == {}
