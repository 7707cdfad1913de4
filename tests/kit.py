"""Helpers for pipeline tests: a spec per test, an independent oracle, HBase and Kafka readers."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from headwater.demo import malformed_ids

ROW_KEY = "{salt(customer_id, 4)}|{customer_id}|{order_id:long}"


def write_spec(tmp: Path, unique: str, *, max_offsets: int = 4000, versions: int = 5, table: str | None = None,
               columns: str = "d: [amount, quantity, total, status, updated_at, dt]\n    x: {items: json, attrs: json}",
               process: str = "", connections: str = "") -> Path:  # fmt: skip
    """A spec like examples/orders.yaml with names unique to one test and families keeping versions.

    ``table`` reads another Hive table than ``db_<unique>.orders_raw`` (tests may share one);
    ``columns`` is the sink's column mapping (YAML, indented as inside ``columns:``; ``families``
    keeps ``versions`` for ``d`` and ``x`` if present); ``process`` adds options to ``process:``
    (``", checkpoint: /x"``); ``connections`` is a ``connections:`` block (YAML) or empty.
    """
    families = ", ".join(f"{f}: {{max_versions: {versions}}}" for f in ("d", "x") if f"{f}:" in columns)
    text = f"""
name: t{unique}
source: {{type: hive, table: {table or f"db_{unique}.orders_raw"}, mode: incremental, watermark: updated_at,
          partitions: true, poll: 1 second}}
topic: {{name: t{unique}.orders, partitions: 2, key: [order_id]}}
schema:
  order_id: bigint
  customer_id: string
  amount: decimal(12,2)
  quantity: int
  status: string
  updated_at: timestamp
  items: array<struct<sku:string,qty:int>>
  attrs: map<string,string>
  dt: string
transforms:
  - {{type: filter, where: "status <> 'test'"}}
  - {{type: sql, query: "SELECT *, amount * quantity AS total FROM input"}}
sink:
  type: hbase
  table: t{unique}:orders
  row_key: "{ROW_KEY}"
  version: updated_at
  columns:
    {columns}
  families: {{{families}}}
dead_letter: {{topic: t{unique}.orders.dlq}}
process: {{trigger: 1 second, max_offsets_per_trigger: {max_offsets}{process}}}
{connections}
"""
    path = tmp / f"t{unique}.yaml"
    path.write_text(text)
    return path


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """``headwater <args>`` as a subprocess in its own session (so a fault kill takes only it)."""
    return subprocess.run(
        [sys.executable, "-m", "headwater.cli", *args], capture_output=True, text=True, check=False,
        timeout=timeout, env={**os.environ, **(env or {})}, start_new_session=True,
    )  # fmt: skip


def expected_from_hive(spark: Any, table: str) -> tuple[dict[tuple[str, int], dict[str, Any]], dict[int, str]]:
    """The oracle, in plain Python from the Hive rows: expected HBase rows and expected dead letters."""
    rows = spark.sql(f"SELECT * FROM {table}").collect()
    ids = [r.order_id for r in rows]
    bad = malformed_ids(min(ids), max(ids) + 1) if ids else {}
    expected: dict[tuple[str, int], dict[str, Any]] = {}
    dlq: dict[int, str] = {}
    for r in rows:
        if r.order_id in bad:
            dlq[r.order_id] = bad[r.order_id]
            continue
        if r.status == "test":
            continue
        amount = Decimal(r.amount)
        ts = r.updated_at.replace(tzinfo=UTC) if r.updated_at.tzinfo is None else r.updated_at
        expected[(r.customer_id, r.order_id)] = {
            "d:amount": amount, "d:quantity": r.quantity, "d:total": amount * r.quantity, "d:status": r.status,
            "d:updated_at": ts, "d:dt": r.dt,
            "x:items": [{"sku": i.sku, "qty": i.qty} for i in r.items], "x:attrs": dict(r.attrs),
            "_ts": int(ts.timestamp() * 1000),
        }  # fmt: skip
    return expected, dlq


TYPES = {"d:amount": "decimal", "d:quantity": "int", "d:total": "decimal", "d:status": "string",
         "d:updated_at": "timestamp", "d:dt": "string", "x:items": "json", "x:attrs": "json"}  # fmt: skip


def hbase_cells(host: str, port: int, table: str) -> dict[bytes, dict[str, list[tuple[int, bytes]]]]:
    """Every row of ``table`` with ALL versions of every cell (Thrift2 scan, maxVersions=5)."""
    from headwater.sinks.thrift2 import Thrift2Client

    out: dict[bytes, dict[str, list[tuple[int, bytes]]]] = {}
    with Thrift2Client(host, port) as client:
        for res in client.scan(table, client.t.TScan(maxVersions=5, caching=1000), batch=1000):
            cells: dict[str, list[tuple[int, bytes]]] = {}
            for cv in res.columnValues:
                cells.setdefault(f"{cv.family.decode()}:{cv.qualifier.decode()}", []).append((cv.timestamp, cv.value))
            out[res.row] = cells
    return out


def compare(expected: dict[tuple[str, int], dict[str, Any]], cells: dict[bytes, dict[str, list[tuple[int, bytes]]]],
            types: dict[str, str] | None = None) -> dict[str, list[Any]]:  # fmt: skip
    """Lost, phantom, duplicated (more than one version or wrong timestamp) and corrupt rows.

    ``types`` names the columns the sink writes (default: all of :data:`TYPES`)."""
    types = types or TYPES
    from headwater.sinks.codec import decode_value
    from headwater.sinks.rowkey import RowKeyTemplate

    template = RowKeyTemplate.parse(ROW_KEY)
    report: dict[str, list[Any]] = {"lost": [], "phantom": [], "dup": [], "corrupt": []}
    seen = set()
    for row, cols in cells.items():
        k = template.decode(row)
        key = (k["customer_id"], k["order_id"])
        seen.add(key)
        exp = expected.get(key)
        if exp is None:
            report["phantom"].append(key)
            continue
        for col, versions in cols.items():
            if len(versions) != 1 or versions[0][0] != exp["_ts"]:
                report["dup"].append((key, col, [v[0] for v in versions]))
            value = decode_value(versions[0][1], types[col])
            if value != exp[col]:
                report["corrupt"].append((key, col, value, exp[col]))
        if set(cols) != set(types):
            report["corrupt"].append((key, "columns", sorted(cols)))
    report["lost"] = sorted(set(expected) - seen)[:20]
    return report


def read_topic(bootstrap: str, topic: str) -> list[Any]:
    """Every record of ``topic`` (all partitions, from the beginning)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "kit", "enable.auto.commit": False})
    md = consumer.list_topics(topic, timeout=10).topics[topic]
    ends = {}
    for p in md.partitions:
        ends[p] = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in md.partitions])
    out = []
    remaining = {p for p, e in ends.items() if e > 0}
    while remaining:
        msg = consumer.poll(5.0)
        if msg is None:
            break
        if msg.error():
            continue
        out.append(msg)
        if msg.offset() >= ends[msg.partition()] - 1:
            remaining.discard(msg.partition())
    consumer.close()
    return out


