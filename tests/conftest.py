"""Shared fixtures. The integration tiers start ONE local stack per test session and stop it at the end.

The test stack lives in its own home folder and on its own ports, so it never collides with a
stack a developer runs for the demo. A stack that fails to start fails the suite; nothing skips.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TEST_HOME = ROOT / ".headwater" / "test"

# Ports of the test stack: the defaults + 10000 (or + 100 where that would leave the range).
TEST_ENV = {
    "HEADWATER_HOME": str(TEST_HOME),
    "HEADWATER_CACHE": str(ROOT / ".headwater" / "cache"),  # the jars `make test` fetched, fetched once
    "HEADWATER_KAFKA_PORT": "19092",
    "HEADWATER_KAFKA_CONTROLLER_PORT": "19093",
    "HEADWATER_KAFKA2_PORT": "19094",  # the cluster profile's brokers 2 and 3
    "HEADWATER_KAFKA2_CONTROLLER_PORT": "19095",
    "HEADWATER_KAFKA3_PORT": "19096",
    "HEADWATER_KAFKA3_CONTROLLER_PORT": "19097",
    "HEADWATER_ZOOKEEPER_PORT": "12181",
    "HEADWATER_HBASE_MASTER_PORT": "16100",
    "HEADWATER_HBASE_REGIONSERVER_PORT": "16120",
    "HEADWATER_THRIFT_PORT": "19090",
    "HEADWATER_THRIFT2_PORT": "19091",
    "HEADWATER_METASTORE_PORT": "19083",
    "HEADWATER_HADOOP_NAMENODE_PORT": "19820",
    "HEADWATER_HADOOP_NAMENODE_HTTP_PORT": "19870",
    "HEADWATER_YARN_RESOURCEMANAGER_PORT": "18032",
    "HEADWATER_YARN_SCHEDULER_PORT": "18030",
    "HEADWATER_YARN_RESOURCE_TRACKER_PORT": "18031",
    "HEADWATER_YARN_ADMIN_PORT": "18033",
    "HEADWATER_YARN_WEBAPP_PORT": "18088",
    "HEADWATER_YARN_JOBHISTORY_PORT": "20020",
    "HEADWATER_YARN_JOBHISTORY_WEBAPP_PORT": "29888",
    "HEADWATER_YARN_JOBHISTORY_ADMIN_PORT": "20033",
    "HEADWATER_YARN_SHUFFLE_PORT": "23562",
    # the cluster profile's Spark standalone: master, its web UI, and the first worker's ports (worker i: + i)
    "HEADWATER_SPARK_MASTER_PORT": "17077",
    "HEADWATER_SPARK_MASTER_WEBUI_PORT": "18080",
    "HEADWATER_SPARK_MASTER_REST_PORT": "16066",
    "HEADWATER_SPARK_WORKER_PORT": "17078",
    "HEADWATER_SPARK_WORKER_WEBUI_PORT": "18081",
}


def pytest_configure(config: pytest.Config) -> None:
    # Every process the tests start (CLI subprocesses, Spark workers) sees the test stack.
    for key, value in TEST_ENV.items():  # a developer may point the suite elsewhere
        os.environ.setdefault(key, value)


TIERS = ("spark", "integration", "e2e", "cluster", "package")


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    # The cluster tier (tests/cluster: its own cluster-profile stack) runs after the single-node tiers, and the
    # package tier (tests/package: build, install in a fresh venv, its own stack) runs last.
    def tier(item: pytest.Item) -> int:
        return 2 if item.get_closest_marker("package") else 1 if item.get_closest_marker("cluster") else 0

    # Outside tests/unit every test names its tier: `make unit` selects by marker, and an unmarked test there
    # would need a JVM or the stack.
    unit = Path(__file__).parent / "unit"
    unmarked = [item.nodeid for item in items if unit not in Path(str(item.path)).parents
                and not any(item.get_closest_marker(m) for m in TIERS)]  # fmt: skip
    if unmarked:
        raise pytest.UsageError(f"tests outside tests/unit without a tier marker ({', '.join(TIERS)}): "
                                + ", ".join(unmarked[:10]))  # fmt: skip
    items.sort(key=tier)  # stable: order kept within tiers


@pytest.fixture(scope="session")
def stack_config():  # type: ignore[no-untyped-def]
    from headwater.stack import StackConfig

    return StackConfig.from_env()


@pytest.fixture(scope="session")
def stack(stack_config):  # type: ignore[no-untyped-def]
    """The real local stack, started once for the session and stopped (state purged) at the end.

    Set HEADWATER_KEEP_STACK=1 to leave it running between runs while developing.
    """
    from headwater.stack import Stack

    s = Stack(stack_config)
    keep = os.environ.get("HEADWATER_KEEP_STACK") == "1"
    if not keep:
        s.down(purge=True)
    timings = s.up(progress=print)
    print(f"test stack ready: {timings}")
    yield s
    if not keep:
        s.down(purge=True)
        from headwater.stack import supervisor

        left = [svc.name for svc in s.services if supervisor.find(s.config.root, svc.name)]
        assert not left, f"stack processes still running after down: {left}"


def _needs_stack(session: pytest.Session) -> bool:
    return any(item.get_closest_marker(m) for item in session.items for m in ("integration", "e2e"))


@pytest.fixture(scope="session")
def spark(request, stack_config):  # type: ignore[no-untyped-def]
    """One SparkSession for the whole test process (Spark allows one SparkContext per process).

    When integration tests are selected it is a client of the test stack's metastore with the Kafka
    connector; when only the spark tier runs, it uses Spark's in-memory catalog and needs no service.
    """
    from pyspark.sql import SparkSession

    from headwater.stack.jars import spark_kafka_jars
    from headwater.stack.spark import build_session

    if _needs_stack(request.session):
        stack = request.getfixturevalue("stack")
        cfg = stack.config
        session = build_session(
            "headwater-tests", master="local[2]", metastore_uri=cfg.metastore_uri,
            warehouse_dir=f"file://{cfg.warehouse_dir}", jars=spark_kafka_jars(cfg),
        )  # fmt: skip
    else:
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # Python workers (mapInArrow) need pyarrow
        session = (
            SparkSession.builder.master("local[2]").appName("headwater-spark-tier")
            .config("spark.sql.shuffle.partitions", "2").config("spark.ui.enabled", "false")
            .config("spark.sql.session.timeZone", "UTC").config("spark.jars", ",".join(spark_kafka_jars(stack_config)))
            .getOrCreate()
        )  # fmt: skip
    yield session
    session.stop()


@pytest.fixture
def unique() -> str:
    """A short unique suffix for topic, table and database names of one test."""
    return uuid.uuid4().hex[:8]


@pytest.fixture
def tmp_state(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path
