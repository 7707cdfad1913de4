"""``sql``: a Spark SQL query over the incoming records, visible as the view ``input``."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from headwater.transforms.base import Transform, TransformConfig

if TYPE_CHECKING:
    from pyspark.sql import DataFrame


class SqlConfig(TransformConfig):
    """Config of the ``sql`` transform."""

    type: Literal["sql"] = "sql"
    query: str = Field(description="A SELECT over the view `input`, e.g. `SELECT *, amount * 2 AS x FROM input`.")
    view: str = Field(default="input", description="Name under which the incoming records are visible.")


class SqlTransform(Transform):
    """Run a SQL query over the records.

    Example (spec)::

        - type: sql
          query: SELECT order_id, amount * quantity AS total FROM input WHERE amount > 0
    """

    Config = SqlConfig
    config: SqlConfig

    def apply(self, df: DataFrame) -> DataFrame:
        # A unique temp view per call: several pipelines/batches may share one SparkSession.
        view = f"{self.config.view}_{uuid.uuid4().hex[:8]}"
        df.createOrReplaceTempView(view)
        query = _replace_view(self.config.query, self.config.view, view)
        return df.sparkSession.sql(query)


def _replace_view(query: str, name: str, replacement: str) -> str:
    import re

    return re.sub(rf"(?i)\b(from|join)\s+{re.escape(name)}\b", lambda m: f"{m.group(1)} {replacement}", query)
