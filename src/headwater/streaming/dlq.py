"""Dead-letter records: a versioned JSON envelope, keyed by source position so replays deduplicate.

Envelope (version 1)::

    {"v": 1, "pipeline": "orders", "stage": "decode", "reason": "type_mismatch",
     "message": "amount: abc is not decimal(12,2)", "source": {"topic": "demo.orders",
     "partition": 0, "offset": 42, "timestamp": "..."}, "key": "...", "value_b64": "...",
     "failed_at": "..."}

Kafka key: ``<topic>:<partition>:<offset>`` (so the same source record dead-lettered twice is
recognisable); headers carry reason and source position for tools that do not parse JSON.

Envelopes are bounded: an original value over :data:`MAX_PAYLOAD_BYTES` is cut to that many bytes
and the envelope says ``"truncated": true`` with the original ``value_size`` and ``value_sha256``
(``dlq replay`` then re-reads the full record from its source position), so a record too large for
Kafka or a sink still fits in the dead-letter topic.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from headwater import kafka

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

    from headwater.spec.connections import KafkaConnection

ENVELOPE_VERSION = 1
MAX_PAYLOAD_BYTES = 256 * 1024  # of the original value kept in an envelope; base64 makes it ~342 KiB


def bounded_payload(raw: bytes, limit: int = MAX_PAYLOAD_BYTES) -> dict[str, Any]:
    """The envelope fields that carry ``raw``: all of it, or its first ``limit`` bytes, size and hash."""
    import base64
    import hashlib

    if len(raw) <= limit:
        return {"value_b64": base64.b64encode(raw).decode(), "value_size": len(raw)}
    return {
        "value_b64": base64.b64encode(raw[:limit]).decode(), "value_size": len(raw), "truncated": True,
        "value_sha256": hashlib.sha256(raw).hexdigest(),
    }  # fmt: skip


def envelopes(bad: DataFrame, pipeline: str, stage: str, position: Column | None = None) -> DataFrame:
    """Decoded-but-bad rows (with ``_hw_*`` meta, ``key``, ``value``, ``_hw_error*``) -> Kafka rows.

    ``position`` (the Kafka key) defaults to ``<topic>:<partition>:<offset>`` of the source record.
    """
    from pyspark.sql import functions as F

    source = F.struct(
        F.col("_hw_topic").alias("topic"), F.col("_hw_partition").alias("partition"),
        F.col("_hw_offset").alias("offset"), F.col("_hw_kafka_ts").alias("timestamp"),
    )  # fmt: skip
    size = F.octet_length(F.col("value"))
    cut = size > F.lit(MAX_PAYLOAD_BYTES)
    envelope = F.struct(
        F.lit(ENVELOPE_VERSION).alias("v"), F.lit(pipeline).alias("pipeline"), F.lit(stage).alias("stage"),
        F.col("_hw_error").alias("reason"), F.col("_hw_error_detail").alias("message"), source.alias("source"),
        F.substring(F.col("key").cast("string"), 1, 1024).alias("key"),
        F.base64(F.when(cut, F.substring(F.col("value"), 1, MAX_PAYLOAD_BYTES)).otherwise(F.col("value"))).alias("value_b64"),
        size.alias("value_size"), F.when(cut, F.lit(True)).alias("truncated"),
        F.when(cut, F.sha2(F.col("value"), 256)).alias("value_sha256"),
        F.date_format(F.current_timestamp(), "yyyy-MM-dd'T'HH:mm:ss.SSSXXX").alias("failed_at"),
    )  # fmt: skip
    if position is None:
        position = F.concat_ws(":", F.col("_hw_topic"), F.col("_hw_partition").cast("string"),
                               F.col("_hw_offset").cast("string"))  # fmt: skip
    headers = F.array(
        F.struct(F.lit("hw.reason").alias("key"), F.col("_hw_error").cast("binary").alias("value")),
        F.struct(F.lit("hw.source").alias("key"), position.cast("binary").alias("value")),
        F.struct(F.lit("hw.pipeline").alias("key"), F.lit(pipeline).cast("binary").alias("value")),
    )  # fmt: skip
    return bad.select(position.alias("key"), F.to_json(envelope, {"ignoreNullFields": "true"}).alias("value"),
                      headers.alias("headers"))  # fmt: skip


def write(records: DataFrame, conn: KafkaConnection, topic: str) -> None:
    """Append envelope rows to the dead-letter topic (idempotent producer, acks=all)."""
    (
        records.write.format("kafka").options(**kafka.spark_options(conn)).options(**kafka.PRODUCER_OPTIONS)
        .option("includeHeaders", "true").option("topic", topic).mode("append").save()
    )  # fmt: skip


def rejected_envelopes(spark: Any, rejected: list[dict[str, Any]], pipeline: str, topic: str) -> DataFrame:
    """Records the sink refused (as returned by the writer) -> Kafka rows of envelopes."""
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
            "key": None, **bounded_payload((r.get("payload") or "").encode()), "failed_at": now,
        }  # fmt: skip
        headers = [("hw.reason", r["reason"].encode()), ("hw.source", position.encode()),
                   ("hw.pipeline", pipeline.encode())]  # fmt: skip
        rows.append((position, json.dumps(env), headers))
    schema = "key string, value string, headers array<struct<key:string,value:binary>>"
    return spark.createDataFrame(rows, schema)
