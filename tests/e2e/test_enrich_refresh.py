"""``enrich`` in a stateful pipeline (planned once) picks up a changed dimension table without a restart."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from headwater.context import PipelineContext
from headwater.demo import append_orders, create_orders
from headwater.spec import load_spec
from kit import hbase_cells, wait_for

pytestmark = pytest.mark.e2e


def _spec(tmp: Path, u: str) -> Path:
    path = tmp / f"r{u}.yaml"
    path.write_text(f"""
name: r{u}
source: {{type: hive, table: db_{u}.orders_raw, mode: incremental, watermark: updated_at, poll: 1 second}}
topic: {{name: r{u}.orders, partitions: 2, key: [order_id]}}
schema: {{order_id: bigint, customer_id: string, status: string, updated_at: timestamp}}
transforms:
  - {{type: dedupe, keys: [order_id], event_time: updated_at, within: 1 day}}
  - {{type: enrich, table: db_{u}.customers, on: [customer_id], columns: [segment], how: inner, refresh: 2 seconds}}
sink:
  type: hbase
  table: r{u}:orders
  row_key: "{{order_id:long}}"
  columns: {{d: [customer_id, segment]}}
dead_letter: {{topic: r{u}.orders.dlq}}
process: {{trigger: 1 second}}
""")
    return path


def _segments(stack, table: str) -> dict[int, str]:  # type: ignore[no-untyped-def]
    cells = hbase_cells(stack.config.host, stack.config.thrift2_port, table)
    return {int.from_bytes(k, "big") - 2**63: v["d:segment"][0][1].decode() for k, v in cells.items()}


def _wait_for(stack, table: str, ids: set[int], timeout: float = 240) -> dict[int, str]:  # type: ignore[no-untyped-def]
    def arrived() -> dict[int, str] | None:
        try:
            got = _segments(stack, table)
        except Exception:  # the table appears when the process stage has prepared it
            return None
        return got if ids <= set(got) else None

    result: dict[int, str] = wait_for(f"all {len(ids)} rows in {table}", arrived, timeout, every=1)
    return result


def _refreshes(progress: Path) -> int:
    try:
        return int(json.loads(progress.read_text())["counters"].get("enrich_refreshes", 0))
    except (OSError, ValueError, KeyError):
        return 0


def _wait_for_refresh(progress: Path, timeout: float = 300) -> None:
    """Until a re-read that began after now has finished (the one running now may predate the change)."""
    target = _refreshes(progress) + 2
    wait_for(f"enrich_refreshes to reach {target} in {progress}", lambda: _refreshes(progress) >= target, timeout)


def test_dimension_change_reaches_a_running_stateful_query(stack, spark, unique, tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = _spec(tmp_path, unique)
    spec = load_spec(path)
    create_orders(spark, spec.source.table, 500)
    spark.sql(f"""CREATE TABLE db_{unique}.customers STORED AS PARQUET AS
                  SELECT concat('c', lpad(CAST(id AS STRING), 5, '0')) AS customer_id, 'old' AS segment
                  FROM range(5000)""")  # fmt: skip
    first = {r.order_id for r in spark.table(spec.source.table).where("customer_id IS NOT NULL").collect()}
    proc = subprocess.Popen([sys.executable, "-m", "headwater.cli", "run", str(path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        got = _wait_for(stack, spec.sink.full_table, first)
        assert set(got.values()) == {"old"}
        # Another process (this one) rewrites the dimension; the pipeline's next refresh must see it.
        spark.sql(f"""INSERT OVERWRITE TABLE db_{unique}.customers
                      SELECT concat('c', lpad(CAST(id AS STRING), 5, '0')), 'new' FROM range(5000)""")  # fmt: skip
        _wait_for_refresh(PipelineContext(spec).progress_path("process"))
        append_orders(spark, spec.source.table, 500, 800)
        later = {
            r.order_id
            for r in spark.table(spec.source.table).where("order_id >= 500 AND customer_id IS NOT NULL").collect()
        }
        got = _wait_for(stack, spec.sink.full_table, first | later)
        assert {got[i] for i in first} == {"old"}
        assert {got[i] for i in later} == {"new"}
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, out[-2000:] + err[-3000:]  # stopped by Ctrl-C, cleanly
    progress = json.loads(PipelineContext(spec).progress_path("process").read_text())
    assert progress["counters"]["enrich_refreshes"] >= 2
