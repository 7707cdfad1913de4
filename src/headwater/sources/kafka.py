"""``kafka``: an application's own Kafka topic as the source; the process stage reads it directly.

Most real-time data never sits in a table: applications write events to Kafka themselves. Such a
source needs no ingest stage; the topic *is* the pipeline's topic. Records are JSON objects decoded
with the spec's ``schema`` (or, without one, a schema inferred from a sample of the topic and logged
for you to pin); malformed records go to the dead-letter topic like any other. The Kafka key,
timestamp, partition and offset can be fields of the record.

Example (spec)::

    source:
      type: kafka
      topic: shop.page_views
      format: json
      key_field: user_key          # the Kafka key, as text
      timestamp_field: kafka_ts    # the Kafka append time
    schema: {user_id: string, page: string, amount: "decimal(10,2)", ts: timestamp}

Where the process stage starts in a topic it has never read: ``process.starting_offsets``
(``earliest``, the default, or ``latest``); after that its checkpoint decides.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field

from headwater.errors import ConfigError, NotFoundError
from headwater.sources.base import Increment, Source, SourceConfig

if TYPE_CHECKING:
    from pyspark.sql import SparkSession
    from pyspark.sql.types import StructType

log = logging.getLogger("headwater.sources.kafka")

SAMPLE_RECORDS = 500  # read to infer a schema when the spec declares none


class KafkaSourceConfig(SourceConfig):
    """Config of the ``kafka`` source."""

    type: Literal["kafka"] = "kafka"
    topic: str = Field(description="The application's topic.", pattern=r"^[A-Za-z0-9._-]{1,249}$")
    format: Literal["json"] = Field(default="json", description="Encoding of the record values.")
    key_fields: list[str] = Field(
        default_factory=list,
        description="Record fields the producers key by (then a record without a Kafka key is a dead letter).",
    )
    key_field: str | None = Field(default=None, description="Make the Kafka key (as text) this record field.")
    timestamp_field: str | None = Field(default=None, description="Make the Kafka timestamp this record field.")
    partition_field: str | None = Field(default=None, description="Make the Kafka partition this record field.")
    offset_field: str | None = Field(default=None, description="Make the Kafka offset this record field.")

    def topic_spec(self) -> dict[str, Any] | None:
        return {"name": self.topic, "key": list(self.key_fields)}

    def kafka_fields(self) -> dict[str, str]:
        return {
            name: column
            for name, column in ((self.key_field, "key"), (self.timestamp_field, "timestamp"),
                                 (self.partition_field, "partition"), (self.offset_field, "offset"))
            if name
        }  # fmt: skip


class KafkaSource(Source):
    """An application's Kafka topic, read by the process stage itself (no ingest stage)."""

    Config = KafkaSourceConfig
    config: KafkaSourceConfig
    needs_ingest: ClassVar[bool] = False

    def __init__(self, config: KafkaSourceConfig, connections: Any = None) -> None:
        super().__init__(config)
        self.connections = connections

    def describe(self) -> str:
        return f"kafka topic {self.config.topic}"

    def check(self, spark: SparkSession) -> None:
        from headwater import kafka

        conn = self._kafka()
        if self.config.topic not in kafka.admin(conn).list_topics(timeout=10).topics:
            raise NotFoundError(
                f"source.topic: Kafka topic '{self.config.topic}' not found at {conn.bootstrap_servers}"
            )

    def read(self, spark: SparkSession, position: dict[str, Any] | None) -> Increment | None:
        raise ConfigError("source: a kafka source has no ingest stage; run the process stage (`--stage process`)")

    def schema(self, spark: SparkSession) -> StructType:
        """A schema inferred from up to :data:`SAMPLE_RECORDS` records of the topic (declare it to pin it)."""
        sample = self.sample(SAMPLE_RECORDS)
        if not sample:
            raise ConfigError(f"schema: topic '{self.config.topic}' is empty; declare the record schema as `schema:`")
        df = spark.read.json(spark.sparkContext.parallelize(sample))
        fields = {f.name: f.dataType.simpleString() for f in df.schema.fields if f.name != "_corrupt_record"}
        log.warning("schema inferred from %d records of %s; pin it in the spec:\nschema: %s", len(sample),
                    self.config.topic, json.dumps(fields))  # fmt: skip
        return df.schema

    def sample(self, limit: int) -> list[str]:
        """Up to ``limit`` record values (text) from the start of every partition."""
        from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

        from headwater import kafka

        consumer = Consumer(kafka.client_config(self._kafka(), **{"group.id": "headwater-sample",
                                                                  "enable.auto.commit": False}))  # fmt: skip
        try:
            parts = consumer.list_topics(self.config.topic, timeout=10).topics[self.config.topic].partitions
            consumer.assign([TopicPartition(self.config.topic, p, OFFSET_BEGINNING) for p in parts])
            out: list[str] = []
            misses = 0
            while len(out) < limit and misses < 3:
                msg = consumer.poll(1.0)
                if msg is None:
                    misses += 1
                    continue
                value = msg.value()
                if not msg.error() and value is not None:
                    out.append(value.decode("utf-8", errors="replace"))
            return out
        finally:
            consumer.close()

    def _kafka(self) -> Any:
        if self.connections is None:
            raise ConfigError("source: the kafka source needs the pipeline's connections")
        return self.connections.kafka
