"""``filter``: keep the records matching a SQL predicate."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field

from headwater.transforms.base import Transform, TransformConfig

if TYPE_CHECKING:
    from pyspark.sql import DataFrame


class FilterConfig(TransformConfig):
    """Config of the ``filter`` transform."""

    type: Literal["filter"] = "filter"
    where: str = Field(description="A Spark SQL boolean expression; records where it is not true are dropped.")


class FilterTransform(Transform):
    """Keep the records for which ``where`` is true.

    Example (spec)::

        - type: filter
          where: amount > 0 AND status <> 'test'
    """

    Config = FilterConfig
    config: FilterConfig

    def apply(self, df: DataFrame) -> DataFrame:
        return df.where(self.config.where)
