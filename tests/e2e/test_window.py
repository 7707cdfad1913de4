"""Stateful and new transforms end to end through the CLI: windows (and late data), the example with
every transform type, and python failures on the stateless path. HBase is checked against plain
Python over the Hive rows."""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer

from headwater.context import PipelineContext
from headwater.demo import create_orders, malformed_ids
from headwater.sinks.hbase.codec import decode_value
from headwater.sinks.hbase.rowkey import RowKeyTemplate
from headwater.spec import load_spec
from kit import dead_letters, hbase_cells, read_topic, run_cli

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
UDFS_DIR = ROOT / "tests" / "spark"  # udfs.py: the python transform's functions
ROWS = 5_000


def _utc(ts: datetime) -> datetime:
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def _hour(ts: datetime) -> datetime:
    return _utc(ts).replace(minute=0, second=0, microsecond=0)


def _cells(stack, table: str, types: dict[str, str]) -> dict[bytes, dict[str, Any]]:  # type: ignore[no-untyped-def]
    """Each HBase row decoded; every cell must have exactly one version, stamped with window_end."""
    out = {}
    for row, cols in hbase_cells(stack.config.host, stack.config.thrift2_port, table).items():
        values = {col: decode_value(versions[0][1], types[col]) for col, versions in cols.items()}
        end_ms = int(values["d:window_end"].timestamp() * 1000)
        assert all(len(v) == 1 and v[0][0] == end_ms for v in cols.values()), (row, cols)
        out[row] = values
    return out


def _window_spec(tmp: Path, u: str) -> Path:
    path = tmp / f"w{u}.yaml"
    path.write_text(f"""
name: w{u}
source: {{type: hive, table: db_{u}.orders_raw, mode: incremental, watermark: updated_at, partitions: true,
          poll: 1 second}}
topic: {{name: w{u}.orders, partitions: 2, key: [order_id]}}
schema: {{order_id: bigint, customer_id: string, amount: "decimal(12,2)", quantity: int, status: string,
          updated_at: timestamp, dt: string}}
transforms:
  - type: window
    event_time: updated_at
    size: 1 hour
    watermark: 1 day
    group_by: [customer_id]
    aggregates: {{amount_sum: sum(amount), orders: count(*)}}
    late: dead_letter
sink:
  type: hbase
  table: w{u}:windows
  row_key: "{{salt(customer_id, 4)}}|{{customer_id}}|{{window_start:timestamp}}"
  version: window_end
  columns: {{d: [window_start, window_end, amount_sum, orders]}}
dead_letter: {{topic: w{u}.orders.dlq}}
process: {{trigger: 1 second, max_offsets_per_trigger: 1500}}
expectations:
  - {{name: real_status, allowed: {{column: status, values: [new, paid, shipped]}}, action: dead_letter}}
  - {{name: small_quantity, range: {{column: quantity, max: 8}}, action: drop}}
  - {{name: has_time, not_null: updated_at, action: fail}}
""")
    return path


WINDOW_TYPES = {"d:window_start": "timestamp", "d:window_end": "timestamp", "d:amount_sum": "decimal",
                "d:orders": "long"}  # fmt: skip


