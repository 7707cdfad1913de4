"""Apache Kafka 4.x in KRaft mode: one combined broker + controller on loopback."""

from __future__ import annotations

import base64
import subprocess
import uuid

from headwater.errors import StackError
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
    """Kafka broker + KRaft controller; storage is formatted on first start."""

    name = "kafka"
    component = "kafka"

    @property
    def ports(self) -> list[int]:
        return [self.config.kafka_port, self.config.kafka_controller_port]

    def _properties(self) -> str:
        c = self.config
        return "\n".join([
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.voters=1@{c.host}:{c.kafka_controller_port}",
            f"listeners=PLAINTEXT://{c.host}:{c.kafka_port},CONTROLLER://{c.host}:{c.kafka_controller_port}",
            f"advertised.listeners=PLAINTEXT://{c.host}:{c.kafka_port}",
            "controller.listener.names=CONTROLLER",
            "inter.broker.listener.name=PLAINTEXT",
            "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            f"log.dirs={self.dir / 'data'}",
            "offsets.topic.replication.factor=1",
            "offsets.topic.num.partitions=2",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "transaction.state.log.num.partitions=2",
            "share.coordinator.state.topic.replication.factor=1",
            "share.coordinator.state.topic.min.isr=1",
            "group.initial.rebalance.delay.ms=0",
            "num.network.threads=2",
            "num.io.threads=4",
            "num.partitions=2",
            "auto.create.topics.enable=false",
            "log.cleaner.threads=1",
            "",
        ])  # fmt: skip

    def _jvm_opts(self) -> list[str]:
        heap = self.config.kafka_heap
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
            "-t", new_cluster_id(), "-c", str(self.dir / "server.properties"), "--ignore-formatted",
        ]  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise StackError(f"kafka: formatting storage in {self.dir / 'data'} failed:\n{proc.stdout}{proc.stderr}")

    def command(self) -> list[str]:
        return [*self._jvm_opts(), "-cp", self.classpath(), "kafka.Kafka", str(self.dir / "server.properties")]

    def probe(self) -> bool:
        from confluent_kafka.admin import AdminClient

        admin = AdminClient({"bootstrap.servers": self.config.kafka_bootstrap, "log_level": 0})
        md = admin.list_topics(timeout=3)
        return len(md.brokers) > 0


def new_cluster_id() -> str:
    """A random KRaft cluster id (22 url-safe base64 characters), never starting with ``-``.

    The storage tool's argument parser would read a leading ``-`` as an option and fail; Kafka's own
    ``Uuid.randomUuid`` redraws in that case too.
    """
    while (cluster_id := base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")).startswith("-"):
        pass
    return cluster_id
