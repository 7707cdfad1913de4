"""Decode Kafka records (JSON values) into typed columns, and say why a record cannot be decoded.

All in the JVM: the value is parsed once with the typed schema and once with every field as text;
a field present as text but null after typed parsing is a type mismatch. Reason codes:

- ``bad_utf8``: the value is not valid UTF-8;
- ``malformed_json``: not a JSON object;
- ``type_mismatch``: a field's value does not fit its declared type (names field, value, type);
- ``missing_field``: a required field (topic key, row key) is null or absent;
- ``missing_key``: the topic is keyed (``topic.key``) but the record has a null or empty Kafka key,
  so nothing orders it against the other versions of its row.
"""

from __future__ import annotations

import functools
import operator
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame
    from pyspark.sql.types import StructType

ERROR = "_hw_error"
ERROR_DETAIL = "_hw_error_detail"
META = ["_hw_topic", "_hw_partition", "_hw_offset", "_hw_kafka_ts"]
_CORRUPT = "_hw_corrupt"


KAFKA_COLUMNS = {"key": "string", "timestamp": "timestamp", "partition": "int", "offset": "bigint"}


def with_kafka_fields(schema: StructType, fields: dict[str, str]) -> StructType:
    """``schema`` plus the record fields taken from the Kafka record (name -> key/timestamp/partition/offset)."""
    from pyspark.sql.types import StructType

    out = StructType(list(schema.fields))
    for name, column in fields.items():
        if name not in out.fieldNames():
            out = out.add(name, KAFKA_COLUMNS[column])
    return out


def decode(raw: DataFrame, schema: StructType, required: list[str], keyed: bool = False,
           kafka_fields: dict[str, str] | None = None) -> DataFrame:  # fmt: skip
    """Kafka rows (key, value, topic, partition, offset, timestamp) -> schema fields + meta + error columns.

    ``keyed``: the topic's records must carry a Kafka key (a null or empty one is ``missing_key``).
    ``kafka_fields``: schema fields filled from the Kafka record instead of the value (name -> column).
    """
    return decode_columns(schema, required, keyed, kafka_fields).apply(raw)


@dataclass(frozen=True)
class DecodeColumns:
    """The three projections of :func:`decode`, built once (each column costs round trips to the JVM)."""

    parsed: list[Column]
    text: Column
    typed: list[Column]

    def apply(self, raw: DataFrame) -> DataFrame:
        """Decode ``raw`` (Kafka rows) with these projections."""
        return raw.select(*self.parsed).withColumn("_text", self.text).select(*self.typed)


