"""Dead-letter records: a versioned JSON envelope, keyed by source position so replays deduplicate.

Envelope (version 1)::

    {"v": 1, "pipeline": "orders", "stage": "decode", "reason": "type_mismatch",
     "message": "amount: abc is not decimal(12,2)", "source": {"topic": "demo.orders",
     "partition": 0, "offset": 42, "timestamp": "..."}, "key": "...", "value_b64": "...",
     "failed_at": "..."}

Kafka key: ``<topic>:<partition>:<offset>`` (so the same source record dead-lettered twice is
recognisable); headers carry reason and source position for tools that do not parse JSON.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from headwater import kafka

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from headwater.spec.models import KafkaConnection

ENVELOPE_VERSION = 1


def envelopes(bad: DataFrame, pipeline: str, stage: str) -> DataFrame:
    """Decoded-but-bad rows (with ``_hw_*`` meta, ``key``, ``value``, ``_hw_error*``) -> Kafka rows."""
    from pyspark.sql import functions as F

    source = F.struct(
        F.col("_hw_topic").alias("topic"), F.col("_hw_partition").alias("partition"),
        F.col("_hw_offset").alias("offset"), F.col("_hw_kafka_ts").alias("timestamp"),
    )  # fmt: skip
    envelope = F.struct(
        F.lit(ENVELOPE_VERSION).alias("v"), F.lit(pipeline).alias("pipeline"), F.lit(stage).alias("stage"),
        F.col("_hw_error").alias("reason"), F.col("_hw_error_detail").alias("message"), source.alias("source"),
        F.col("key").cast("string").alias("key"), F.base64(F.col("value")).alias("value_b64"),
        F.date_format(F.current_timestamp(), "yyyy-MM-dd'T'HH:mm:ss.SSSXXX").alias("failed_at"),
    )  # fmt: skip
    position = F.concat_ws(":", F.col("_hw_topic"), F.col("_hw_partition").cast("string"),
                           F.col("_hw_offset").cast("string"))  # fmt: skip
    headers = F.array(
        F.struct(F.lit("hw.reason").alias("key"), F.col("_hw_error").cast("binary").alias("value")),
        F.struct(F.lit("hw.source").alias("key"), position.cast("binary").alias("value")),
        F.struct(F.lit("hw.pipeline").alias("key"), F.lit(pipeline).cast("binary").alias("value")),
    )  # fmt: skip
    return bad.select(position.alias("key"), F.to_json(envelope).alias("value"), headers.alias("headers"))


def write(records: DataFrame, conn: KafkaConnection, topic: str) -> None:
    """Append envelope rows to the dead-letter topic (idempotent producer, acks=all)."""
    from headwater.ingest.runner import PRODUCER_OPTIONS

    (
        records.write.format("kafka").options(**kafka.spark_options(conn)).options(**PRODUCER_OPTIONS)
        .option("includeHeaders", "true").option("topic", topic).save()
    )  # fmt: skip


def rejected_envelopes(spark: Any, rejected: list[dict[str, Any]], pipeline: str, topic: str) -> DataFrame:
    """Records the sink refused (as returned by the writer) -> Kafka rows of envelopes."""
    import base64
    import datetime
    import json

    rows = []
    now = datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds")
    for r in rejected:
        position = f"{topic}:{r.get('partition')}:{r.get('offset')}"
        env = {
            "v": ENVELOPE_VERSION, "pipeline": pipeline, "stage": "sink", "reason": r["reason"],
            "message": r["message"],
            "source": {"topic": topic, "partition": r.get("partition"), "offset": r.get("offset")},
            "key": None, "value_b64": base64.b64encode((r.get("payload") or "").encode()).decode(),
            "failed_at": now,
        }  # fmt: skip
        headers = [("hw.reason", r["reason"].encode()), ("hw.source", position.encode()),
                   ("hw.pipeline", pipeline.encode())]  # fmt: skip
        rows.append((position, json.dumps(env), headers))
    schema = "key string, value string, headers array<struct<key:string,value:binary>>"
    return spark.createDataFrame(rows, schema)
