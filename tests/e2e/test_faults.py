"""The fault matrix, part 1: faults of the process stage itself, each checked by the independent oracle
(nothing lost, no phantom rows, one version per cell, values exact, dead letters exact and their
duplicates counted). Kill moments are random; the seed is printed (replay: HEADWATER_FAULT_SEED)."""

from __future__ import annotations

import errno
import shutil
import subprocess
import time
from collections import defaultdict
from datetime import UTC
from decimal import Decimal
from pathlib import Path
from typing import Any

import psutil
import pytest
from faultkit import (
    SHARED_ROWS,
    batches_done,
    check_exact,
    committed_ends,
    counters,
    ingest,
    ingest_then_process,
    python_workers,
    seeded,
    shared_orders,
    succeeded,
)

from headwater.context import PipelineContext
from headwater.demo import append_orders, create_orders, malformed_ids
from headwater.spec import load_spec
from kit import (
    dead_letters,
    hbase_cells,
    kill9,
    read_topic,
    run_cli,
    start_stage,
    wait_for,
    write_spec,
)

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def shared(spark) -> tuple[str, Any]:  # type: ignore[no-untyped-def]
    """The module's shared Hive table and its oracle (see :func:`faultkit.shared_orders`)."""
    return shared_orders(spark, "faults")


def _drain(path: Path, log: Path) -> float:
    """The process stage restarted until drained; returns its seconds."""
    t0 = time.monotonic()
    out = run_cli("run", str(path), "--stage", "process", "--until-drained", timeout=900)
    log.write_text(out.stderr)
    assert out.returncode == 0, out.stderr[-4000:]
    return time.monotonic() - t0


