"""The three-broker Kafka of the cluster profile: the partition leader killed with kill -9 mid-stream, during
ingest and during process, then started again; HBase equals the oracle (nothing lost, nothing duplicated), and
headwater's topics really are replicated three ways with ``min.insync.replicas=2``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import TopicCollection
from confluent_kafka.admin import ConfigResource  # type: ignore[attr-defined]

from headwater import kafka
from headwater.context import PipelineContext
from headwater.demo import append_orders, create_orders
from headwater.errors import NotFoundError
from headwater.observability.progress import read_progress
from headwater.spec import load_spec
from headwater.stack import supervisor
from kit import (
    compare,
    dead_letters,
    expected_from_hive,
    hbase_cells,
    kill9,
    run_cli,
    start_stage,
    wait_for,
    write_spec,
)

pytestmark = pytest.mark.cluster


def _partitions(conn: Any, topic: str) -> list[Any]:
    """The partitions of ``topic`` as the cluster describes them (leader, replicas, in-sync replicas)."""
    client = kafka.admin(conn)  # referenced until the future resolves
    return list(client.describe_topics(TopicCollection([topic]))[topic].result(timeout=10).partitions)


def _assert_replicated(conn: Any, topics: list[str]) -> None:
    """Each topic has 3 replicas per partition and min.insync.replicas 2 (it took the cluster's settings)."""
    client = kafka.admin(conn)
    for topic in topics:
        assert {len(p.replicas) for p in _partitions(conn, topic)} == {3}, topic
        resource = ConfigResource("topic", topic)
        configs = client.describe_configs([resource])[resource].result(timeout=10)
        assert configs["min.insync.replicas"].value == "2", topic


def _kill_leader(stack: Any, conn: Any, topic: str) -> str:
    """kill -9 the broker leading partition 0 of ``topic``; returns its service name."""
    leader = _partitions(conn, topic)[0].leader.id
    name = next(n.service for n in stack.config.kafka_nodes if n.node_id == leader)
    proc = supervisor.find(stack.config.root, name)
    assert proc is not None, name
    proc.kill()
    proc.wait(10)
    return name


def _restart_and_rejoin(stack: Any, conn: Any, topic: str, killed: str) -> None:
    """Start the killed broker again (the stack starts what is not running) and wait until it is back in every ISR."""
    assert supervisor.find(stack.config.root, killed) is None
    stack.up()
    wait_for(f"{killed} back in the ISR of {topic}",
             lambda: all(len(p.isr) == 3 for p in _partitions(conn, topic)), 120, every=1)  # fmt: skip


def _rows(stack: Any, table: str) -> int:
    """Rows in the sink table; 0 while the process stage has not created it yet."""
    try:
        return len(hbase_cells(stack.config.host, stack.config.thrift2_port, table))
    except Exception as exc:
        if type(exc).__name__ == "TIOError" and getattr(exc, "message", None) == table:  # no such table (yet)
            return 0
        raise


def _exact(stack: Any, spark: Any, spec: Any) -> None:
    """HBase equals the oracle from the Hive rows (one version per cell); the dead letters are the malformed ids."""
    expected, bad = expected_from_hive(spark, spec.source.table)
    cells = hbase_cells(stack.config.host, stack.config.thrift2_port, spec.sink.full_table)
    assert compare(expected, cells) == {"lost": [], "phantom": [], "dup": [], "corrupt": []}
    assert len(cells) == len(expected)
    letters = dead_letters(spec.connections.kafka.bootstrap_servers, spec.dead_letter.topic, allow_duplicates=True)
    assert {i: e["reason"] for i, e in letters.items()} == bad


def _in_topic(conn: Any, topic: str) -> int:
    try:
        return sum(kafka.end_offsets(conn, topic).values())
    except NotFoundError:  # the ingest stage creates it as it starts
        return 0


def test_partition_leader_killed_during_ingest(cluster_stack, cluster_spark, in_cluster_env, unique, tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = write_spec(tmp_path, unique, max_offsets=1000)
    spec = load_spec(path)
    ctx = PipelineContext(spec)
    conn, topic = spec.connections.kafka, spec.topic.name
    assert len(conn.bootstrap_servers.split(",")) == 3
    create_orders(cluster_spark, spec.source.table, 2000)
    stages = [start_stage(path, "ingest", tmp_path / "ingest.out")]
    try:
        wait_for("the first increment in the topic", lambda: _in_topic(conn, topic) >= 2000, 180, stages[0])
        stages.append(start_stage(path, "process", tmp_path / "process.out"))  # it needs the topic the ingest made
        _assert_replicated(conn, [topic, spec.state_topic])
        killed = _kill_leader(cluster_stack, conn, topic)
        # The next increment comes while the leader is dead: the ingest produces it (acks=all) to the two left.
        append_orders(cluster_spark, spec.source.table, 2000, 4000)
        wait_for("the second increment committed with a broker down",
                 lambda: ((read_progress(ctx.progress_path("ingest")) or {}).get("counters") or {}).get("rows_read")
                 == 4000, 180, stages[0])  # fmt: skip
        assert supervisor.find(cluster_stack.config.root, killed) is None  # still down: two brokers took it
        _restart_and_rejoin(cluster_stack, conn, topic, killed)
        expected, _ = expected_from_hive(cluster_spark, spec.source.table)
        wait_for("every row in HBase", lambda: _rows(cluster_stack, spec.sink.full_table) >= len(expected), 600,
                 stages[1], every=2)  # fmt: skip
    finally:
        for stage in stages:
            kill9(stage)
    _assert_replicated(conn, [topic, spec.dead_letter.topic, spec.state_topic])
    _exact(cluster_stack, cluster_spark, spec)


def test_partition_leader_killed_during_process(cluster_stack, cluster_spark, in_cluster_env, unique, tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = write_spec(tmp_path, unique, max_offsets=200)
    spec = load_spec(path)
    conn, topic, table = spec.connections.kafka, spec.topic.name, spec.sink.full_table
    create_orders(cluster_spark, spec.source.table, 4000)
    out = run_cli("run", str(path), "--stage", "ingest", "--until-drained", timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    expected, _ = expected_from_hive(cluster_spark, spec.source.table)
    process = start_stage(path, "process", tmp_path / "process.out")
    try:
        wait_for("the first rows in HBase", lambda: _rows(cluster_stack, table) > 0, 180, process, every=1)
        _assert_replicated(conn, [topic, spec.dead_letter.topic])
        killed = _kill_leader(cluster_stack, conn, topic)
        at_kill = _rows(cluster_stack, table)
        assert at_kill < len(expected)  # mid-stream
        wait_for("the stage going on with a broker down", lambda: _rows(cluster_stack, table) > at_kill + 400, 180,
                 process, every=1)  # fmt: skip
        assert supervisor.find(cluster_stack.config.root, killed) is None
        _restart_and_rejoin(cluster_stack, conn, topic, killed)
        wait_for("every row in HBase", lambda: _rows(cluster_stack, table) >= len(expected), 600, process, every=2)
    finally:
        kill9(process)
    log = Path(tmp_path / "process.out").read_text(errors="replace")
    assert "Traceback" not in log, log[-3000:]
    _exact(cluster_stack, cluster_spark, spec)
