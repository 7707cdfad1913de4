"""Kafka helpers shared by the stages: client config, topic creation, offsets, and the position store."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from headwater.errors import ConfigError, NotFoundError, ServiceUnavailable, TransientError
from headwater.faults import classify

if TYPE_CHECKING:
    from headwater.spec.connections import KafkaConnection


# Producer settings for Spark's Kafka sink: idempotent, all replicas, bounded waits so a broker
# outage fails the write (and the loop retries it) instead of hanging.
PRODUCER_OPTIONS = {
    "kafka.acks": "all",
    "kafka.enable.idempotence": "true",
    "kafka.linger.ms": "20",
    "kafka.batch.size": "262144",
    "kafka.compression.type": "lz4",
    "kafka.max.block.ms": "30000",
    "kafka.delivery.timeout.ms": "60000",
    "kafka.request.timeout.ms": "20000",
}


def use_v2_writes(spark: Any) -> None:
    """Write to Kafka through the DataSource V2 path: there an observation completes with the write
    (through the V1 path, the default for "kafka", it never does)."""
    key = "spark.sql.sources.useV1SourceList"
    sources = [s for s in str(spark.conf.get(key)).split(",") if s.strip().lower() != "kafka"]
    spark.conf.set(key, ",".join(sources))


def client_config(conn: KafkaConnection, **extra: Any) -> dict[str, Any]:
    """confluent-kafka configuration for ``conn`` (its extra options included, secrets revealed).

    The one place, with :func:`spark_options`, where secret option values leave their ``Secret``
    wrapper: hand the result to a client, never to a message or a log line.
    """
    return {**conn.client_config(), **extra}


def spark_options(conn: KafkaConnection) -> dict[str, str]:
    """The same connection as options of Spark's Kafka source/sink (``kafka.`` prefix, secrets revealed)."""
    return conn.spark_options()


def admin(conn: KafkaConnection) -> Any:
    from confluent_kafka.admin import AdminClient

    return AdminClient(client_config(conn))


def check_reachable(conn: KafkaConnection, timeout: float = 10.0) -> None:
    """Raise ServiceUnavailable naming the address if no broker answers within ``timeout``."""
    from confluent_kafka import KafkaException

    try:
        md = admin(conn).list_topics(timeout=timeout)
    except KafkaException as exc:
        raise ServiceUnavailable(f"Kafka not reachable at {conn.bootstrap_servers}: {exc}") from None
    if not md.brokers:
        raise ServiceUnavailable(f"Kafka not reachable at {conn.bootstrap_servers}: no broker answered")


#: CreateTopics' replication factor for "the broker's default.replication.factor" (KIP-464, Kafka 2.4+).
CLUSTER_DEFAULT_REPLICATION = -1


def ensure_topic(
    conn: KafkaConnection,
    name: str,
    partitions: int,
    replication: int | None = None,
    config: dict[str, str] | None = None,
    *,
    field: str = "replication",
) -> bool:
    """Create ``name`` if missing. Returns True if it was created.

    ``replication`` None takes the cluster's ``default.replication.factor`` (and its
    ``min.insync.replicas``), so headwater's topics are replicated as the cluster they run on is.

    Raises:
        ConfigError: an explicit ``replication`` above the number of brokers, naming ``field`` (the spec
            field it came from) and the value.
        ServiceUnavailable: Kafka did not answer or refused the topic.
    """
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import NewTopic  # type: ignore[attr-defined]

    client = admin(conn)
    try:
        md = client.list_topics(timeout=10)
        if name in md.topics:
            return False
        if replication is not None and replication > len(md.brokers):
            raise ConfigError(
                f"{field}: {replication} is more than the {len(md.brokers)} broker(s) of Kafka at "
                f"{conn.bootstrap_servers}, so topic '{name}' cannot be created; set at most {len(md.brokers)}, or "
                "leave it out to take the cluster's default.replication.factor"
            )
        factor = CLUSTER_DEFAULT_REPLICATION if replication is None else replication
        futures = client.create_topics([NewTopic(name, partitions, factor, config=config or {})])
        futures[name].result(timeout=30)
        _wait_for_leaders(client, conn, name)
        return True
    except KafkaException as exc:
        err = exc.args[0] if exc.args else None
        if isinstance(err, KafkaError) and err.code() == KafkaError.TOPIC_ALREADY_EXISTS:
            return False
        raise ServiceUnavailable(f"Kafka at {conn.bootstrap_servers}: cannot create topic '{name}': {exc}") from None


