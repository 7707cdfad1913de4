"""``window``: event-time window aggregates (tumbling or sliding) with a watermark and a late-data policy.

Stateful: the aggregation state lives in the streaming query (its checkpoint), so the process stage
runs a pipeline with a window in *stateful mode* (see :mod:`headwater.streaming.stateful`), with
output mode ``update``: every micro-batch emits the windows it changed, and the sink overwrites
their rows. A row key made of the group-by columns and ``window_start`` gives one HBase row per key
and window; ``version: window_end`` (or no ``version``) makes an update overwrite the same cell.

Late data. Spark drops a row whose windows all ended at or before the watermark the query had at
the end of the *previous* micro-batch (``window.end <= watermark``; the watermark is the maximum
event time seen minus ``watermark``). Spark does not say which rows it dropped, so the process
stage finds them itself, per row, with the same rule and the same watermark: the main query's
offset log records, for every micro-batch, its Kafka offset range and its watermark
(:class:`BatchWatermarks`); the process stage's side query matches each record to the main batch
that read it (by partition and offset) and compares its last window end with the watermark of the
batch before. ``late: drop`` counts those rows (progress counter ``late_rows``), ``late:
dead_letter`` also copies them to the dead-letter topic (reason ``late_data``). Limits: see
:class:`BatchWatermarks`.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from headwater.errors import ConfigError
from headwater.transforms.base import Transform, TransformConfig

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

log = logging.getLogger("headwater.transforms.window")

# unit as written -> (Spark's unit word, microseconds)
_UNITS: dict[str, tuple[str, int]] = {
    **dict.fromkeys(("us", "microsecond", "microseconds"), ("microseconds", 1)),
    **dict.fromkeys(("ms", "millisecond", "milliseconds"), ("milliseconds", 1_000)),
    **dict.fromkeys(("s", "sec", "secs", "second", "seconds"), ("seconds", 1_000_000)),
    **dict.fromkeys(("m", "min", "mins", "minute", "minutes"), ("minutes", 60_000_000)),
    **dict.fromkeys(("h", "hour", "hours"), ("hours", 3_600_000_000)),
    **dict.fromkeys(("d", "day", "days"), ("days", 86_400_000_000)),
    **dict.fromkeys(("w", "week", "weeks"), ("weeks", 604_800_000_000)),
}
_PART = re.compile(r"\s*(\d+)\s*([a-zA-Z]+)")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def parse_interval(text: str) -> tuple[str, int]:
    """``"1 hour 30 minutes"`` -> (Spark's interval text, microseconds); raises ValueError.

    Example:
        >>> parse_interval("90 s")
        ('90 seconds', 90000000)
    """
    parts, pos, total = [], 0, 0
    for m in _PART.finditer(text):
        unit = _UNITS.get(m.group(2).lower())
        if m.start() != pos or unit is None:
            break
        parts.append(f"{int(m.group(1))} {unit[0]}")
        total += int(m.group(1)) * unit[1]
        pos = m.end()
    if not parts or text[pos:].strip() or total <= 0:
        raise ValueError(f"invalid duration {text!r}: use e.g. '10 minutes', '1 hour', '90 seconds', '1 day'")
    return " ".join(parts), total


def watermarked(df: DataFrame, column: str, delay: str, who: str) -> DataFrame:
    """``df.withWatermark(column, delay)``, unless an upstream transform already defined the watermark.

    Spark allows one watermark per query lineage. A later ``dedupe``/``window`` on the same column
    with the same delay reuses it; anything else is a ConfigError naming the fix.
    """
    meta = df.schema[column].metadata if column in df.columns else {}
    if "spark.watermarkDelayMs" in meta:
        upstream_ms = int(meta["spark.watermarkDelayMs"])
        if upstream_ms * 1000 != parse_interval(delay)[1]:
            raise ConfigError(
                f"{who}: a watermark on '{column}' ({upstream_ms} ms) is already defined upstream and Spark "
                f"allows one per query; use the same delay ({delay} here)"
            )
        return df
    if df.isStreaming and "EventTimeWatermark" in df._jdf.queryExecution().logical().toString():
        raise ConfigError(
            f"{who}: an upstream transform already defined the query's watermark, on another column than "
            f"'{column}' (or a transform in between rebuilt '{column}'); Spark allows one watermark per query: "
            "use the same event_time for dedupe and window"
        )
    return df.withWatermark(column, delay)


class WindowConfig(TransformConfig):
    """Config of the ``window`` transform."""

    type: Literal["window"] = "window"
    event_time: str = Field(description="Timestamp column the windows and the watermark are based on.")
    size: str = Field(description="Window length, e.g. `5 minutes`, `1 hour`.")
    slide: str | None = Field(
        default=None, description="Slide of sliding windows (at most `size`); None: tumbling windows."
    )
    watermark: str = Field(
        description="How late a row may be: the watermark is the max event time seen minus this, e.g. `10 minutes`."
    )
    group_by: list[str] = Field(default_factory=list, description="Columns (or SQL expressions) keying the windows.")
    aggregates: dict[str, str] = Field(
        min_length=1, description="Output column -> SQL aggregate, e.g. {total: sum(amount), orders: count(*)}."
    )
    late: Literal["drop", "dead_letter"] = Field(
        default="drop",
        description="Rows behind the watermark: `drop` (counted as late_rows) or `dead_letter` "
        "(also copied to the dead-letter topic, reason late_data).",
    )

    @field_validator("size", "slide", "watermark")
    @classmethod
    def _interval(cls, value: str | None) -> str | None:
        return None if value is None else parse_interval(value)[0]

    @model_validator(mode="after")
    def _consistent(self) -> WindowConfig:
        if self.slide is not None and parse_interval(self.slide)[1] > parse_interval(self.size)[1]:
            raise ValueError(f"slide ({self.slide}) must not exceed size ({self.size})")
        names = [*self.aggregates, "window_start", "window_end"]
        bad = [n for n in self.aggregates if not _IDENT.fullmatch(n)]
        if bad:
            raise ValueError(f"aggregates: output names must be identifiers: {bad}")
        clash = sorted({n for n in names if names.count(n) > 1} | (set(self.aggregates) & set(self.group_by)))
        if clash:
            raise ValueError(f"output column names used twice: {clash} (window_start/window_end are reserved)")
        return self


class WindowTransform(Transform):
    """Aggregate rows per event-time window (and group), with a watermark bounding the state.

    Output columns: the ``group_by`` columns, ``window_start``, ``window_end`` (timestamps) and the
    ``aggregates``; in the process stage also ``_hw_kafka_ts``, the newest Kafka timestamp among the
    window's records, from which the stage measures end-to-end latency. Example (spec)::

        transforms:
          - type: window
            event_time: updated_at
            size: 1 hour
            watermark: 10 minutes
            group_by: [customer_id]
            aggregates: {revenue: sum(amount), orders: count(*)}
            late: dead_letter
        sink:
          type: hbase
          row_key: "{salt(customer_id, 4)}|{customer_id}|{window_start:timestamp}"
          version: window_end
          columns: {d: [window_start, window_end, revenue, orders]}
    """

    Config = WindowConfig
    config: WindowConfig
    stateful: ClassVar[bool] = True
    is_window: ClassVar[bool] = True

    @property
    def size_us(self) -> int:
        return parse_interval(self.config.size)[1]

    @property
    def slide_us(self) -> int:
        return parse_interval(self.config.slide or self.config.size)[1]

    def check_event_time(self, df: DataFrame) -> None:
        """Raise ConfigError unless ``event_time`` is a timestamp column of ``df``."""
        from pyspark.sql.types import TimestampNTZType, TimestampType

        c = self.config
        fields = {f.name: f.dataType for f in df.schema.fields}
        if c.event_time not in fields:
            raise ConfigError(f"window.event_time: column '{c.event_time}' not in the records: {', '.join(fields)}")
        if not isinstance(fields[c.event_time], TimestampType | TimestampNTZType):
            raise ConfigError(
                f"window.event_time: '{c.event_time}' is {fields[c.event_time].simpleString()}, need a timestamp "
                "(cast it in a select/sql transform before the window)"
            )

    def apply(self, df: DataFrame) -> DataFrame:
        from pyspark.errors import AnalysisException
        from pyspark.sql import functions as F

        c = self.config
        self.check_event_time(df)
        window = F.window(F.col(f"`{c.event_time}`"), c.size, c.slide).alias("_hw_window")
        keys = [F.expr(g).alias(g) if not _IDENT.fullmatch(g) else F.col(f"`{g}`") for g in c.group_by]
        try:
            aggs = [F.expr(expr).alias(name) for name, expr in c.aggregates.items()]
            # The newest Kafka timestamp in the window: the stage measures latency from it to the write.
            stamp = [F.max("_hw_kafka_ts").alias("_hw_kafka_ts")] if "_hw_kafka_ts" in df.columns else []
            out = (
                watermarked(df, c.event_time, c.watermark, "window.watermark").groupBy(window, *keys)
                .agg(*aggs, *stamp)
                .select(*[F.col(f"`{g}`") for g in c.group_by], F.col("_hw_window.start").alias("window_start"),
                        F.col("_hw_window.end").alias("window_end"), *[F.col(n) for n in c.aggregates],
                        *[F.col("_hw_kafka_ts") for _ in stamp])
            )  # fmt: skip
            out.schema  # noqa: B018 - analyse now: a bad expression fails before any data
        except AnalysisException as exc:
            raise ConfigError(f"window: invalid group_by/aggregates {c.aggregates}: {exc}") from None
        return out

    # --- late data -------------------------------------------------------------------------------
    def last_window_end_us(self) -> Column:
        """Microseconds of the end of the last window holding the row (Spark's window arithmetic)."""
        from pyspark.sql import functions as F

        t = F.unix_micros(F.col(f"`{self.config.event_time}`").cast("timestamp"))
        return t - F.pmod(t, F.lit(self.slide_us)) + F.lit(self.size_us)

    def late_condition(self, watermark_ms: Column) -> Column:
        """True for rows Spark drops: every window of the row ended at or before the watermark."""
        return self.last_window_end_us() <= watermark_ms * 1000

    def late_detail(self, watermark_ms: Column) -> Column:
        """The dead-letter message of a late row."""
        from pyspark.sql import functions as F

        fmt = "yyyy-MM-dd'T'HH:mm:ss.SSSSSSXXX"
        return F.concat(
            F.lit(f"{self.config.event_time} "), F.date_format(F.col(f"`{self.config.event_time}`"), fmt),
            F.lit(" is behind the watermark "), F.date_format(F.timestamp_millis(watermark_ms), fmt),
            F.lit(" (its last window ended "), F.date_format(F.timestamp_micros(self.last_window_end_us()), fmt),
            F.lit(")"),
        )  # fmt: skip
