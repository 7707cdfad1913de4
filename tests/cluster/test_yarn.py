"""The process stage submitted to YARN in cluster mode (driver in the application master's container), its
checkpoint on HDFS, killed mid-stream through the ResourceManager and resubmitted: HBase equals the oracle."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

import pytest

from cluster.conftest import cluster_env
from headwater import kafka
from headwater.demo import create_orders
from headwater.spec import load_spec
from headwater.streaming import checkpoint as offset_log
from kit import compare, dead_letters, expected_from_hive, hbase_cells, run_cli, wait_for, write_spec

pytestmark = pytest.mark.cluster


def _rm(cfg: Any, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    """A call to the ResourceManager's REST API (GET, or PUT with ``body``)."""
    url = f"http://{cfg.host}:{cfg.yarn_webapp_port}/ws/v1/cluster/{path}"
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method="PUT" if body is not None else "GET",
                                 headers={"Content-Type": "application/json", "Accept": "application/json"})  # fmt: skip
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.load(resp)  # type: ignore[no-any-return]


def _app(cfg: Any, app_id: str) -> dict[str, Any]:
    return _rm(cfg, f"apps/{app_id}")["app"]  # type: ignore[no-any-return]


def _rows(cfg: Any, table: str) -> int:
    """Rows in ``table``; 0 while the stage has not created it yet."""
    try:
        return len(hbase_cells(cfg.host, cfg.thrift2_port, table))
    except Exception as exc:  # the Thrift2 TIOError (a thriftpy2 class) whose message is the table's name
        if getattr(exc, "message", None) == table:  # no such table (yet)
            return 0
        raise


def test_process_on_yarn_killed_and_resubmitted(cluster_stack, cluster_spark, unique, tmp_path) -> None:  # type: ignore[no-untyped-def]
    cfg = cluster_stack.config
    root = f"{cfg.hdfs_uri}/headwater/checkpoints"
    # The one change from a local spec: where checkpoints live (connections.spark.checkpoint_root).
    path = write_spec(
        tmp_path, unique, max_offsets=500, connections=f"connections:\n  spark: {{checkpoint_root: {root}}}"
    )
    spec = load_spec(path)
    checkpoint = f"{root}/{spec.name}"
    create_orders(cluster_spark, spec.source.table, 8_000)
    env = cluster_env()
    # The topic first, as `headwater run` does before it starts the stages, and seen with its partitions.
    conn, topic = spec.connections.kafka, spec.topic
    kafka.ensure_topic(conn, topic.name, topic.partitions, topic.replication, topic.config)
    wait_for(f"topic {topic.name} with its partitions",
             lambda: len(kafka.admin(conn).list_topics(topic.name, timeout=5).topics[topic.name].partitions) == 2,
             timeout=60)  # fmt: skip
    out = run_cli("run", str(path), "--stage", "ingest", "--until-drained", env=env, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]

    # Submitted without --wait: the command prints the application id once YARN accepted it, and exits.
    out = run_cli("submit", str(path), "--stage", "process", "--master", "yarn", "--deploy-mode", "cluster", env=env)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    app_id = out.stdout.strip().splitlines()[-1]
    assert app_id.startswith("application_"), out.stdout
    assert _app(cfg, app_id)["applicationType"] == "SPARK"

    # Killed through the ResourceManager once some batches reached HBase (and so the HDFS checkpoint).
    table = spec.sink.full_table
    wait_for("rows in HBase from the YARN application", lambda: _rows(cfg, table) > 0, timeout=300)
    # ... and a batch committed in the checkpoint on HDFS (read through Hadoop's FileSystem, as the stage does).
    wait_for("a committed batch in the HDFS checkpoint",
             lambda: offset_log.list_names(cluster_spark, f"{checkpoint}/commits"), timeout=300)  # fmt: skip
    _rm(cfg, f"apps/{app_id}/state", {"state": "KILLED"})
    wait_for(f"{app_id} killed", lambda: _app(cfg, app_id)["state"] == "KILLED", timeout=120)
    partial = len(hbase_cells(cfg.host, cfg.thrift2_port, table))
    assert 0 < partial < 7_900, partial  # the kill came mid-stream

    # Resubmitted, followed to its end: it resumes from the HDFS checkpoint and drains.
    out = run_cli("submit", str(path), "--stage", "process", "--master", "yarn", "--deploy-mode", "cluster",
                  "--wait", env=env, timeout=600)  # fmt: skip
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    second = out.stdout.strip().splitlines()[-1]
    assert second != app_id and _app(cfg, second)["finalStatus"] == "SUCCEEDED"

    expected, expected_dlq = expected_from_hive(cluster_spark, spec.source.table)
    cells = hbase_cells(cfg.host, cfg.thrift2_port, table)
    assert compare(expected, cells) == {"lost": [], "phantom": [], "dup": [], "corrupt": []}
    assert len(cells) == len(expected)
    dlq = dead_letters(cfg.kafka_bootstrap, spec.dead_letter.topic, allow_duplicates=True)
    assert {k: v["reason"] for k, v in dlq.items()} == expected_dlq

    # reset deletes the HDFS checkpoint through Hadoop's FileSystem.
    out = run_cli("reset", str(path), "--yes", env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    assert f"checkpoint {checkpoint} deleted" in out.stdout
    assert offset_log.list_names(cluster_spark, checkpoint) == []