#: How long a topic just created may take until every partition has a leader that answers for its offsets.
TOPIC_READY_SECONDS = 30.0


def _wait_for_leaders(client: Any, conn: KafkaConnection, name: str) -> None:
    """Return once the metadata shows topic ``name`` with a leader for every partition, and every leader
    answers for its partition's offsets.

    CreateTopics answers when the controller has the topic; the brokers learn it a moment later, and a
    client asking one of them meanwhile gets "Unknown partition" (from its own metadata) or "Unknown topic
    or partition" (from the leader). Both were seen on the three-broker stack: the ingest stage read the
    offsets of the topic it had just created 0.2 s later and failed.
    """
    deadline = time.monotonic() + TOPIC_READY_SECONDS
    while True:
        meta = client.list_topics(topic=name, timeout=10).topics.get(name)
        if (
            meta is not None
            and meta.error is None
            and meta.partitions
            and all(p.leader >= 0 and p.error is None for p in meta.partitions.values())
        ):
            try:
                watermarks(conn, name)
                return
            except (NotFoundError, TransientError):
                pass
        if time.monotonic() >= deadline:
            raise ServiceUnavailable(
                f"Kafka at {conn.bootstrap_servers}: topic '{name}' was created but has no leader for every "
                f"partition after {TOPIC_READY_SECONDS:.0f}s"
            )
        time.sleep(0.1)


def watermarks(conn: KafkaConnection, topic: str) -> dict[int, tuple[int, int]]:
    """(log start offset, high watermark) of every partition of ``topic``.

    Raises:
        NotFoundError: the topic does not exist.
        TransientError: the broker is away (down, restarting, electing a leader); worth retrying.
    """
    from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

    consumer = Consumer(client_config(conn, **{"group.id": "headwater-offsets", "enable.auto.commit": False}))
    try:
        with broker_away_is_transient(conn, f"reading the offsets of topic '{topic}'"):
            meta = consumer.list_topics(topic, timeout=10).topics.get(topic)
            if meta is None or (meta.error is not None and meta.error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART):
                raise NotFoundError(f"Kafka topic '{topic}' not found at {conn.bootstrap_servers}")
            if meta.error is not None:
                raise TransientError(f"Kafka at {conn.bootstrap_servers}: topic '{topic}': {meta.error.str()}")
            out = {}
            for p in meta.partitions:
                try:
                    low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10, cached=False)
                except KafkaException as exc:
                    err = exc.args[0] if exc.args else None
                    if isinstance(err, KafkaError) and err.code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
                        # The metadata lists the topic but its leader does not know it yet (just created).
                        raise TransientError(f"Kafka at {conn.bootstrap_servers}: topic '{topic}' partition {p} "
                                             "not yet known to its leader") from None  # fmt: skip
                    raise
                out[p] = (low, high)
            return out
    finally:
        consumer.close()


def end_offsets(conn: KafkaConnection, topic: str) -> dict[int, int]:
    """High watermark of every partition of ``topic`` (errors as :func:`watermarks`)."""
    return {p: high for p, (_, high) in watermarks(conn, topic).items()}


def start_offsets(conn: KafkaConnection, topic: str) -> dict[int, int]:
    """Log start offset of every partition of ``topic``: older records are gone (retention, deletion)."""
    return {p: low for p, (low, _) in watermarks(conn, topic).items()}


@contextlib.contextmanager
def broker_away_is_transient(conn: KafkaConnection, doing: str) -> Iterator[None]:
    """Raise the errors of a broker that is away (refused, timed out, no leader) as TransientError.

    :func:`headwater.faults.classify` decides; other Kafka errors pass through unchanged.
    """
    from confluent_kafka import KafkaError, KafkaException

    try:
        yield
    except KafkaException as exc:
        err = exc.args[0] if exc.args else None
        if isinstance(err, KafkaError) and classify(exc).transient:
            raise TransientError(f"Kafka at {conn.bootstrap_servers}: {doing}: {err.str()}") from None
        raise


