"""Replication of headwater's own topics: the cluster's default unless the spec names a factor (no Kafka here)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from headwater import kafka
from headwater.errors import ConfigError, ServiceUnavailable, TransientError
from headwater.sinks.kafka import KafkaSinkConfig
from headwater.spec import load_spec_text
from headwater.spec.connections import KafkaConnection
from headwater.spec.models import DeadLetterSpec, TopicSpec

SPEC = """
name: rf
source: {type: hive, table: db.orders, mode: incremental, watermark: updated_at}
topic: {name: rf.orders, key: [order_id]TOPIC}
sink: {type: kafka, topic: rf.out, key: [order_id]SINK}
dead_letter: {topic: rf.dlq DLQ}
"""


def _spec(topic: str = "", sink: str = "", dlq: str = "") -> Any:
    return load_spec_text(SPEC.replace("TOPIC", topic).replace("SINK", sink).replace("DLQ", dlq), "rf.yaml")


def test_every_topic_defaults_to_the_clusters_replication() -> None:
    spec = _spec()
    assert spec.topic.replication is None
    assert spec.dead_letter.replication is None
    assert spec.sink.replication is None
    assert (TopicSpec(name="t", key=["k"]).replication, DeadLetterSpec(topic="d").replication) == (None, None)
    assert KafkaSinkConfig(topic="o", key=["k"]).replication is None


def test_an_explicit_replication_is_kept() -> None:
    spec = _spec(topic=", replication: 3", sink=", replication: 2", dlq=", replication: 1")
    assert (spec.topic.replication, spec.sink.replication, spec.dead_letter.replication) == (3, 2, 1)


@pytest.mark.parametrize("where", ["topic", "sink", "dlq"])
def test_replication_below_one_is_a_spec_error_naming_the_field(where: str) -> None:
    with pytest.raises(ConfigError) as err:
        _spec(**{where: ", replication: 0"})
    field = {"topic": "topic.replication", "sink": "sink.replication", "dlq": "dead_letter.replication"}[where]
    assert "rf.yaml" in str(err.value) and field in str(err.value), str(err.value)


class _FakeAdmin:
    """The two admin calls :func:`kafka.ensure_topic` makes, recorded (a cluster of ``brokers`` brokers)."""

    def __init__(self, brokers: int, topics: tuple[str, ...] = (), leaderless_asks: int = 0) -> None:
        self.brokers = {i: object() for i in range(1, brokers + 1)}
        self.topics: dict[str, Any] = {t: object() for t in topics}
        self.created: list[Any] = []
        self.leaderless_asks = leaderless_asks  # metadata asks after creation that see no leader yet
        self.asks = 0

    def list_topics(self, topic: str | None = None, timeout: float = 0) -> Any:
        if topic is None:
            return SimpleNamespace(brokers=self.brokers, topics=self.topics)
        self.asks += 1
        leader = -1 if self.asks <= self.leaderless_asks else 1
        partitions = {i: SimpleNamespace(leader=leader, error=None) for i in range(self.topics[topic].num_partitions)}
        return SimpleNamespace(topics={topic: SimpleNamespace(error=None, partitions=partitions)})

    def create_topics(self, topics: list[Any]) -> dict[str, Any]:
        self.created += topics
        self.topics.update({t.topic: t for t in topics})
        return {t.topic: SimpleNamespace(result=lambda timeout: None) for t in topics}


@pytest.fixture
def cluster(monkeypatch: pytest.MonkeyPatch) -> _FakeAdmin:
    fake = _FakeAdmin(brokers=3)
    monkeypatch.setattr(kafka, "admin", lambda conn: fake)
    monkeypatch.setattr(kafka, "watermarks", lambda conn, topic: {})  # every leader answers at once
    return fake


CONN = KafkaConnection(bootstrap_servers="b1:9092,b2:9092,b3:9092")


def test_no_factor_asks_kafka_for_the_brokers_default(cluster: _FakeAdmin) -> None:
    assert kafka.ensure_topic(CONN, "t", 2) is True
    (created,) = cluster.created
    assert (created.topic, created.num_partitions, created.replication_factor) == ("t", 2, -1)  # KIP-464


def test_an_explicit_factor_is_sent_as_given(cluster: _FakeAdmin) -> None:
    assert kafka.ensure_topic(CONN, "t", 1, 3, {"cleanup.policy": "compact"}) is True
    (created,) = cluster.created
    assert (created.replication_factor, created.config) == (3, {"cleanup.policy": "compact"})


def test_a_factor_above_the_brokers_names_the_field_and_value(cluster: _FakeAdmin) -> None:
    with pytest.raises(ConfigError) as err:
        kafka.ensure_topic(CONN, "t", 2, 4, field="dead_letter.replication")
    assert str(err.value).startswith("dead_letter.replication: 4 is more than the 3 broker(s) of Kafka at b1:9092,")
    assert "leave it out to take the cluster's default.replication.factor" in str(err.value)
    assert cluster.created == []
    assert not isinstance(err.value, ServiceUnavailable)  # a spec error, not retried


def test_a_created_topic_is_returned_once_every_partition_has_a_leader(cluster: _FakeAdmin) -> None:
    cluster.leaderless_asks = 3  # the brokers learn of the topic a moment after CreateTopics answers
    assert kafka.ensure_topic(CONN, "t", 2) is True
    assert cluster.asks == 4


def test_a_created_topic_without_leaders_is_a_transient_error_naming_it(
    cluster: _FakeAdmin, monkeypatch: pytest.MonkeyPatch
) -> None:
    cluster.leaderless_asks = 10**6
    monkeypatch.setattr(kafka, "TOPIC_READY_SECONDS", 0.3)
    with pytest.raises(ServiceUnavailable, match="topic 't' was created but has no leader for every partition"):
        kafka.ensure_topic(CONN, "t", 2)


def test_an_existing_topic_is_left_alone_whatever_the_factor(cluster: _FakeAdmin) -> None:
    cluster.topics["t"] = object()
    assert kafka.ensure_topic(CONN, "t", 2, 9) is False
    assert cluster.created == []


def test_the_position_store_topic_takes_the_clusters_replication(
    cluster: _FakeAdmin, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = kafka.PositionStore(CONN, "_headwater_state")
    monkeypatch.setattr(store, "producer", lambda: None)
    store.ensure()
    (created,) = cluster.created
    assert (created.topic, created.num_partitions, created.replication_factor) == ("_headwater_state", 1, -1)
    assert created.config == {"cleanup.policy": "compact"}  # min.insync.replicas: the cluster's


def test_producers_wait_for_all_in_sync_replicas_idempotently() -> None:
    assert kafka.PRODUCER_OPTIONS["kafka.acks"] == "all"
    assert kafka.PRODUCER_OPTIONS["kafka.enable.idempotence"] == "true"


def test_a_created_topic_is_returned_once_its_leaders_answer_for_the_offsets(
    cluster: _FakeAdmin, monkeypatch: pytest.MonkeyPatch
) -> None:
    asks: list[str] = []

    def leaders_not_yet(conn: Any, topic: str) -> dict[int, tuple[int, int]]:
        asks.append(topic)
        if len(asks) < 3:  # the leader does not know the topic yet ("Unknown topic or partition")
            raise TransientError(f"topic '{topic}' partition 0 not yet known to its leader")
        return {0: (0, 0), 1: (0, 0)}

    monkeypatch.setattr(kafka, "watermarks", leaders_not_yet)
    assert kafka.ensure_topic(CONN, "t", 2) is True
    assert asks == ["t", "t", "t"]
