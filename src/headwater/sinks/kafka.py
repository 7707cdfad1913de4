"""``kafka``: keyed JSON records on an output topic, for downstream consumers.

Example (spec)::

    sinks:
      - {type: hbase, ...}
      - type: kafka
        name: alerts
        topic: shop.alerts
        key: [user_id]
        columns: [user_id, window_start, spend]   # default: every column

Delivery: **at least once**, stated honestly. The producer is idempotent (``acks=all``), so a retry
inside one write never duplicates a record; but a micro-batch that is replayed after a crash (the
stage died after this sink wrote and before Spark committed the batch) appends its records again.
Each record therefore carries its source position, in the header ``hw.source``
(``<topic>:<partition>:<offset>``) and in the value's ``_source`` field, so a consumer drops a
record whose position it has already seen. Aggregated rows (a ``window``) have no single source
position: their key (with the window) is their identity and the newest record for it wins.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import Field

from headwater.errors import ConfigError
from headwater.sinks.base import Sink, SinkConfig, SinkResult
from headwater.spec.models import REPLICATION_HELP, Replication

if TYPE_CHECKING:
    from pyspark.sql import DataFrame
    from pyspark.sql.types import StructType

_POSITION = ("_hw_topic", "_hw_partition", "_hw_offset")


class KafkaSinkConfig(SinkConfig):
    """Config of the ``kafka`` sink."""

    type: Literal["kafka"] = "kafka"
    topic: str = Field(description="Output topic.", pattern=r"^[A-Za-z0-9._-]{1,249}$")
    key: list[str] = Field(min_length=1, description="Record fields forming the Kafka key (JSON array if several).")
    columns: list[str] | None = Field(default=None, description="Fields of the value; default every record field.")
    format: Literal["json"] = "json"
    partitions: int = Field(default=2, ge=1, description="Partitions, used when the topic is created.")
    replication: Replication = Field(default=None, description=REPLICATION_HELP)
    position_field: str | None = Field(
        default="_source", description="Value field carrying the source position; null: header only."
    )

    def fields_named(self) -> dict[str, list[str]]:
        return {"sink.key": list(self.key), "sink.columns": list(self.columns or [])}


class KafkaSink(Sink):
    """Appends each micro-batch to a Kafka topic with Spark's Kafka writer (idempotent producer)."""

    Config = KafkaSinkConfig
    config: KafkaSinkConfig
    guarantee: ClassVar[str] = (
        "at least once: a replayed batch appends again; each record carries its source position to drop duplicates"
    )

    def required_fields(self) -> list[str]:
        return list(self.config.key)

    def columns_used(self, schema: StructType) -> list[str]:
        names = schema.fieldNames()
        data = self.config.columns or [n for n in names if not n.startswith("_hw_")]
        return list(dict.fromkeys([*self.config.key, *data, *(p for p in _POSITION if p in names)]))

    def check(self, schema: StructType) -> None:
        names = schema.fieldNames()
        available = ", ".join(n for n in names if not n.startswith("_hw_"))
        for where, wanted in (("key", self.config.key), ("columns", self.config.columns or [])):
            missing = [c for c in wanted if c not in names]
            if missing:
                raise ConfigError(f"sink {self.name}: {where} {missing} not in the records; available: {available}")

    def prepare(self) -> None:
        from headwater import kafka

        c = self.config
        kafka.ensure_topic(
            self.connections.kafka, c.topic, c.partitions, c.replication, field=f"sink {self.name}: replication"
        )

    def drop(self) -> list[str]:
        from headwater import kafka

        client = kafka.admin(self.connections.kafka)  # referenced until its futures resolve
        if self.config.topic not in client.list_topics(timeout=10).topics:
            return []
        client.delete_topics([self.config.topic])[self.config.topic].result(timeout=30)
        return [f"topic {self.config.topic} deleted"]

    def describe_target(self) -> str:
        return f"kafka topic {self.config.topic}"

    def write(self, df: DataFrame) -> SinkResult:
        from pyspark.sql import Observation
        from pyspark.sql import functions as F

        from headwater import kafka
        from headwater.records import complete

        c = self.config
        records = self._records(df)
        kafka.use_v2_writes(df.sparkSession)  # an observation completes with the write only on the V2 path
        obs = Observation(f"headwater_kafka_sink_{id(records)}")
        counted = records.observe(obs, F.count(F.lit(1)).alias("rows"))
        (
            counted.write.format("kafka").options(**kafka.spark_options(self.connections.kafka))
            .options(**kafka.PRODUCER_OPTIONS).option("includeHeaders", "true").option("topic", c.topic)
            .mode("append").save()
        )  # fmt: skip
        rows = int(obs.get["rows"]) if complete(obs) else df.count()
        return SinkResult(rows=rows, written=rows, calls=1)

    def rehearse(self, df: DataFrame) -> None:
        """Serialize the records as :meth:`write` does (key, JSON value, headers); produce nothing."""
        self._records(df).write.format("noop").mode("overwrite").save()

    def _records(self, df: DataFrame) -> DataFrame:
        """``df`` as Kafka records: key, JSON value, and the source position in the ``hw.source`` header."""
        from pyspark.sql import functions as F

        from headwater.records import JSON_OPTIONS, key_column

        c = self.config
        names = df.columns
        data = c.columns or [n for n in names if not n.startswith("_hw_")]
        has_position = all(p in names for p in _POSITION)
        position = (F.concat_ws(":", *[F.col(p).cast("string") for p in _POSITION]) if has_position
                    else F.lit(None).cast("string"))  # fmt: skip
        fields = [F.col(f"`{n}`") for n in data]
        if c.position_field and has_position:
            fields.append(F.struct(F.col("_hw_topic").alias("topic"), F.col("_hw_partition").alias("partition"),
                                   F.col("_hw_offset").alias("offset")).alias(c.position_field))  # fmt: skip
        return df.select(
            key_column(c.key).alias("key"), F.to_json(F.struct(*fields), JSON_OPTIONS).alias("value"),
            F.array(F.struct(F.lit("hw.source").alias("key"), position.cast("binary").alias("value"))).alias("headers"),
        )  # fmt: skip