def decode_columns(schema: StructType, required: list[str], keyed: bool = False,
                   kafka_fields: dict[str, str] | None = None) -> DecodeColumns:  # fmt: skip
    """The projections that decode Kafka rows (see :func:`decode`); needs an active SparkContext."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import DecimalType, StringType, StructField, StructType

    kafka_fields = kafka_fields or {}
    full = schema
    schema = StructType([f for f in full.fields if f.name not in kafka_fields])

    # Spark's JSON reader parses decimal *strings* leniently ("12,50" -> 1250, grouping allowed);
    # top-level decimals are read as text and cast strictly with try_cast instead.
    decimals = {f.name for f in schema.fields if isinstance(f.dataType, DecimalType)}
    parse_schema = StructType([StructField(f.name, StringType()) if f.name in decimals else f for f in schema.fields])
    # The typed parse flags a value that does not fit in its corrupt-record column (other fields
    # still parse). Only such records are parsed a second time, every field as its JSON text, to
    # name the field: present as text but null after typing = mismatch. (A struct of strings, not a
    # map: field access is by position.) Malformed input gives a struct of nulls, not null: the
    # corrupt-record column tells it apart.
    parse_schema = StructType([*parse_schema.fields, StructField(_CORRUPT, StringType())])
    text_schema = StructType([*(StructField(f.name, StringType()) for f in schema.fields),
                              StructField(_CORRUPT, StringType())])  # fmt: skip
    text = F.col("value").cast("string")
    options = {"mode": "PERMISSIVE", "columnNameOfCorruptRecord": _CORRUPT}
    parsed = [
        F.col("key"), F.col("value"),
        F.col("topic").alias("_hw_topic"), F.col("partition").alias("_hw_partition"),
        F.col("offset").alias("_hw_offset"), F.col("timestamp").alias("_hw_kafka_ts"),
        F.from_json(text, parse_schema, options).alias("_parsed"),
        F.is_valid_utf8(text).alias("_utf8"),
    ]  # fmt: skip
    suspect = F.col(f"_parsed.{_CORRUPT}").isNotNull()
    text_column = F.when(suspect, F.from_json(text, text_schema, options))
    typed = {
        f.name: F.expr(f"try_cast(_parsed.`{f.name}` AS {f.dataType.simpleString()})")
        if f.name in decimals else F.col(f"_parsed.`{f.name}`")
        for f in schema.fields
    }  # fmt: skip
    as_text = {f.name: F.col(f"_parsed.`{f.name}`") if f.name in decimals else F.col(f"_text.`{f.name}`")
               for f in schema.fields}  # fmt: skip
    flags = [F.coalesce(as_text[f.name].isNotNull() & typed[f.name].isNull(), F.lit(False)) for f in schema.fields]
    details = [
        F.when(flag, F.concat(F.lit(f"{f.name}: "), F.substring(as_text[f.name], 1, 80),
                              F.lit(f" is not {f.dataType.simpleString()}")))
        for f, flag in zip(schema.fields, flags, strict=True)
    ]  # fmt: skip
    absent = [(name, typed[name].isNull()) for name in required if name in typed]
    malformed = F.col("_parsed").isNull() | (
        suspect & (F.col("_text").isNull() | F.col(f"_text.{_CORRUPT}").isNotNull())
    )
    mismatch = functools.reduce(operator.or_, flags) if flags else F.lit(False)
    missing = functools.reduce(operator.or_, [c for _, c in absent]) if absent else F.lit(False)
    no_key = (F.coalesce(F.length(F.col("key")), F.lit(0)) == 0) if keyed else F.lit(False)
    error = (
        F.when(~F.col("_utf8"), F.lit("bad_utf8"))
        .when(malformed, F.lit("malformed_json"))
        .when(mismatch, F.lit("type_mismatch"))
        .when(missing, F.lit("missing_field"))
        .when(no_key, F.lit("missing_key"))
    )
    detail = (
        F.when(~F.col("_utf8"), F.lit("value is not valid UTF-8"))
        .when(malformed, F.concat(F.lit("not a JSON object: "), F.substring(text, 1, 80)))
        .when(mismatch, F.concat_ws("; ", *details))
        .when(missing, F.concat_ws("; ", *[F.when(c, F.lit(f"{n} is null or missing")) for n, c in absent]))
        .when(no_key, F.concat(F.lit("the Kafka key is "), F.when(F.col("key").isNull(), F.lit("null"))
                               .otherwise(F.lit("empty")), F.lit("; the topic is keyed by the record's key fields")))
    )  # fmt: skip
    renamed = {"key": "key", "timestamp": "_hw_kafka_ts", "partition": "_hw_partition", "offset": "_hw_offset"}
    own = {name: F.col(renamed[column]).cast(KAFKA_COLUMNS[column]) for name, column in kafka_fields.items()}
    projected = [
        F.col("key"), F.col("value"), *[F.col(m) for m in META],
        *[(own[f.name] if f.name in own else typed[f.name]).alias(f.name) for f in full.fields],
        error.alias(ERROR), detail.alias(ERROR_DETAIL),
    ]  # fmt: skip
    return DecodeColumns(parsed, text_column, projected)


def good_records(decoded: DataFrame, schema: StructType) -> DataFrame:
    """The decoded records without errors: schema fields + meta columns."""
    return good_columns(schema).apply(decoded)


@dataclass(frozen=True)
class GoodColumns:
    """The filter and projection of :func:`good_records`, built once."""

    no_error: Column
    fields: list[Column]

    def apply(self, decoded: DataFrame) -> DataFrame:
        """The records of ``decoded`` without errors."""
        return decoded.where(self.no_error).select(*self.fields)


def good_columns(schema: StructType) -> GoodColumns:
    """The columns of :func:`good_records`; needs an active SparkContext."""
    from pyspark.sql import functions as F

    return GoodColumns(F.col(ERROR).isNull(), [*[F.col(f"`{n}`") for n in schema.fieldNames()], *map(F.col, META)])


def bad_records(decoded: DataFrame) -> DataFrame:
    from pyspark.sql import functions as F

    return decoded.where(F.col(ERROR).isNotNull())


@dataclass(frozen=True)
class RecordDecoder:
    """Decode and validate for one pipeline: its record schema, the fields a record must carry, its key rule."""

    schema: StructType
    required: list[str]
    keyed: bool
    kafka_fields: dict[str, str]

    def decode(self, raw: DataFrame) -> DataFrame:
        """Kafka rows -> decoded records with error columns (see :func:`decode`)."""
        return self._decode_columns.apply(raw)

    def good(self, decoded: DataFrame) -> DataFrame:
        """The decoded records without errors (see :func:`good_records`)."""
        return self._good_columns.apply(decoded)

    # Built on first use and kept: a micro-batch then builds its plan from them in a few JVM calls
    # (building them took 1,200 py4j round trips, 70-150 ms, for a schema of 4 fields).
    @functools.cached_property
    def _decode_columns(self) -> DecodeColumns:
        return decode_columns(self.schema, self.required, self.keyed, self.kafka_fields)

    @functools.cached_property
    def _good_columns(self) -> GoodColumns:
        return good_columns(self.schema)
