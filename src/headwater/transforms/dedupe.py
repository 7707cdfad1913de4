"""``dedupe``: drop repeated records (same keys) seen within a watermark-bounded interval."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import Field, field_validator

from headwater.errors import ConfigError
from headwater.transforms.base import Transform, TransformConfig
from headwater.transforms.window import parse_interval, watermarked

if TYPE_CHECKING:
    from pyspark.sql import DataFrame


class DedupeConfig(TransformConfig):
    """Config of the ``dedupe`` transform."""

    type: Literal["dedupe"] = "dedupe"
    keys: list[str] = Field(min_length=1, description="Columns whose values identify a duplicate.")
    event_time: str = Field(description="Timestamp column the watermark is based on.")
    within: str = Field(
        description="How long a key is remembered after its event time (also the watermark delay), e.g. `10 minutes`."
    )

    @field_validator("within")
    @classmethod
    def _interval(cls, value: str) -> str:
        return parse_interval(value)[0]


class DedupeTransform(Transform):
    """Keep the first record of each key; later records with the same keys within ``within`` are dropped.

    Stateful (``withWatermark(event_time, within).dropDuplicatesWithinWatermark(keys)``): the keys
    seen live in the streaming query's state, so duplicates are dropped across micro-batches and
    restarts; a key is forgotten once the watermark passes its event time plus ``within``. Records
    whose event time is already behind the watermark are not guaranteed to be deduplicated. Spark
    allows one watermark per query: with a ``window`` too, both must use the same ``event_time``,
    ``within`` must equal the window's ``watermark`` (a ``python`` transform in between keeps the
    watermark when it passes the column through with the same name and type).

    Example (spec)::

        - type: dedupe
          keys: [order_id]
          event_time: updated_at
          within: 10 minutes
    """

    Config = DedupeConfig
    config: DedupeConfig
    stateful: ClassVar[bool] = True

    def apply(self, df: DataFrame) -> DataFrame:
        c = self.config
        missing = [k for k in [*c.keys, c.event_time] if k not in df.columns]
        if missing:
            raise ConfigError(f"dedupe: columns {missing} not in the records: {', '.join(df.columns)}")
        return watermarked(df, c.event_time, c.within, "dedupe.within").dropDuplicatesWithinWatermark(c.keys)
