"""A micro-batch that never finishes: the stage notices it (process.batch_timeout), stops and restarts
the query, and once the restarts are used up fails loudly; it never hangs."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from headwater.context import PipelineContext
from headwater.demo import create_orders
from headwater.spec import load_spec
from kit import run_cli

pytestmark = pytest.mark.e2e

UDFS_DIR = Path(__file__).resolve().parents[1] / "spark"  # udfs.py: stall() sleeps for an hour


def test_a_stuck_batch_is_restarted_then_fails_the_stage(stack, spark, unique, tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / f"k{unique}.yaml"
    path.write_text(f"""
name: k{unique}
source: {{type: hive, table: db_{unique}.orders_raw, mode: snapshot}}
topic: {{name: k{unique}.orders, partitions: 1, key: [order_id]}}
schema: {{order_id: bigint, customer_id: string, status: string}}
transforms:
  - {{type: python, function: "udfs:stall"}}
sink:
  type: hbase
  table: k{unique}:orders
  row_key: "{{order_id:long}}"
  columns: {{d: [status]}}
dead_letter: {{topic: k{unique}.orders.dlq}}
process: {{trigger: 1 second, batch_timeout: 10 seconds, restarts: {{max: 1, within: 10 minutes}}}}
""")
    spec = load_spec(path)
    create_orders(spark, spec.source.table, 50)  # type: ignore[attr-defined]
    t0 = time.monotonic()
    out = run_cli("run", str(path), "--until-drained", env={"PYTHONPATH": str(UDFS_DIR)}, timeout=400)
    took = time.monotonic() - t0
    print(f"stage ended after {took:.0f}s with exit code {out.returncode}")
    assert out.returncode == 8, out.stdout[-2000:] + out.stderr[-3000:]  # retries exhausted
    assert "micro-batch stuck" in out.stderr and "after 1 query restarts" in out.stderr, out.stderr[-3000:]
    progress = json.loads(PipelineContext(spec).progress_path("process").read_text())
    assert progress["state"] == "failed" and "micro-batch stuck" in progress["last_error"]
    assert progress["counters"].get("query_restarts") == 1
