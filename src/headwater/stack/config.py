"""Stack configuration: ports, folders and heap sizes, all overridable from the environment.

Every field can be set as ``HEADWATER_<FIELD>`` (e.g. ``HEADWATER_KAFKA_PORT=19092``,
``HEADWATER_HOME=/data/hw``), which is how tests and CI run a stack beside another one.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from headwater.errors import ConfigError

# Versions live in one place: the pom files next to this module pin the JVM artifacts, and
# pyproject.toml/requirements.lock pin pyspark, whose version the Spark Kafka connector must equal.


#: File in the state folder that records the profile the stack was started with.
PROFILE_FILE = "profile"


class KafkaNode(NamedTuple):
    """One Kafka broker of the stack (a combined broker + KRaft controller)."""

    node_id: int
    port: int
    controller_port: int

    @property
    def service(self) -> str:
        """Its service name: ``kafka`` for node 1 (the local profile's only broker), ``kafka-<id>`` for the others."""
        return "kafka" if self.node_id == 1 else f"kafka-{self.node_id}"


class StackConfig(BaseModel):
    """Where and how the local stack runs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    home: Path = Field(default=Path(".headwater"), description="Root for cache/ (jars) and stack/ (state).")
    cache: Path | None = Field(default=None, description="Jar and class-data cache; default <home>/cache.")
    host: str = Field(default="127.0.0.1", description="Loopback address every service binds to.")
    profile: Literal["local", "cluster"] = Field(
        default="local",
        description="local: one process per service (Kafka, HBase + Thrift, Hive metastore); cluster: the same "
        "plus real cluster engines on loopback (see docs/stack.md, 'The cluster profile').",
    )
    kafka_port: int = 9092
    kafka_controller_port: int = 9093
    kafka2_port: int = Field(default=9094, description="Cluster profile: client port of the second Kafka broker.")
    kafka2_controller_port: int = Field(default=9095, description="Cluster profile: controller port of broker 2.")
    kafka3_port: int = Field(default=9096, description="Cluster profile: client port of the third Kafka broker.")
    kafka3_controller_port: int = Field(default=9097, description="Cluster profile: controller port of broker 3.")
    zookeeper_port: int = 2181
    hbase_master_port: int = 16000
    hbase_regionserver_port: int = 16020
    thrift_port: int = 9090
    thrift2_port: int = 9091
    metastore_port: int = 9083
    spark_master_port: int = Field(default=7077, description="Spark standalone master (cluster profile).")
    spark_master_webui_port: int = Field(default=8080, description="The master's web UI; its /json is the probe.")
    spark_master_rest_port: int = Field(default=6066, description="The master's REST submission server.")
    spark_worker_port: int = Field(default=7078, description="First Spark worker's port; worker i uses this + i.")
    spark_worker_webui_port: int = Field(default=8081, description="First worker's web UI port; worker i: + i.")
    spark_workers: int = Field(default=2, ge=1, le=8, description="Spark workers of the cluster profile.")
    spark_worker_cores: int = Field(
        default=2, ge=1, description="Cores each Spark worker offers (an application takes one per worker by default)."
    )
    spark_worker_memory: str = Field(
        default="2g", description="Memory each worker offers its executors (two applications of 1g executors)."
    )
    spark_daemon_heap: str = Field(default="256m", description="Heap of the Spark master and worker JVMs.")
    # Hadoop mini cluster (cluster profile): HDFS NameNode and YARN ResourceManager, JobHistory on fixed ports
    hadoop_namenode_port: int = Field(default=9820, description="HDFS NameNode RPC (fs.defaultFS).")
    hadoop_namenode_http_port: int = 9870
    yarn_resourcemanager_port: int = Field(default=8032, description="YARN ResourceManager client RPC.")
    yarn_scheduler_port: int = 8030
    yarn_resource_tracker_port: int = 8031
    yarn_admin_port: int = 8033
    yarn_webapp_port: int = Field(default=8088, description="ResourceManager web UI and REST API.")
    yarn_jobhistory_port: int = 10020
    yarn_jobhistory_webapp_port: int = 19888
    yarn_jobhistory_admin_port: int = 10033
    yarn_shuffle_port: int = 13562
    hadoop_heap: str = "768m"
    yarn_nodemanager_memory_mb: int = Field(
        default=4096, description="Memory the one NodeManager offers to containers (accounting, not reserved)."
    )
    yarn_nodemanager_vcores: int = Field(
        default=8, description="vcores the NodeManager offers: more than the cores, so containers over-commit CPU."
    )
    kafka_heap: str = "512m"
    kafka_cluster_heap: str = Field(default="256m", description="Heap of each of the cluster profile's 3 brokers.")
    hbase_heap: str = "1g"
    thrift_heap: str = "384m"
    metastore_heap: str = "512m"
    start_timeout: float = Field(default=180.0, description="Seconds to wait for one service to be ready.")

    @classmethod
    def from_env(cls, **overrides: Any) -> StackConfig:
        """Build from ``HEADWATER_*`` environment variables, then ``overrides``."""
        values: dict[str, Any] = {}
        for name in cls.model_fields:
            env = os.environ.get(f"HEADWATER_{name.upper()}")
            if env is not None:
                values[name] = env
        values.update(overrides)
        if "profile" not in values:  # the profile `stack up --profile` recorded, so status/down/run agree with it
            home = Path(values.get("home") or cls.model_fields["home"].default)
            recorded = home.expanduser() / "stack" / PROFILE_FILE
            if recorded.is_file():
                values["profile"] = recorded.read_text().strip()
        try:
            return cls(**values)
        except ValidationError as exc:
            problems = "; ".join(
                f"HEADWATER_{'.'.join(map(str, e['loc'])).upper()}={e.get('input')!r}: {e['msg']}" for e in exc.errors()
            )
            raise ConfigError(f"invalid stack setting: {problems}") from None

    @property
    def root(self) -> Path:
        """Absolute home folder."""
        return self.home.expanduser().resolve()

    @property
    def cache_dir(self) -> Path:
        """Jar cache (Maven repository, one lib folder per component, the Spark class-data archive)."""
        return self.cache.expanduser().resolve() if self.cache else self.root / "cache"

    @property
    def state_dir(self) -> Path:
        """Runtime state: data, logs, pid files."""
        return self.root / "stack"

    @property
    def kafka_nodes(self) -> list[KafkaNode]:
        """The Kafka brokers of this profile: one locally, three (a KRaft quorum of three) in the cluster profile."""
        nodes = [KafkaNode(1, self.kafka_port, self.kafka_controller_port)]
        if self.profile == "cluster":
            nodes += [
                KafkaNode(2, self.kafka2_port, self.kafka2_controller_port),
                KafkaNode(3, self.kafka3_port, self.kafka3_controller_port),
            ]
        return nodes

    @property
    def kafka_bootstrap(self) -> str:
        """Every broker of the profile, comma-separated (a client finds the cluster through any one of them)."""
        return ",".join(f"{self.host}:{n.port}" for n in self.kafka_nodes)

    @property
    def metastore_uri(self) -> str:
        return f"thrift://{self.host}:{self.metastore_port}"

    @property
    def spark_master_url(self) -> str:
        """The Spark standalone master of the cluster profile (``spark://127.0.0.1:7077``)."""
        return f"spark://{self.host}:{self.spark_master_port}"

    @property
    def warehouse_dir(self) -> Path:
        return self.state_dir / "warehouse"

    @property
    def hadoop_conf_dir(self) -> Path:
        """Client configuration of the Hadoop mini cluster (HADOOP_CONF_DIR / YARN_CONF_DIR for Spark)."""
        return self.state_dir / "hadoop" / "conf"

    @property
    def hdfs_uri(self) -> str:
        """``fs.defaultFS`` of the Hadoop mini cluster."""
        return f"hdfs://{self.host}:{self.hadoop_namenode_port}"

    def jars(self, component: str) -> Path:
        """The lib folder of one JVM component (``kafka``, ``hbase``, ``spark-kafka``)."""
        return self.cache_dir / "jars" / component
