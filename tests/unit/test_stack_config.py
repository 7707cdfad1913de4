"""Unit tests of the stack's configuration and process supervision (no JVM, no services)."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest

from headwater.errors import ConfigError, StackError
from headwater.stack import Stack, StackConfig, supervisor
from headwater.stack.hbase import HBaseService
from headwater.stack.kafka import KafkaService
from headwater.stack.metastore import MetastoreService


def test_env_overrides(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HEADWATER_KAFKA_PORT", "29092")
    monkeypatch.setenv("HEADWATER_HOME", str(tmp_path))
    monkeypatch.delenv("HEADWATER_CACHE", raising=False)
    cfg = StackConfig.from_env()
    assert cfg.kafka_port == 29092
    assert cfg.kafka_bootstrap == "127.0.0.1:29092"
    assert cfg.state_dir == tmp_path.resolve() / "stack"
    assert cfg.jars("hbase") == tmp_path.resolve() / "cache" / "jars" / "hbase"


def test_cache_can_live_apart_from_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The test stack has its own home but shares the jars (and class-data archive) `make` fetched."""
    monkeypatch.setenv("HEADWATER_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HEADWATER_CACHE", str(tmp_path / "shared"))
    cfg = StackConfig.from_env()
    assert cfg.state_dir == (tmp_path / "home").resolve() / "stack"
    assert cfg.jars("kafka") == (tmp_path / "shared").resolve() / "jars" / "kafka"


def test_bad_env_value_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEADWATER_THRIFT_PORT", "ninety")
    with pytest.raises(ConfigError) as err:
        StackConfig.from_env()
    assert "HEADWATER_THRIFT_PORT='ninety'" in str(err.value)


def test_generated_configs(tmp_path: Path) -> None:
    cfg = StackConfig(home=tmp_path, kafka_port=29092, zookeeper_port=22181, metastore_port=29083)
    kafka = KafkaService(cfg)
    props = kafka._properties()
    assert "listeners=PLAINTEXT://127.0.0.1:29092,CONTROLLER://127.0.0.1:9093" in props
    assert f"log.dirs={tmp_path.resolve()}/stack/kafka/data" in props
    hbase = HBaseService(cfg)
    hbase.prepare()
    site = (hbase.dir / "conf" / "hbase-site.xml").read_text()
    assert "<name>hbase.zookeeper.property.clientPort</name><value>22181</value>" in site
    meta = MetastoreService(cfg)
    meta.prepare()
    hive_site = (meta.dir / "conf" / "hive-site.xml").read_text()
    assert f"databaseName={tmp_path.resolve()}/stack/metastore/derby" in hive_site
    assert "-p" in meta.command() and "29083" in meta.command()


def test_unknown_service_lists_known(tmp_path: Path) -> None:
    with pytest.raises(
        StackError, match="unknown service 'zk'; known: metastore, hbase, kafka, hbase-thrift, hbase-thrift2"
    ):
        Stack(StackConfig(home=tmp_path)).service("zk")


def _sleeper(root: Path, name: str, log: Path) -> int:
    argv = [sys.executable, "-c", "import time; time.sleep(60)", *supervisor.marker(root, name)]
    return supervisor.start(argv, log, cwd=root)


def test_start_find_stop(tmp_path: Path) -> None:
    pid = _sleeper(tmp_path, "dummy", tmp_path / "dummy.log")
    proc = supervisor.find(tmp_path, "dummy")
    assert proc is not None and proc.pid == pid
    assert supervisor.find(tmp_path, "other") is None
    assert supervisor.stop(proc, timeout=5) == "stopped"
    assert supervisor.find(tmp_path, "dummy") is None


def test_stop_escalates_to_kill(tmp_path: Path) -> None:
    code = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('up', flush=True); time.sleep(60)"
    argv = [sys.executable, "-c", code, *supervisor.marker(tmp_path, "stubborn")]
    log = tmp_path / "stubborn.log"
    supervisor.start(argv, log, cwd=tmp_path)
    supervisor.wait_ready("stubborn", lambda: "up" in log.read_text(), pid=None, address="-", log=log, timeout=10)
    proc = supervisor.find(tmp_path, "stubborn")
    assert proc is not None
    assert supervisor.stop(proc, timeout=1) == "killed"


def test_wait_ready_reports_crash_with_log(tmp_path: Path) -> None:
    log = tmp_path / "crash.log"
    argv = [sys.executable, "-c", "import sys; print('boom: no such jar'); sys.exit(3)"]
    pid = supervisor.start(argv, log, cwd=tmp_path)
    with pytest.raises(StackError) as err:
        supervisor.wait_ready("kafka", lambda: False, pid=pid, address="127.0.0.1:1", log=log, timeout=20)
    msg = str(err.value)
    assert "kafka (127.0.0.1:1) exited during start-up" in msg
    assert str(log) in msg and "boom: no such jar" in msg