def test_window_aggregates_and_late_data(stack, spark, unique, tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = _window_spec(tmp_path, unique)
    spec = load_spec(path)
    create_orders(spark, spec.source.table, ROWS)
    out = run_cli("run", str(path), "--until-drained")
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]

    # The oracle: the good Hive rows, summed per customer and hour in plain Python (exact decimals).
    # Expectations (stateful mode too): status 'test' is dead-lettered, quantity 9 dropped and counted.
    bad = malformed_ids(0, ROWS)
    expected: dict[tuple[str, datetime], list[Any]] = defaultdict(lambda: [Decimal(0), 0])
    rows = spark.sql(f"SELECT order_id, customer_id, amount, quantity, status, updated_at FROM {spec.source.table}")
    dropped = too_many = 0
    for r in rows.collect():
        if r.order_id in bad:
            continue
        too_many += r.quantity > 8
        if r.status == "test":
            bad[r.order_id] = "expectation_failed"
        elif r.quantity > 8:
            dropped += 1
        else:
            acc = expected[(r.customer_id, _hour(r.updated_at))]
            acc[0] += Decimal(r.amount)
            acc[1] += 1

    template = RowKeyTemplate.parse(spec.sink.row_key)

    def check() -> None:
        got = {}
        for row, values in _cells(stack, spec.sink.full_table, WINDOW_TYPES).items():
            key = template.decode(row)
            start = values["d:window_start"]
            assert values["d:window_end"] - start == timedelta(hours=1) and _utc(key["window_start"]) == start
            got[(key["customer_id"], start)] = [values["d:amount_sum"], values["d:orders"]]
        assert got == dict(expected)

    check()
    assert 3_000 < len(expected) < ROWS and dropped > 100
    dlq = dead_letters(stack.config.kafka_bootstrap, spec.dead_letter.topic)
    assert {k: v["reason"] for k, v in dlq.items()} == bad
    first = json.loads(PipelineContext(spec).progress_path("process").read_text())
    counters = first["counters"]
    # Latency in stateful mode: from the newest record of each written window to its write.
    assert first["p50_ms"] is not None and 0 < first["p50_ms"] <= first["p99_ms"], first
    assert counters["expectation_small_quantity_failed"] == too_many  # dead-lettered ones included
    assert counters["expectations_dropped"] == dropped
    assert counters["expectation_real_status_failed"] == sum(1 for v in bad.values() if v == "expectation_failed")
    assert counters["expectation_has_time_failed"] == 0

    # Later: one record far behind the watermark (late: dead-lettered, its window never written) and
    # one inside an existing window (that window's row is rewritten with the new totals).
    record = json.loads(read_topic(stack.config.kafka_bootstrap, spec.topic.name)[0].value())
    (customer, hour), _ = sorted(expected.items())[0]
    late_ts = datetime(2024, 12, 29, 10, 0, tzinfo=UTC)
    record.update(status="paid", quantity=1)
    on_time = {**record, "order_id": 900_002, "customer_id": customer, "amount": 10.25,
               "updated_at": (hour + timedelta(minutes=30)).isoformat()}  # fmt: skip
    late = {**record, "order_id": 900_001, "customer_id": "c00001", "amount": 1.00, "updated_at": late_ts.isoformat()}
    producer = Producer({"bootstrap.servers": stack.config.kafka_bootstrap})
    for rec in (late, on_time):
        producer.produce(spec.topic.name, key=str(rec["order_id"]), value=json.dumps(rec))
    assert producer.flush(30) == 0
    out = run_cli("run", str(path), "--stage", "process", "--until-drained")
    assert out.returncode == 0, out.stderr[-3000:]
    expected[(customer, hour)][0] += Decimal("10.25")
    expected[(customer, hour)][1] += 1
    check()
    dlq = dead_letters(stack.config.kafka_bootstrap, spec.dead_letter.topic)
    assert {k: v["reason"] for k, v in dlq.items()} == {**bad, 900_001: "late_data"}, record
    env = dlq[900_001]
    assert env["stage"] == "window" and env["source"]["topic"] == spec.topic.name
    assert env["message"].startswith("updated_at 2024-12-29T10:00:00.000000Z is behind the watermark 2024-12-31T")
    progress = json.loads(PipelineContext(spec).progress_path("process").read_text())
    assert progress["counters"]["late_rows"] == 1 and progress["counters"]["rows_in"] == 2


def _with_dimension(spark, u: str) -> None:  # type: ignore[no-untyped-def]
    create_orders(spark, f"db_{u}.orders_raw", ROWS)
    spark.sql(f"DROP TABLE IF EXISTS db_{u}.customers")
    spark.sql(f"""CREATE TABLE db_{u}.customers STORED AS PARQUET AS
        SELECT concat('c', lpad(CAST(id AS STRING), 5, '0')) AS customer_id,
               element_at(array('gold', 'silver', 'bronze'), CAST(pmod(hash(id), 3) + 1 AS INT)) AS segment
        FROM range(5000)""")


def _oracle_rows(spark, u: str) -> tuple[list[Any], dict[str, str], dict[int, str]]:  # type: ignore[no-untyped-def]
    """Hive rows that pass decode and `status <> 'test'`, segments, and the expected dead letters."""
    segments = {r.customer_id: r.segment for r in spark.table(f"db_{u}.customers").collect()}
    bad = {k: v for k, v in malformed_ids(0, ROWS).items() if v == "type_mismatch"}
    good = []
    for r in spark.table(f"db_{u}.orders_raw").collect():
        if r.order_id not in bad and r.status != "test":
            good.append(r)
    expected_dlq = {**bad, **{r.order_id: "transform_error" for r in good if r.order_id == 4242}}
    return good, segments, expected_dlq


