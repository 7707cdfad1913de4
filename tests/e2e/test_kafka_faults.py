"""Kafka faults against the real broker: a broker killed mid-ingest, and data aged out before it was read."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import TopicPartition

from headwater import kafka
from headwater.context import PipelineContext
from headwater.demo import append_orders, create_orders
from headwater.errors import DataLossError, NotFoundError, TransientError
from headwater.observability.progress import read_progress
from headwater.spec import load_spec
from headwater.stack import supervisor
from kit import compare, expected_from_hive, hbase_cells, read_topic, run_cli, wait_for, write_spec

pytestmark = pytest.mark.e2e


def _hbase_equals_hive(stack: Any, spark: Any, spec: Any) -> int:
    """HBase equals the oracle from the Hive rows exactly (one version per cell). Returns the row count."""
    expected, _ = expected_from_hive(spark, spec.source.table)
    cells = hbase_cells(stack.config.host, stack.config.thrift2_port, spec.sink.full_table)
    assert compare(expected, cells) == {"lost": [], "phantom": [], "dup": [], "corrupt": []}
    assert len(cells) == len(expected)
    return len(cells)


def test_kafka_broker_killed_mid_ingest(stack, spark, unique, tmp_path) -> None:  # type: ignore[no-untyped-def]
    rows = 40_000
    path = write_spec(tmp_path, unique, max_offsets=20_000)
    spec = load_spec(path)
    ctx = PipelineContext(spec)
    conn = spec.connections.kafka
    create_orders(spark, spec.source.table, rows)
    with (tmp_path / "run.out").open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "headwater.cli", "run", str(path), "--until-drained"],
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    try:
        # kill -9 the broker while the first increment is being produced: some of its records are in
        # the topic (acknowledged), most are still to come.
        in_topic = wait_for("the first records in the topic", lambda: _mid_produce(conn, spec.topic.name, rows), 120,
                             proc)  # fmt: skip
        broker = supervisor.find(stack.config.root, "kafka")
        assert broker is not None
        broker.kill()
        broker.wait(10)
        with pytest.raises(TransientError, match=conn.bootstrap_servers):
            kafka.end_offsets(conn, spec.topic.name)  # what both stages meet while it is away
        # The outage lasts until both stages have shown they ride it out: the ingest's write failed (its
        # producer gives up after delivery.timeout.ms, 60 s) and the stage retries it; the process stage
        # has lost sight of the lag. Then only the broker starts again, on its own data.
        wait_for("both stages to ride out the outage", lambda: _riding_out(ctx.home), 150, proc)
        stack.up()
        code = proc.wait(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
        stack.up()  # the broker is back whatever happened: the tests after this one need it
    logs = {s: (ctx.home / f"{s}.log").read_text(errors="replace") for s in ("ingest", "process")}
    tail = (tmp_path / "run.out").read_text(errors="replace")[-2000:] + logs["ingest"][-3000:] + logs["process"][-3000:]
    assert code == 0, tail
    assert "Traceback" not in logs["ingest"] + logs["process"], tail
    ingest = read_progress(ctx.progress_path("ingest")) or {}
    assert ingest["state"] == "drained"
    assert ingest["counters"]["rows_read"] == rows, ingest  # one increment, committed once ...
    assert ingest["counters"]["retries"] >= 1, ingest  # ... after its first produce failed
    # The retry names the producer's own reason, not the py4j call ("calling o137.save").
    assert re.search(r"transient error, retrying in \d+s: org\.apache\.kafka\.common\.errors\.TimeoutException",
                     logs["ingest"]), tail  # fmt: skip
    # The position moved only once every record was acknowledged: each id is in the topic (maybe twice).
    ids = Counter(json.loads(m.value())["order_id"] for m in read_topic(conn.bootstrap_servers, spec.topic.name))
    assert set(ids) == set(range(rows)), f"{rows - len(ids)} ids missing from the topic"
    print(f"broker killed with {in_topic:,} of {rows:,} records produced; {sum(ids.values()) - rows} produced twice;"
          f" ingest retries {ingest['counters']['retries']}")  # fmt: skip
    _hbase_equals_hive(stack, spark, spec)


def _mid_produce(conn: Any, topic: str, rows: int) -> int:
    """Records in ``topic`` while fewer than half of ``rows`` are (else 0)."""
    try:
        n = sum(kafka.end_offsets(conn, topic).values())
    except NotFoundError:  # `run` creates the topic just before it starts the stages
        return 0
    return n if 0 < n < rows // 2 else 0


def _riding_out(home: Path) -> bool:
    """Both stages logged the outage: the ingest retries its increment, the process stage waits for Kafka."""
    try:
        ingest = (home / "ingest.log").read_text(errors="replace")
        process = (home / "process.log").read_text(errors="replace")
    except OSError:
        return False
    # the process stage rides it out whether its queries run (the lag is unknown) or it waits to start them
    waiting = ("lag unknown while Kafka does not answer", "Kafka does not answer; the queries start when it does")
    return "transient error, retrying" in ingest and any(line in process for line in waiting)


def test_records_aged_out_before_the_process_stage_read_them(stack, spark, unique, tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = write_spec(tmp_path, unique, max_offsets=2_000)
    spec = load_spec(path)
    ctx = PipelineContext(spec)
    conn, topic = spec.connections.kafka, spec.topic.name
    create_orders(spark, spec.source.table, 2_000)
    out = run_cli("run", str(path), "--until-drained")
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    read = kafka.end_offsets(conn, topic)  # drained: the checkpoint reads on from here
    append_orders(spark, spec.source.table, 2_000, 4_000)
    out = run_cli("run", str(path), "--stage", "ingest", "--until-drained")
    assert out.returncode == 0, out.stderr[-3000:]
    # Retention, made deterministic: the first 300 records of each partition past the checkpoint go.
    cut = {p: off + 300 for p, off in read.items()}
    assert all(cut[p] < end for p, end in kafka.end_offsets(conn, topic).items())
    lost_ids = {
        json.loads(m.value())["order_id"]
        for m in read_topic(conn.bootstrap_servers, topic) if read[m.partition()] <= m.offset() < cut[m.partition()]
    }  # fmt: skip
    assert len(lost_ids) == 600
    admin = kafka.admin(conn)  # kept alive until its futures are done
    for future in admin.delete_records([TopicPartition(topic, p, off) for p, off in cut.items()]).values():
        future.result(timeout=30)
    assert kafka.start_offsets(conn, topic) == cut
    stored = hbase_cells(stack.config.host, stack.config.thrift2_port, spec.sink.full_table)

    # Default (on_data_loss: fail): one error line naming every range; no restart, nothing read past it.
    out = run_cli("run", str(path), "--stage", "process", "--until-drained", timeout=300)
    assert out.returncode == DataLossError.exit_code, out.stderr[-3000:]
    ranges = ", ".join(f"partition {p}: offsets {read[p]}..{cut[p] - 1}" for p in sorted(read))
    assert [line for line in out.stderr.splitlines() if line.startswith("error:")] == [
        f"error: topic {topic} {ranges} are no longer in Kafka (retention or deletion): 600 records lost before "
        "the process stage read them; set process.on_data_loss: skip to continue past them"
    ], out.stderr[-3000:]
    assert "Traceback" not in out.stderr and "restarting" not in out.stderr, out.stderr[-3000:]
    progress = read_progress(ctx.progress_path("process")) or {}
    assert progress["state"] == "failed" and "600 records lost" in progress["last_error"]
    assert hbase_cells(stack.config.host, stack.config.thrift2_port, spec.sink.full_table) == stored

    # on_data_loss: skip goes on past the ranges and records them; HBase holds everything else.
    path.write_text(path.read_text().replace("process: {", "process: {on_data_loss: skip, ", 1))
    out = run_cli("run", str(path), "--stage", "process", "--until-drained", timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    progress = read_progress(ctx.progress_path("process")) or {}
    assert progress["counters"]["records_lost"] == 600
    assert progress["data_loss"] == [{"partition": p, "first": read[p], "last": cut[p] - 1} for p in sorted(read)]
    assert re.search(r"lost in Kafka, skipped\s+600 ", out.stderr), out.stderr[-2000:]
    expected, _ = expected_from_hive(spark, spec.source.table)
    kept = {key: row for key, row in expected.items() if key[1] not in lost_ids}
    assert len(kept) < len(expected)
    cells = hbase_cells(stack.config.host, stack.config.thrift2_port, spec.sink.full_table)
    assert compare(kept, cells) == {"lost": [], "phantom": [], "dup": [], "corrupt": []}
    assert len(cells) == len(kept)