class DeadLetters(dict[int, dict[str, Any]]):
    """Dead-letter envelopes by the order_id inside their original value, and the duplicates found.

    ``duplicates`` maps a source position (``topic:partition:offset``, the record key) that appears
    more than once in the dead-letter topic to its extra copies. A source position that Kafka holds
    twice (ingest replayed an increment) is two positions, not a duplicate.
    """

    duplicates: dict[str, int]

    @property
    def duplicated(self) -> int:
        """Envelopes beyond the first of their source position."""
        return sum(self.duplicates.values())


def dead_letters(bootstrap: str, topic: str, *, allow_duplicates: bool = False) -> DeadLetters:
    """Every dead letter of ``topic``. A source position present twice fails the test unless
    ``allow_duplicates`` (a fault test that knows why: then the copies are counted, and must be
    identical); see ``DeadLetters.duplicates``."""
    copies: Counter[str] = Counter()
    by_position: dict[str, dict[str, Any]] = {}
    for msg in read_topic(bootstrap, topic):
        position = msg.key().decode()
        env = json.loads(msg.value())
        copies[position] += 1
        if position in by_position:  # a copy: the same record, dead-lettered for the same reason
            first = by_position[position]
            assert (first["value_b64"], first["reason"]) == (env["value_b64"], env["reason"]), (first, env)
        by_position[position] = env
    out = DeadLetters()
    out.duplicates = {p: n - 1 for p, n in copies.items() if n > 1}
    if out.duplicates and not allow_duplicates:
        raise AssertionError(f"{out.duplicated} duplicate dead letter(s) in {topic}: {sorted(out.duplicates)[:10]}")
    for env in by_position.values():
        original = json.loads(base64.b64decode(env["value_b64"]))
        out[original["order_id"]] = env
    return out


def start_stage(spec: Path, stage: str, log: Path, *args: str, env: dict[str, str] | None = None
                ) -> subprocess.Popen[bytes]:  # fmt: skip
    """``headwater run SPEC --stage STAGE ARGS`` in the background, in its own session (a process group
    holding the stage, its Spark JVM and the JVM's Python workers), stderr and stdout to ``log``."""
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", "headwater.cli", "run", str(spec), "--stage", stage, *args],
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                env={**os.environ, **(env or {})})  # fmt: skip


def kill9(proc: subprocess.Popen[Any]) -> None:
    """``kill -9`` of a stage started by :func:`start_stage`: the stage, its JVM and its Python workers."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


def wait_for(what: str, condition: Any, timeout: float, proc: subprocess.Popen[Any] | None = None,
             every: float = 0.2) -> Any:  # fmt: skip
    """Poll ``condition`` (it asks a service or reads a stage's progress/log) until it returns something
    truthy, and return that; fail naming ``what`` after ``timeout`` s, or as soon as ``proc`` exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"the pipeline exited (code {proc.returncode}) while waiting for {what}")
        time.sleep(every)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")