def test_all_transforms_example(stack, spark, unique, tmp_path) -> None:  # type: ignore[no-untyped-def]
    text = (ROOT / "examples" / "all_transforms.yaml").read_text()
    for old, new in [("name: all_transforms", f"name: x{unique}"), ("demo.orders_raw", f"db_{unique}.orders_raw"),
                     ("demo.customers", f"db_{unique}.customers"), ("demo.orders_all", f"x{unique}.orders"),
                     ("demo:revenue_by_segment", f"x{unique}:revenue")]:  # fmt: skip
        text = text.replace(old, new)
    path = tmp_path / "all_transforms.yaml"
    path.write_text(text)
    spec = load_spec(path)
    assert {t.type for t in spec.transforms} == {"filter", "dedupe", "enrich", "python", "sql", "window", "select"}
    _with_dimension(spark, unique)
    out = run_cli("run", str(path), "--until-drained", env={"PYTHONPATH": str(UDFS_DIR)})
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]

    good, segments, expected_dlq = _oracle_rows(spark, unique)
    expected: dict[tuple[str, datetime], list[Any]] = defaultdict(lambda: [Decimal(0), 0, 0])
    for r in good:
        if r.customer_id is None or r.order_id == 4242:  # unknown customer (inner join); python failure
            continue
        acc = expected[(segments[r.customer_id], _hour(r.updated_at))]
        acc[0] += Decimal(r.amount) * r.quantity
        acc[1] += 1
        acc[2] += Decimal(r.amount) >= 500
    types = {"d:window_start": "timestamp", "d:window_end": "timestamp", "d:revenue": "decimal", "d:orders": "int",
             "d:large_orders": "int"}  # fmt: skip
    got = {}
    for row, v in _cells(stack, spec.sink.full_table, types).items():
        segment = row.split(b"|")[0].decode()
        got[(segment, v["d:window_start"])] = [v["d:revenue"], v["d:orders"], v["d:large_orders"]]
    assert got == dict(expected)
    dlq = dead_letters(stack.config.kafka_bootstrap, spec.dead_letter.topic)
    assert {k: v["reason"] for k, v in dlq.items()} == expected_dlq
    if 4242 in dlq:
        assert dlq[4242]["stage"] == "transform"
        assert dlq[4242]["message"] == "RuntimeError: order 4242 cannot be tagged (function udfs:tag_orders)"


def test_stateless_enrich_and_python(stack, spark, unique, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Without a stateful transform: one query; python failures are split off inside foreachBatch."""
    u = unique
    path = tmp_path / f"s{u}.yaml"
    path.write_text(f"""
name: s{u}
source: {{type: hive, table: db_{u}.orders_raw, mode: incremental, watermark: updated_at, partitions: true,
          poll: 1 second}}
topic: {{name: s{u}.orders, partitions: 2, key: [order_id]}}
schema: {{order_id: bigint, customer_id: string, amount: "decimal(12,2)", quantity: int, status: string,
          updated_at: timestamp, dt: string}}
transforms:
  - {{type: filter, where: "status <> 'test'"}}
  - {{type: enrich, table: db_{u}.customers, on: [customer_id], columns: [segment], refresh: 1 minute}}
  - type: python
    function: udfs:tag_orders
    output_schema: >-
      order_id bigint, customer_id string, amount decimal(12,2), quantity int, status string,
      updated_at timestamp, dt string, segment string, size string
sink:
  type: hbase
  table: s{u}:orders
  row_key: "{{order_id:long}}"
  version: updated_at
  columns: {{d: [customer_id, segment, size, amount]}}
dead_letter: {{topic: s{u}.orders.dlq}}
process: {{trigger: 1 second, max_offsets_per_trigger: 2000}}
""")
    spec = load_spec(path)
    _with_dimension(spark, u)
    out = run_cli("run", str(path), "--until-drained", env={"PYTHONPATH": str(UDFS_DIR)})
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    good, segments, expected_dlq = _oracle_rows(spark, u)
    expected = {
        r.order_id: (r.customer_id, segments.get(r.customer_id), "large" if Decimal(r.amount) >= 500 else "small")
        for r in good
        if r.order_id != 4242
    }
    cells = hbase_cells(stack.config.host, stack.config.thrift2_port, spec.sink.full_table)
    got = {}
    for row, cols in cells.items():
        order_id = int.from_bytes(row, "big") ^ (1 << 63)
        got[order_id] = tuple(decode_value(cols[c][0][1], "string") if c in cols else None
                              for c in ("d:customer_id", "d:segment", "d:size"))  # fmt: skip
    assert got == expected
    dlq = dead_letters(stack.config.kafka_bootstrap, spec.dead_letter.topic)
    assert {k: v["reason"] for k, v in dlq.items()} == expected_dlq
    if 4242 in dlq:  # the original Kafka record, found by its position
        env = dlq[4242]
        assert env["stage"] == "transform" and env["source"]["partition"] is not None
        assert env["message"] == "RuntimeError: order 4242 cannot be tagged (function udfs:tag_orders)"