def test_wait_ready_times_out(tmp_path: Path) -> None:
    with pytest.raises(StackError, match=r"hbase \(h:1\) not ready after 1s"):
        supervisor.wait_ready("hbase", lambda: False, pid=None, address="h:1", log=tmp_path / "x", timeout=1)


def test_port_taken_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        cfg = StackConfig(home=tmp_path, metastore_port=port)
        stack = Stack(cfg)
        with pytest.raises(StackError) as err:
            stack._check_ports_free(stack.service("metastore"))
    assert f"metastore: port 127.0.0.1:{port} is already in use" in str(err.value)
    assert "metastore.log" in str(err.value)


def test_kafka_cluster_ids_never_look_like_an_option() -> None:
    from headwater.stack.kafka import new_cluster_id

    ids = [new_cluster_id() for _ in range(5000)]  # about 1 in 64 random ids starts with "-"
    assert all(len(i) == 22 and not i.startswith("-") for i in ids)
    assert len(set(ids)) == len(ids)


def test_cluster_profile_runs_three_kafka_brokers(tmp_path: Path) -> None:
    """Three combined broker + controller nodes, each with its own ports and folder, one quorum of three."""
    cfg = StackConfig(home=tmp_path, profile="cluster", kafka_port=29092, kafka_controller_port=29093,
                      kafka2_port=29094, kafka2_controller_port=29095, kafka3_port=29096,
                      kafka3_controller_port=29097)  # fmt: skip
    stack = Stack(cfg)
    names = [s.name for s in stack.services]
    assert names[:7] == ["metastore", "hbase", "kafka", "kafka-2", "kafka-3", "hbase-thrift", "hbase-thrift2"]
    assert cfg.kafka_bootstrap == "127.0.0.1:29092,127.0.0.1:29094,127.0.0.1:29096"
    voters = "controller.quorum.voters=1@127.0.0.1:29093,2@127.0.0.1:29095,3@127.0.0.1:29097"
    for node, (port, controller) in enumerate([(29092, 29093), (29094, 29095), (29096, 29097)], start=1):
        svc = stack.service("kafka" if node == 1 else f"kafka-{node}")
        assert svc.ports == [port, controller]
        props = svc._properties().splitlines()  # type: ignore[attr-defined]
        assert f"node.id={node}" in props and voters in props
        assert f"listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller}" in props
        assert f"log.dirs={tmp_path.resolve()}/stack/{svc.name}/data" in props
        for setting in ("default.replication.factor=3", "min.insync.replicas=2", "offsets.topic.replication.factor=3",
                        "transaction.state.log.replication.factor=3", "transaction.state.log.min.isr=2"):  # fmt: skip
            assert setting in props
        assert f"-Xmx{cfg.kafka_cluster_heap}" in svc.command()
        assert svc.stop_group == "kafka"  # stopped together: the last broker alone would have no quorum


def test_local_profile_keeps_one_broker_with_replication_one(tmp_path: Path) -> None:
    cfg = StackConfig(home=tmp_path)
    assert [s.name for s in Stack(cfg).services if s.name.startswith("kafka")] == ["kafka"]
    props = KafkaService(cfg)._properties().splitlines()
    assert "controller.quorum.voters=1@127.0.0.1:9093" in props
    assert "default.replication.factor=1" in props and "min.insync.replicas=1" in props
    assert KafkaService(cfg).stop_group is None


def test_all_brokers_format_one_cluster_id(tmp_path: Path) -> None:
    from headwater.stack.kafka import cluster_id

    cfg = StackConfig(home=tmp_path, profile="cluster")
    first = cluster_id(cfg)
    assert cluster_id(cfg) == first == cluster_id(StackConfig(home=tmp_path, profile="cluster", kafka2_port=1))


def test_broker_ports_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HEADWATER_HOME", str(tmp_path))
    monkeypatch.setenv("HEADWATER_PROFILE", "cluster")
    monkeypatch.setenv("HEADWATER_KAFKA2_PORT", "39094")
    monkeypatch.setenv("HEADWATER_KAFKA3_CONTROLLER_PORT", "39097")
    cfg = StackConfig.from_env()
    assert [tuple(n) for n in cfg.kafka_nodes][1:] == [
        (2, 39094, cfg.kafka2_controller_port),
        (3, cfg.kafka3_port, 39097),
    ]
    assert "127.0.0.1:39094" in cfg.kafka_bootstrap.split(",")


def test_stop_together_signals_every_process_at_once(tmp_path: Path) -> None:
    pids = {name: _sleeper(tmp_path, name, tmp_path / f"{name}.log") for name in ("b1", "b2", "b3")}
    procs = [(name, supervisor.find(tmp_path, name)) for name in pids]
    assert all(p is not None for _, p in procs)
    result = supervisor.stop_together(procs, timeout=5)  # type: ignore[arg-type]
    assert result == {name: (pid, "stopped") for name, pid in pids.items()}
    assert all(supervisor.find(tmp_path, name) is None for name in pids)
