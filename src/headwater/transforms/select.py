"""``select``: keep, rename and cast columns."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field

from headwater.transforms.base import Transform, TransformConfig

if TYPE_CHECKING:
    from pyspark.sql import DataFrame


class SelectConfig(TransformConfig):
    """Config of the ``select`` transform. Applied in order: columns, rename, cast."""

    type: Literal["select"] = "select"
    columns: list[str] | None = Field(default=None, description="Columns (or SQL expressions) to keep, in order.")
    rename: dict[str, str] = Field(default_factory=dict, description="old name -> new name.")
    cast: dict[str, str] = Field(default_factory=dict, description="column -> Spark SQL type, e.g. decimal(12,2).")


class SelectTransform(Transform):
    """Project, rename and cast.

    Example (spec)::

        - type: select
          columns: [order_id, customer_id, amount]
          rename: {amount: amount_eur}
          cast: {order_id: string}
    """

    Config = SelectConfig
    config: SelectConfig

    def apply(self, df: DataFrame) -> DataFrame:
        from pyspark.sql import functions as F

        c = self.config
        if c.columns is not None:
            df = df.selectExpr(*c.columns)
        for old, new in c.rename.items():
            df = df.withColumnRenamed(old, new)
        for col, typ in c.cast.items():
            df = df.withColumn(col, F.col(col).cast(typ))
        return df