def test_kill9_process_stage_at_three_random_moments(stack, spark, unique, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """200,000 records; the process stage (driver, JVM, Python workers) is kill -9ed three times, each
    after a random number of written batches plus a random delay (mid-batch, between sink and commit,
    or between batches), then restarted until drained."""
    rng = seeded("kill9 x3")
    rows = 200_000
    # Small rows in HBase (two cells) keep the run short; the records in Kafka are the full orders.
    path = write_spec(tmp_path, unique, max_offsets=10_000, columns="d: [amount, status]")
    spec = load_spec(path)
    create_orders(spark, spec.source.table, rows)
    ingest(path)
    moments = []
    for i in range(3):
        proc = start_stage(path, "process", tmp_path / f"process{i}.log")
        at_batch, delay = rng.randint(1, 3), round(rng.uniform(0.0, 2.5), 2)
        wait_for(f"batch {at_batch} of run {i}", lambda n=at_batch, pid=proc.pid: batches_done(spec, n, pid), 300, proc)
        time.sleep(delay)  # the random moment: anywhere in the next batch, or between two
        assert proc.poll() is None, "the stage ended before its kill"
        kill9(proc)
        assert proc.returncode == -9
        moments.append({"after_batches": at_batch, "plus_s": delay, "written": counters(spec).get("rows_written")})
    print(f"kill moments: {moments}")
    seconds = _drain(path, tmp_path / "final.log")
    # A kill after a batch's dead letters were sent and before Spark committed it replays them: counted.
    check_exact(stack, spark, spec, types={"d:amount": "decimal", "d:status": "string"}, allow_dlq_duplicates=True,
                records=rows, kills=3, final_run_s=round(seconds, 1))  # fmt: skip


def _stateful_spec(tmp: Path, u: str) -> Path:
    path = tmp / f"s{u}.yaml"
    path.write_text(f"""
name: s{u}
source: {{type: hive, table: db_{u}.orders_raw, mode: incremental, watermark: updated_at, partitions: true,
          poll: 1 second}}
topic: {{name: s{u}.orders, partitions: 2, key: [order_id]}}
schema: {{order_id: bigint, customer_id: string, amount: "decimal(12,2)", quantity: int, status: string,
          updated_at: timestamp, dt: string}}
transforms:
  - {{type: dedupe, keys: [order_id], event_time: updated_at, within: 1 day}}
  - type: window
    event_time: updated_at
    size: 1 hour
    watermark: 1 day
    group_by: [customer_id]
    aggregates: {{amount_sum: sum(amount), orders: count(*)}}
sink:
  type: hbase
  table: s{u}:windows
  row_key: "{{salt(customer_id, 4)}}|{{customer_id}}|{{window_start:timestamp}}"
  version: window_end
  columns: {{d: [window_start, window_end, amount_sum, orders]}}
  families: {{d: {{max_versions: 5}}}}
dead_letter: {{topic: s{u}.orders.dlq}}
process: {{trigger: 1 second, max_offsets_per_trigger: 3000}}
""")
    return path


def test_kill9_process_stage_stateful(stack, spark, unique, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """dedupe + window (stateful mode: two queries, state in the checkpoint); every order of the first
    3,000 is in Hive twice, so dedupe has work across batches. kill -9 at a random moment, restart."""
    from headwater.sinks.hbase.codec import decode_value
    from headwater.sinks.hbase.rowkey import RowKeyTemplate

    rng = seeded("kill9 stateful")
    rows = 12_000
    path = _stateful_spec(tmp_path, unique)
    spec = load_spec(path)
    create_orders(spark, spec.source.table, rows)
    append_orders(spark, spec.source.table, 0, 3_000)  # the same orders again: same values, new positions
    ingest(path)
    proc = start_stage(path, "process", tmp_path / "process0.log")
    at_batch, delay = rng.randint(1, 3), round(rng.uniform(0.0, 2.5), 2)
    wait_for(f"batch {at_batch}", lambda: batches_done(spec, at_batch, proc.pid), 300, proc)
    time.sleep(delay)
    assert proc.poll() is None, "the stage ended before its kill"
    kill9(proc)
    print(f"kill moment: after {at_batch} batches + {delay}s")
    _drain(path, tmp_path / "final.log")

    # The oracle: good Hive rows once per order_id, summed per customer and hour (exact decimals).
    bad = malformed_ids(0, rows)
    expected: dict[tuple[str, Any], list[Any]] = defaultdict(lambda: [Decimal(0), 0])
    seen = set()
    for r in spark.sql(f"SELECT * FROM {spec.source.table}").collect():
        if r.order_id in bad or r.order_id in seen:
            continue
        seen.add(r.order_id)
        acc = expected[(r.customer_id, r.updated_at.replace(tzinfo=UTC, minute=0, second=0, microsecond=0))]
        acc[0] += Decimal(r.amount)
        acc[1] += 1
    types = {"d:window_start": "timestamp", "d:window_end": "timestamp", "d:amount_sum": "decimal",
             "d:orders": "long"}  # fmt: skip
    template = RowKeyTemplate.parse(spec.sink.row_key)
    got, multi = {}, 0
    for row, cols in hbase_cells(stack.config.host, stack.config.thrift2_port, spec.sink.full_table).items():
        values = {c: decode_value(v[0][1], types[c]) for c, v in cols.items()}
        end_ms = int(values["d:window_end"].timestamp() * 1000)
        multi += any(len(v) != 1 or v[0][0] != end_ms for v in cols.values())
        start = values["d:window_start"]
        assert template.decode(row)["customer_id"] is not None
        got[(template.decode(row)["customer_id"], start)] = [values["d:amount_sum"], values["d:orders"]]
    lost = len(set(expected) - set(got))
    wrong = sum(1 for k in got if k in expected and got[k] != expected[k])
    dlq = dead_letters(stack.config.kafka_bootstrap, spec.dead_letter.topic, allow_duplicates=True)
    print(f"figures {spec.name}: records {rows + 3_000}, kills 1, windows {len(expected)}, lost {lost}, "
          f"phantom {len(set(got) - set(expected))}, multi-version {multi}, wrong {wrong}, "
          f"dead letters {len(dlq)} (+{dlq.duplicated} duplicates)")  # fmt: skip
    assert multi == 0
    assert got == dict(expected)
    assert {k: v["reason"] for k, v in dlq.items()} == bad


def test_kill9_python_worker_while_writing(stack, spark, shared, unique, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A Python worker (the HBase writer runs in it, inside mapInArrow) is kill -9ed while it is busy
    writing a batch: the task or the query is retried, and the result is exact."""
    table, oracle = shared
    # A batch takes seconds here: one running 90 s would be stuck, and the stage restarts the query.
    path = write_spec(tmp_path, unique, max_offsets=8_000, table=table, process=", batch_timeout: 90 seconds")
    spec, log, proc = ingest_then_process(path, tmp_path)
    try:
        wait_for("the first written batch", lambda: batches_done(spec, 1, proc.pid), 300, proc)

        def busy_worker() -> psutil.Process | None:
            """A worker that used CPU in the last 50 ms: a task runs in it, i.e. a batch is being written."""
            before = {}
            for w in python_workers(proc.pid):
                try:
                    before[w] = sum(w.cpu_times()[:2])
                except psutil.Error:
                    continue
            time.sleep(0.05)
            for w, t in before.items():
                try:
                    if sum(w.cpu_times()[:2]) > t:
                        return w
                except psutil.Error:
                    continue
            return None

        victim = wait_for("a Python worker writing to HBase", busy_worker, 300, proc, every=0.01)
        written = counters(spec).get("rows_written", 0)
        name = " ".join(victim.cmdline()[:3])  # before the kill: a killed worker is a zombie until reaped
        victim.kill()
        print(f"killed Python worker pid {victim.pid} ({name}) after {written} rows written")
        code = proc.wait(timeout=600)
    finally:
        if proc.poll() is None:
            kill9(proc)
    text, c = succeeded(spec, log, code)
    retried = text.count("Lost task") + text.count("lost task")
    print(f"query restarts {c.get('query_restarts', 0)}, task failures logged {retried}")
    assert c.get("query_restarts", 0) + retried > 0, "the worker kill went unnoticed"
    check_exact(stack, spark, spec, oracle, allow_dlq_duplicates=True, records=SHARED_ROWS, kills=1)


def test_checkpoint_deleted_restart_from_earliest(stack, spark, shared, unique, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """After a full drain the checkpoint is deleted and the stage restarts from the earliest offsets:
    every record is written again, HBase is unchanged (same cells, same timestamps, no new version)."""
    table, oracle = shared
    path = write_spec(tmp_path, unique, max_offsets=15_000, table=table)
    spec = load_spec(path)
    ingest(path)
    _drain(path, tmp_path / "first.log")
    before = hbase_cells(stack.config.host, stack.config.thrift2_port, spec.sink.full_table)
    dlq_before = dead_letters(stack.config.kafka_bootstrap, spec.dead_letter.topic)
    checkpoint = Path(PipelineContext(spec).checkpoint)
    assert (checkpoint / "commits").is_dir()
    shutil.rmtree(checkpoint)
    _drain(path, tmp_path / "again.log")
    assert counters(spec)["rows_in"] == SHARED_ROWS  # everything was read again, from the earliest offsets
    after = hbase_cells(stack.config.host, stack.config.thrift2_port, spec.sink.full_table)
    changed = sum(1 for k in after if before.get(k) != after[k])
    print(f"rows {len(after)}, rows changed by the replay {changed}")
    assert after == before
    # The dead letters are written again too: each position now twice. Counted, as documented.
    figures = check_exact(stack, spark, spec, oracle, allow_dlq_duplicates=True, records=SHARED_ROWS, kills=0)
    assert figures["dead_letter_duplicates"] == len(dlq_before)


def _fill(folder: Path) -> int:
    """Write zeros into ``folder/filler`` until the filesystem is full; returns the bytes written."""
    written = 0
    chunk = b"\0" * 65536
    with (folder / "filler").open("wb", buffering=0) as f:
        while True:
            try:
                written += f.write(chunk)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
                break
    while True:  # the last partial page too
        try:
            with (folder / f"filler{written}").open("wb", buffering=0) as f:
                written += f.write(b"\0" * 512)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc
            return written


def test_disk_full_under_the_checkpoint(stack, spark, shared, unique, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The checkpoint lives on a small filesystem (tmpfs, mounted for the test: CI runs as root) that
    is filled mid-stream: the stage fails loudly (exit code, progress 'failed', the reason), every
    committed batch is in HBase, and after space is freed a restart gives the exact result."""
    table, oracle = shared
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], capture_output=True, text=True
    )
    assert done.returncode == 0, f"cannot mount a small filesystem for the test (needs root): {done.stderr}"
    try:
        path = write_spec(tmp_path, unique, max_offsets=4_000, table=table, process=f", checkpoint: {mount}/checkpoint")
        spec, log, proc = ingest_then_process(path, tmp_path)
        try:
            wait_for("two written batches", lambda: batches_done(spec, 2, proc.pid), 300, proc)
            filled = _fill(mount)
            code = proc.wait(timeout=300)
        finally:
            if proc.poll() is None:
                kill9(proc)
        text = log.read_text(errors="replace")
        progress = PipelineContext(spec).progress_path("process").read_text()
        print(f"filled {filled} bytes; exit code {code}; error lines: "
              f"{[line for line in text.splitlines() if line.startswith('error')][:3]}")  # fmt: skip
        assert code not in (0, -9), text[-3000:]
        assert "No space left on device" in text, text[-3000:]
        assert '"state": "failed"' in progress and "No space left on device" in progress, progress
        # No batch committed past the failure: every record a commit covers is in HBase.
        last, ends = committed_ends(spec.process.checkpoint, spec.topic.name) or (-1, {})
        covered = {
            m.key().decode() for m in read_topic(stack.config.kafka_bootstrap, spec.topic.name)
            if m.offset() < ends.get(m.partition(), 0)
        }  # fmt: skip
        cells = hbase_cells(stack.config.host, stack.config.thrift2_port, spec.sink.full_table)
        stored = {str(k[1]) for k in _keys(cells)}
        expected_ids = {str(k[1]) for k in oracle[0]}
        missing = (covered & expected_ids) - stored
        print(f"last committed batch {last}, records covered {len(covered)}, rows in HBase {len(cells)}")
        # Two batches wrote before the fill, so batch 0 was committed (a batch starts after its
        # predecessor's commit); batch 1's commit may or may not have made it before the disk was full.
        assert last >= 0, "no batch was committed before the disk was full"
        assert not missing, f"{len(missing)} committed records not in HBase"

        for f in mount.glob("filler*"):
            f.unlink()
        _drain(path, tmp_path / "final.log")
        check_exact(stack, spark, spec, oracle, allow_dlq_duplicates=True, records=SHARED_ROWS, kills=0)
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _keys(cells: dict[bytes, Any]) -> list[tuple[str, int]]:
    from headwater.sinks.hbase.rowkey import RowKeyTemplate
    from kit import ROW_KEY

    template = RowKeyTemplate.parse(ROW_KEY)
    return [(k["customer_id"], k["order_id"]) for k in map(template.decode, cells)]