class PositionStore:
    """Durable source positions in a compacted Kafka topic, keyed by pipeline.

    A cluster deployment finds them where it finds the data; nothing lives only on one local disk.
    """

    def __init__(self, conn: KafkaConnection, topic: str) -> None:
        self.conn = conn
        self.topic = topic
        self._producer: Any = None
        self._ensured = False

    def ensure(self) -> None:
        """Create the topic if missing, and the producer, so it has its idempotence id before the first commit."""
        if not self._ensured:
            # Replicated as the cluster replicates (its default factor and min.insync.replicas), like the data.
            ensure_topic(self.conn, self.topic, 1, config={"cleanup.policy": "compact"})
            self._ensured = True
        self.producer()

    def producer(self) -> Any:
        """One idempotent producer per store: a new one costs ~0.5 s before its first acknowledged record."""
        if self._producer is None:
            from confluent_kafka import Producer

            self._producer = Producer(
                client_config(self.conn, **{"enable.idempotence": True, "acks": "all", "linger.ms": 0})
            )
            self._producer.poll(0)
        return self._producer

    def close(self) -> None:
        """Flush and drop the producer (commits already waited for their acknowledgements)."""
        if self._producer is not None:
            self._producer.flush(10)
            self._producer = None

    def load(self, key: str) -> dict[str, Any] | None:
        """The last committed position of ``key``, or None."""
        from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

        self.ensure()
        consumer = Consumer(client_config(self.conn, **{"group.id": "headwater-state", "enable.auto.commit": False}))
        try:
            with broker_away_is_transient(self.conn, f"reading positions from topic '{self.topic}'"):
                _, high = consumer.get_watermark_offsets(TopicPartition(self.topic, 0), timeout=10, cached=False)
            if high == 0:
                return None
            consumer.assign([TopicPartition(self.topic, 0, OFFSET_BEGINNING)])
            latest: dict[str, Any] | None = None
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                msg = consumer.poll(1.0)
                if msg is None or msg.error():
                    continue
                value = msg.value()
                if msg.key() == key.encode():
                    latest = None if value is None else json.loads(value)
                if (msg.offset() or 0) >= high - 1:
                    return latest
            raise TransientError(f"reading positions from Kafka topic '{self.topic}' timed out")
        finally:
            consumer.close()

    def commit(self, key: str, value: dict[str, Any] | None) -> None:
        """Store ``value`` for ``key`` (None deletes it) and wait for Kafka's acknowledgement."""
        self.ensure()  # on a new cluster the first commit may come before any load (a reset)
        producer = self.producer()
        errors: list[str] = []
        payload = None if value is None else json.dumps(value, sort_keys=True).encode()
        producer.produce(
            self.topic,
            key=key.encode(),
            value=payload,
            on_delivery=lambda err, _msg: errors.append(str(err)) if err else None,
        )
        if producer.flush(30) != 0 or errors:
            raise TransientError(f"committing position '{key}' to Kafka topic '{self.topic}' failed: {errors}")


PRODUCER_MAX_REQUEST_BYTES = 1_048_576  # the producer's max.request.size default (Spark's and librdkafka's)
RECORD_OVERHEAD_BYTES = 512  # batch and record headers a record carries besides its key and value


def max_record_bytes(conn: KafkaConnection, topic: str) -> int:
    """The largest key + value a producer can append to ``topic``: the smaller of the topic's
    ``max.message.bytes`` and the producer's ``max.request.size``, less the framing of one record."""
    from confluent_kafka.admin import ConfigResource  # type: ignore[attr-defined]

    resource = ConfigResource("topic", topic)
    with broker_away_is_transient(conn, f"reading the config of topic '{topic}'"):
        client = admin(conn)  # kept referenced until the future resolves: a collected client cancels it
        configs = client.describe_configs([resource])[resource].result(timeout=10)
    topic_limit = int(configs["max.message.bytes"].value)
    producer_limit = int(conn.client_config().get("max.request.size", PRODUCER_MAX_REQUEST_BYTES))
    return min(topic_limit, producer_limit) - RECORD_OVERHEAD_BYTES
