"""The cluster tier: a cluster-profile stack (Spark standalone master + workers, three Kafka brokers, Hadoop).

It runs after the single-node tiers. To leave the two cores and the memory to the cluster, the
single-node test stack is stopped first; the cluster stack takes its ports (same base ports, its own
home folder) and is stopped, state purged, at the end of the session.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


def cluster_env() -> dict[str, str]:
    """Environment for CLI subprocesses and clients of the cluster stack."""
    home = Path(os.environ["HEADWATER_HOME"])
    return {**os.environ, "HEADWATER_HOME": str(home.with_name(home.name + "-cluster")), "HEADWATER_PROFILE": "cluster"}


@pytest.fixture(scope="session")
def cluster_stack() -> Iterator[Any]:
    """The cluster-profile stack, started once for the tier and stopped (state purged) at the end."""
    from headwater.stack import Stack, StackConfig

    keep = os.environ.get("HEADWATER_KEEP_STACK") == "1"
    if not keep:
        Stack(StackConfig.from_env()).down(purge=True)  # the single-node test stack, if the other tiers started it
    env = cluster_env()
    cfg = StackConfig.from_env(home=Path(env["HEADWATER_HOME"]), profile="cluster")
    s = Stack(cfg)
    if not keep:
        s.down(purge=True)
    timings = s.up(progress=print)
    s.record_profile()
    print(f"cluster stack ready: {timings}")
    yield s
    if not keep:
        s.down(purge=True)
        from headwater.stack import supervisor

        left = [svc.name for svc in s.services if supervisor.find(s.config.root, svc.name)]
        assert not left, f"cluster stack processes still running after down: {left}"


@pytest.fixture(scope="session")
def cluster_spark(cluster_stack: Any) -> Iterator[Any]:
    """A local SparkSession that is a client of the cluster stack's metastore (to create tables and read the oracle).

    One SparkContext per process: a session of the single-node tiers (its stack is gone) is stopped first.
    """
    from pyspark.sql import SparkSession

    from headwater.stack.jars import spark_kafka_jars
    from headwater.stack.spark import build_session

    active = SparkSession.getActiveSession()
    if active is not None:
        active.stop()
    cfg = cluster_stack.config
    session = build_session(
        "headwater-cluster-tests", master="local[2]", metastore_uri=cfg.metastore_uri,
        warehouse_dir=f"file://{cfg.warehouse_dir}", jars=spark_kafka_jars(cfg),
    )  # fmt: skip
    yield session
    session.stop()
