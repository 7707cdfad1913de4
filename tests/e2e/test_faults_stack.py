"""The fault matrix, part 2: faults of the services under a running process stage (HBase killed,
Thrift2 frozen, the topic's partitions increased), each checked by the independent oracle."""

from __future__ import annotations

import json
import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.admin import NewPartitions
from faultkit import (
    SHARED_ROWS,
    batches_done,
    check_exact,
    counters,
    ingest,
    ingest_then_process,
    shared_orders,
    succeeded,
)

from headwater import kafka
from headwater.demo import append_orders, create_orders
from headwater.spec import load_spec
from headwater.stack import supervisor
from kit import expected_from_hive, kill9, read_topic, start_stage, wait_for, write_spec

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def shared(spark) -> tuple[str, Any]:  # type: ignore[no-untyped-def]
    """The module's shared Hive table and its oracle (see :func:`faultkit.shared_orders`)."""
    return shared_orders(spark, "faults_stack")


def test_hbase_killed_and_restarted_mid_stream(stack, spark, shared, unique, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """kill -9 of the HBase JVM (master, region server and ZooKeeper: the standalone stack runs them in
    one process) while the stage writes; the writer retries, then the query restarts from its
    checkpoint; HBase is started again (WAL replay). The result is exact."""
    table, oracle = shared
    # With HBase away the Thrift2 server holds each call while its own client retries: the writer's
    # socket timeout (10 s here, 60 s by default) is what ends a call.
    path = write_spec(tmp_path, unique, max_offsets=3_000, table=table, connections=_timeout(stack, 10_000))
    spec, log, proc = ingest_then_process(path, tmp_path)
    try:
        wait_for("the first written batch", lambda: batches_done(spec, 1, proc.pid), 300, proc)
        hbase = supervisor.find(stack.config.root, "hbase")
        assert hbase is not None
        hbase.kill()
        hbase.wait(30)
        written = counters(spec).get("rows_written", 0)
        t0 = time.monotonic()

        def riding_out() -> bool:
            text = log.read_text(errors="replace")
            return "; retry 2/" in text or "query failed with a transient error" in text

        wait_for("the stage to retry its writes", riding_out, 300, proc)
        stack.up()  # starts only the missing service: HBase, on its own data
        print(f"HBase down for {time.monotonic() - t0:.0f}s after {written} rows written")
        code = proc.wait(timeout=900)
    finally:
        if proc.poll() is None:
            kill9(proc)
    _, c = succeeded(spec, log, code)
    print(f"write retries {c.get('write_retries', 0)}, query restarts {c.get('query_restarts', 0)}")
    check_exact(stack, spark, spec, oracle, allow_dlq_duplicates=True, records=SHARED_ROWS, kills=1,
                write_retries=c.get("write_retries", 0), query_restarts=c.get("query_restarts", 0))  # fmt: skip


def test_thrift2_frozen_30s(stack, spark, shared, unique, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """SIGSTOP of the Thrift2 server for 30 s (it accepts connections, answers nothing), then SIGCONT.
    The writer's socket timeout (connections.hbase.timeout_ms: 5000) fires, the call is retried,
    nothing hangs, the result is exact."""
    table, oracle = shared
    path = write_spec(tmp_path, unique, max_offsets=2_000, table=table, connections=_timeout(stack, 5_000))
    spec = load_spec(path)
    assert spec.connections.hbase.timeout_ms == 5000
    ingest(path)
    log = tmp_path / "process.log"
    proc = start_stage(path, "process", log, "--until-drained")
    thrift2 = supervisor.find(stack.config.root, "hbase-thrift2")
    assert thrift2 is not None
    try:
        wait_for("the first written batch", lambda: batches_done(spec, 1, proc.pid), 300, proc)
        thrift2.send_signal(signal.SIGSTOP)
        t0 = time.monotonic()
        try:
            wait_for("the client's timeout", lambda: "; retry 1/" in log.read_text(errors="replace"), 120, proc)
            fired = time.monotonic() - t0
            time.sleep(max(0.0, 30 - (time.monotonic() - t0)))  # the fault: frozen for 30 s in all
        finally:
            thrift2.send_signal(signal.SIGCONT)
        print(f"Thrift2 frozen {time.monotonic() - t0:.0f}s; the client timed out after {fired:.1f}s")
        code = proc.wait(timeout=600)
    finally:
        if proc.poll() is None:
            kill9(proc)
    _, c = succeeded(spec, log, code)
    assert c.get("write_retries", 0) + c.get("query_restarts", 0) > 0, c
    check_exact(stack, spark, spec, oracle, allow_dlq_duplicates=True, records=SHARED_ROWS,
                write_retries=c.get("write_retries", 0), query_restarts=c.get("query_restarts", 0))  # fmt: skip


def test_topic_partitions_increased_mid_stream(stack, spark, unique, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The topic grows from 2 to 4 partitions while the process stage runs; the next increment is
    produced over all 4 (keyed by order_id) and the stage reads the new partitions: nothing lost."""
    path = write_spec(tmp_path, unique, max_offsets=2_000)
    spec = load_spec(path)
    conn, topic = spec.connections.kafka, spec.topic.name
    create_orders(spark, spec.source.table, 20_000)
    ingest(path)
    log = tmp_path / "process.log"
    proc = start_stage(path, "process", log)  # runs until stopped
    try:
        wait_for("the first written batch", lambda: batches_done(spec, 1, proc.pid), 300, proc)
        admin = kafka.admin(conn)  # kept alive until its futures are done
        for future in admin.create_partitions([NewPartitions(topic, 4)]).values():
            future.result(timeout=30)
        append_orders(spark, spec.source.table, 20_000, 40_000)
        ingest(path)  # a new producer: it sees 4 partitions
        ends = kafka.end_offsets(conn, topic)
        assert sorted(ends) == [0, 1, 2, 3] and ends[2] > 0 and ends[3] > 0, ends

        def drained() -> bool:
            data = json.loads(_progress(spec).read_text())
            return data.get("pid") == proc.pid and data.get("lag") == 0

        wait_for("the stage to read all 4 partitions", drained, 600, proc)
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            kill9(proc)
    assert code == 0, log.read_text(errors="replace")[-4000:]
    per_partition = Counter(m.partition() for m in read_topic(conn.bootstrap_servers, topic))
    print(f"records per partition: {dict(sorted(per_partition.items()))}")
    check_exact(stack, spark, spec, expected_from_hive(spark, spec.source.table), records=40_000,
                new_partition_records=per_partition[2] + per_partition[3])  # fmt: skip


def _timeout(stack: Any, ms: int) -> str:
    """A ``connections:`` block: the local stack's Thrift2 server with a socket timeout of ``ms``."""
    return f"connections: {{hbase: {{host: {stack.config.host}, port: {stack.config.thrift2_port}, timeout_ms: {ms}}}}}"


def _progress(spec: Any) -> Path:
    from headwater.context import PipelineContext

    return PipelineContext(spec).progress_path("process")
