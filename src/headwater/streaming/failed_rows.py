"""Rows a transform marked as failed (``_hw_error``): split them off, and turn them into dead letters."""

from __future__ import annotations

from typing import TYPE_CHECKING

from headwater.streaming.decode import ERROR, ERROR_DETAIL, META

if TYPE_CHECKING:
    from pyspark.sql import DataFrame


def split_errors(df: DataFrame, errors: list[DataFrame] | None, cached: list[DataFrame] | None) -> DataFrame:
    """Split the rows ``df`` marks with ``_hw_error`` into ``errors`` (None: drop them); return the rest."""
    from pyspark.sql import functions as F

    if ERROR not in df.columns:
        return df
    if errors is not None:
        df = df.persist()  # both halves come from one evaluation of the transform
        if cached is not None:
            cached.append(df)
        errors.append(df.where(F.col(ERROR).isNotNull()))
    return df.where(F.col(ERROR).isNull()).drop(ERROR, ERROR_DETAIL)


def dead_letter_rows(rows: DataFrame, decoded: DataFrame | None) -> DataFrame:
    """Rows with ``_hw_error*`` -> what :func:`dlq.envelopes` takes: the original Kafka record when
    ``decoded`` has the row's position, else the row itself as JSON (with whatever position it kept)."""
    from pyspark.sql import functions as F

    types = {"_hw_topic": "string", "_hw_partition": "int", "_hw_offset": "bigint", "_hw_kafka_ts": "timestamp"}
    data = [F.col(f"`{c}`") for c in rows.columns if not c.startswith("_hw_")]
    own = F.to_json(F.struct(*data)) if data else F.lit("{}")
    out = rows.select(
        *[F.col(m) if m in rows.columns else F.lit(None).cast(t).alias(m) for m, t in types.items()],
        ERROR, ERROR_DETAIL, own.cast("binary").alias("_hw_own"),
    )  # fmt: skip
    if decoded is None or not {"_hw_partition", "_hw_offset"} <= set(rows.columns):
        return out.select(F.lit(None).cast("binary").alias("key"), F.col("_hw_own").alias("value"), *META,
                          ERROR, ERROR_DETAIL)  # fmt: skip
    orig = decoded.select(F.col("_hw_partition").alias("_p"), F.col("_hw_offset").alias("_o"), "key", "value")
    joined = out.join(orig, (out["_hw_partition"] == orig["_p"]) & (out["_hw_offset"] == orig["_o"]), "left")
    return joined.select("key", F.coalesce("value", "_hw_own").alias("value"), *META, ERROR, ERROR_DETAIL)
