"""Decode Kafka records (JSON values) into typed columns, and say why a record cannot be decoded.

All in the JVM: the value is parsed once with the typed schema and once as a map of raw strings;
a field present in the raw map but null after typed parsing is a type mismatch. Reason codes:

- ``bad_utf8``: the value is not valid UTF-8;
- ``malformed_json``: not a JSON object;
- ``type_mismatch``: a field's value does not fit its declared type (names field, value, type);
- ``missing_field``: a required field (topic key, row key) is null or absent.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame
    from pyspark.sql.types import StructType

ERROR = "_hw_error"
ERROR_DETAIL = "_hw_error_detail"
META = ["_hw_topic", "_hw_partition", "_hw_offset", "_hw_kafka_ts"]


def decode(raw: DataFrame, schema: StructType, required: list[str]) -> DataFrame:
    """Kafka rows (key, value, topic, partition, offset, timestamp) -> schema fields + meta + error columns."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import DecimalType, MapType, StringType, StructField, StructType

    # Spark's JSON reader parses decimal *strings* leniently ("12,50" -> 1250, grouping allowed);
    # top-level decimals are read as text and cast strictly with try_cast instead.
    decimals = {f.name: f.dataType for f in schema.fields if isinstance(f.dataType, DecimalType)}
    parse_schema = StructType([StructField(f.name, StringType()) if f.name in decimals else f for f in schema.fields])
    text = F.col("value").cast("string")
    parsed = raw.select(
        F.col("key"), F.col("value"),
        F.col("topic").alias("_hw_topic"), F.col("partition").alias("_hw_partition"),
        F.col("offset").alias("_hw_offset"), F.col("timestamp").alias("_hw_kafka_ts"),
        F.from_json(text, parse_schema, {"mode": "PERMISSIVE"}).alias("_parsed"),
        F.from_json(text, MapType(StringType(), StringType()), {"mode": "PERMISSIVE"}).alias("_raw"),  # type: ignore[arg-type]
        (F.encode(text, "UTF-8") != F.col("value")).alias("_bad_utf8"),
    )  # fmt: skip
    typed_fields = [
        F.expr(f"try_cast(_parsed.`{f.name}` AS {f.dataType.simpleString()})").alias(f.name)
        if f.name in decimals else F.col(f"_parsed.`{f.name}`").alias(f.name)
        for f in schema.fields
    ]  # fmt: skip
    parsed = parsed.withColumn("_typed", F.when(F.col("_parsed").isNotNull(), F.struct(*typed_fields)))
    mismatches: list[Column] = []
    for f in schema.fields:
        raw_value = F.col("_raw").getItem(f.name)
        bad = raw_value.isNotNull() & F.col(f"_typed.`{f.name}`").isNull()
        mismatches.append(F.when(bad, F.concat(
            F.lit(f"{f.name}: "), F.substring(raw_value, 1, 80), F.lit(f" is not {f.dataType.simpleString()}")
        )))  # fmt: skip
    missing = [
        F.when(F.col(f"_typed.`{name}`").isNull(), F.lit(f"{name} is null or missing"))
        for name in required if name in schema.fieldNames()
    ]  # fmt: skip
    mismatch_text = F.concat_ws("; ", *mismatches) if mismatches else F.lit("")
    missing_text = F.concat_ws("; ", *missing) if missing else F.lit("")
    error = (
        F.when(F.col("_bad_utf8"), F.lit("bad_utf8"))
        .when(F.col("_raw").isNull() | F.col("_typed").isNull(), F.lit("malformed_json"))
        .when(mismatch_text != "", F.lit("type_mismatch"))
        .when(missing_text != "", F.lit("missing_field"))
    )
    detail = (
        F.when(F.col("_bad_utf8"), F.lit("value is not valid UTF-8"))
        .when(F.col("_raw").isNull() | F.col("_typed").isNull(),
              F.concat(F.lit("not a JSON object: "), F.substring(text, 1, 80)))
        .when(mismatch_text != "", mismatch_text)
        .when(missing_text != "", missing_text)
    )  # fmt: skip
    return parsed.select(
        "key", "value", *META, *[F.col(f"_typed.`{n}`").alias(n) for n in schema.fieldNames()],
        error.alias(ERROR), detail.alias(ERROR_DETAIL),
    )  # fmt: skip


def good_records(decoded: DataFrame, schema: StructType) -> DataFrame:
    """The decoded records without errors: schema fields + meta columns."""
    from pyspark.sql import functions as F

    return decoded.where(F.col(ERROR).isNull()).select(*[F.col(f"`{n}`") for n in schema.fieldNames()], *META)


def bad_records(decoded: DataFrame) -> DataFrame:
    from pyspark.sql import functions as F

    return decoded.where(F.col(ERROR).isNotNull())
