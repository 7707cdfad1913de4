"""Rows -> Kafka records (key, JSON value) inside Spark, preserving types; counting them as they are written.

Decimals stay exact (written as JSON numbers with their scale), timestamps carry microseconds and
their UTC offset, dates are ISO, nested arrays/maps/structs stay nested, nulls are kept.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, Observation

JSON_OPTIONS = {
    "timestampFormat": "yyyy-MM-dd'T'HH:mm:ss.SSSSSSXXX",
    "dateFormat": "yyyy-MM-dd",
    "ignoreNullFields": "false",
}


def key_column(columns: list[str]) -> Column:
    """One column: its string form. Several: a JSON array of their string forms."""
    from pyspark.sql import functions as F

    if len(columns) == 1:
        return F.col(columns[0]).cast("string")
    return F.to_json(F.array(*[F.col(c).cast("string") for c in columns]))


def to_records(df: DataFrame, key_columns: list[str]) -> DataFrame:
    """``df`` as a DataFrame of (key, value) ready for Spark's Kafka sink."""
    from pyspark.sql import functions as F

    missing = [c for c in key_columns if c not in df.columns]
    if missing:
        from headwater.errors import ConfigError

        raise ConfigError(f"topic.key: column(s) {missing} not in the source; columns: {', '.join(df.columns)}")
    value = F.to_json(F.struct(*[F.col(f"`{c}`") for c in df.columns]), JSON_OPTIONS)
    return df.select(key_column(key_columns).alias("key"), value.alias("value"))


def complete(obs: Observation) -> bool:
    """Whether the observed records went through an action (``Observation.get`` would block otherwise)."""
    jo: Any = obs._jo  # private, but its future is the only non-blocking check
    return jo is not None and bool(jo.future().isCompleted())


def counted_records(records: DataFrame, limit: int) -> tuple[DataFrame, Observation]:
    """``records`` observed by the job that produces them: how many, and how many are over ``limit`` bytes."""
    from pyspark.sql import Observation
    from pyspark.sql import functions as F

    obs = Observation(f"headwater_ingest_{time.monotonic_ns()}")
    over = F.sum(F.when(record_size() > limit, 1).otherwise(0))
    return records.observe(obs, F.count(F.lit(1)).alias("rows"), F.coalesce(over, F.lit(0)).alias("too_large")), obs


def record_size() -> Column:
    """Bytes of a record's key and value (columns ``key`` and ``value`` of :func:`to_records`)."""
    from pyspark.sql import functions as F

    return F.coalesce(F.octet_length(F.col("key")), F.lit(0)) + F.octet_length(F.col("value"))


def fits(records: DataFrame, limit: int) -> DataFrame:
    """The records whose key and value fit in ``limit`` bytes."""
    return records.where(record_size() <= limit)


def too_large_records(records: DataFrame, limit: int) -> DataFrame:
    """The records whose key and value do not fit in ``limit`` bytes."""
    return records.where(record_size() > limit)
