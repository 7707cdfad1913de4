"""Apache Kafka 4.x in KRaft mode on loopback: combined broker + controller processes (one, or three in a cluster)."""

from __future__ import annotations

import base64
import subprocess
import uuid

from headwater.errors import StackError
from headwater.stack.config import KafkaNode, StackConfig
from headwater.stack.service import Service, java

_LOG4J2 = """\
appender.out.type = Console
appender.out.name = STDOUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = STDOUT
logger.k.name = kafka
logger.k.level = WARN
logger.ak.name = org.apache.kafka
logger.ak.level = WARN
logger.st.name = state.change.logger
logger.st.level = WARN
"""


class KafkaService(Service):
    """One Kafka broker + KRaft controller; its storage is formatted on first start.

    The local profile runs one (node 1, service ``kafka``). The cluster profile runs three (``kafka``,
    ``kafka-2``, ``kafka-3``), each with its own data folder and ports, forming one controller quorum of
    three and one cluster id; topics default to replication factor 3 with ``min.insync.replicas=2``.
    """

    component = "kafka"

    def __init__(self, config: StackConfig, node: KafkaNode | None = None) -> None:
        super().__init__(config)
        self.node = node or config.kafka_nodes[0]
        self.name = self.node.service
        self.stop_group = "kafka" if self.cluster else None

    @property
    def cluster(self) -> bool:
        """True when this broker is one of several (the cluster profile)."""
        return len(self.config.kafka_nodes) > 1

    @property
    def ports(self) -> list[int]:
        return [self.node.port, self.node.controller_port]

    def _replication(self) -> list[str]:
        """Replication of Kafka's own topics and the default of every topic created without a factor."""
        rf, isr = (3, 2) if self.cluster else (1, 1)
        return [
            f"default.replication.factor={rf}",
            f"min.insync.replicas={isr}",
            f"offsets.topic.replication.factor={rf}",
            f"transaction.state.log.replication.factor={rf}",
            f"transaction.state.log.min.isr={isr}",
            f"share.coordinator.state.topic.replication.factor={rf}",
            f"share.coordinator.state.topic.min.isr={isr}",
        ]

    def _properties(self) -> str:
        c, n = self.config, self.node
        voters = ",".join(f"{v.node_id}@{c.host}:{v.controller_port}" for v in c.kafka_nodes)
        return "\n".join([
            "process.roles=broker,controller",
            f"node.id={n.node_id}",
            f"controller.quorum.voters={voters}",
            f"listeners=PLAINTEXT://{c.host}:{n.port},CONTROLLER://{c.host}:{n.controller_port}",
            f"advertised.listeners=PLAINTEXT://{c.host}:{n.port}",
            "controller.listener.names=CONTROLLER",
            "inter.broker.listener.name=PLAINTEXT",
            "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            f"log.dirs={self.dir / 'data'}",
            *self._replication(),
            "offsets.topic.num.partitions=2",
            "transaction.state.log.num.partitions=2",
            "group.initial.rebalance.delay.ms=0",
            "num.network.threads=2",
            f"num.io.threads={2 if self.cluster else 4}",
            "num.replica.fetchers=1",
            "num.partitions=2",
            "auto.create.topics.enable=false",
            "log.cleaner.threads=1",
            "",
        ])  # fmt: skip

    def _jvm_opts(self) -> list[str]:
        heap = self.config.kafka_cluster_heap if self.cluster else self.config.kafka_heap
        return [
            f"-Xms{heap}", f"-Xmx{heap}", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
            "-Djava.awt.headless=true", f"-Dkafka.logs.dir={self.dir / 'logs'}",
            f"-Dlog4j2.configurationFile=file:{self.dir / 'log4j2.properties'}",
        ]  # fmt: skip

    def prepare(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "server.properties").write_text(self._properties())
        (self.dir / "log4j2.properties").write_text(_LOG4J2)
        if (self.dir / "data" / "meta.properties").exists():
            return
        cmd = [
            java(), *self._jvm_opts(), "-cp", self.classpath(), "kafka.tools.StorageTool", "format",
            "-t", cluster_id(self.config), "-c", str(self.dir / "server.properties"), "--ignore-formatted",
        ]  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise StackError(
                f"{self.name}: formatting storage in {self.dir / 'data'} failed:\n{proc.stdout}{proc.stderr}"
            )

    def command(self) -> list[str]:
        return [*self._jvm_opts(), "-cp", self.classpath(), "kafka.Kafka", str(self.dir / "server.properties")]

    def probe(self) -> bool:
        """True when this broker answers on its own port and is registered in the cluster's metadata."""
        from confluent_kafka.admin import AdminClient

        admin = AdminClient({"bootstrap.servers": f"{self.config.host}:{self.node.port}", "log_level": 0})
        md = admin.list_topics(timeout=3)
        return self.node.node_id in md.brokers


#: File in the state folder holding the KRaft cluster id every broker of the stack is formatted with.
CLUSTER_ID_FILE = "kafka-cluster-id"


def cluster_id(config: StackConfig) -> str:
    """The stack's KRaft cluster id: drawn once, then read back, so all brokers format one cluster."""
    path = config.state_dir / CLUSTER_ID_FILE
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(new_cluster_id() + "\n")
    return path.read_text().strip()


def new_cluster_id() -> str:
    """A random KRaft cluster id (22 url-safe base64 characters), never starting with ``-``.

    The storage tool's argument parser would read a leading ``-`` as an option and fail; Kafka's own
    ``Uuid.randomUuid`` redraws in that case too.
    """
    while (cluster_id := base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")).startswith("-"):
        pass
    return cluster_id
