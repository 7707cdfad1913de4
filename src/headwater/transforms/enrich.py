"""``enrich``: join the records with a Hive dimension table (stream-static join), refreshed periodically."""

from __future__ import annotations

import logging
import re
import time
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from headwater.errors import ConfigError, NotFoundError
from headwater.transforms.base import Transform, TransformConfig
from headwater.transforms.window import parse_interval

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger("headwater.transforms.enrich")
_TABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?")


class EnrichConfig(TransformConfig):
    """Config of the ``enrich`` transform."""

    type: Literal["enrich"] = "enrich"
    table: str = Field(description="Hive dimension table, `db.table`.")
    on: list[str] | dict[str, str] = Field(
        description="Join keys: columns with the same name on both sides, or {record column: table column}."
    )
    columns: list[str] = Field(min_length=1, description="Table columns added to each record.")
    how: Literal["left", "inner"] = Field(
        default="left", description="`left`: keep records without a match (nulls); `inner`: drop them."
    )
    refresh: str = Field(default="5 minutes", description="Re-read the table when the loaded copy is older than this.")
    broadcast: bool = Field(default=True, description="Broadcast the table to the executors (small tables).")

    @model_validator(mode="before")
    @classmethod
    def _yaml_on(cls, data: Any) -> Any:
        # YAML 1.1 reads an unquoted `on:` key as the boolean true.
        if isinstance(data, dict) and True in data and "on" not in data:
            return {("on" if k is True else k): v for k, v in data.items()}
        return data

    @field_validator("table")
    @classmethod
    def _table(cls, value: str) -> str:
        if not _TABLE.fullmatch(value):
            raise ValueError("expected `db.table` (letters, digits, _)")
        return value

    @field_validator("on")
    @classmethod
    def _keys(cls, value: list[str] | dict[str, str]) -> list[str] | dict[str, str]:
        if not value:
            raise ValueError("at least one join key")
        return value

    @field_validator("refresh")
    @classmethod
    def _interval(cls, value: str) -> str:
        return parse_interval(value)[0]

    @property
    def key_pairs(self) -> list[tuple[str, str]]:
        """(record column, table column) per join key."""
        return list(self.on.items()) if isinstance(self.on, dict) else [(k, k) for k in self.on]


class EnrichTransform(Transform):
    """Add columns of a Hive dimension table to each record, by key.

    The table is read once and cached; when the cached copy is older than ``refresh``, it is
    re-read without restarting the query. In a stateless pipeline ``apply`` runs on every
    micro-batch and re-reads a stale copy itself (``spark.catalog.refreshTable`` first, so new
    files and partitions are seen): the records of a batch meet a copy at most ``refresh`` old. In
    a stateful pipeline (with ``dedupe``/``window``) the query is planned once, with this copy in
    its plan; the process stage then calls :meth:`refresh_planned` every second, which re-lists
    the planned relation's files in place and re-caches the same plan, so the next micro-batch
    joins with the new copy. Table keys should be unique: a record matching N rows becomes N
    records.

    Example (spec)::

        - type: enrich
          table: demo.customers
          on: [customer_id]              # or {customer_id: id}
          columns: [segment, country]
          how: left
          refresh: 5 minutes
    """

    Config = EnrichConfig
    config: EnrichConfig
    stateful: ClassVar[bool] = False

    def __init__(self, config: TransformConfig) -> None:
        super().__init__(config)
        self._dim: DataFrame | None = None
        self._loaded_at = 0.0
        self.loads = 0
        self.planned = False  # set by the stateful mode: the copy is in a running plan, refresh in place

    def _stale(self) -> bool:
        return time.monotonic() - self._loaded_at >= self._refresh_seconds()

    def _refresh_seconds(self) -> float:
        return parse_interval(self.config.refresh)[1] / 1e6

    def dimension(self, spark: SparkSession) -> DataFrame:
        """The cached table copy (join keys renamed ``_hw_dim_<i>`` + columns), re-read when stale."""
        from pyspark.errors import AnalysisException

        c = self.config
        if self._dim is not None and (self.planned or not self._stale()):
            return self._dim
        try:
            spark.catalog.refreshTable(c.table)
            table = spark.table(c.table)
        except AnalysisException as exc:
            raise NotFoundError(f"enrich.table: Hive table '{c.table}' not found or unreadable: {exc}") from None
        missing = [n for n in [*(r for _, r in c.key_pairs), *c.columns] if n not in table.columns]
        if missing:
            raise ConfigError(f"enrich: columns {missing} not in {c.table}: {', '.join(table.columns)}")
        keys = [table[f"`{r}`"].alias(f"_hw_dim_{i}") for i, (_, r) in enumerate(c.key_pairs)]
        dim = table.select(*keys, *[table[f"`{n}`"] for n in c.columns]).persist()
        rows = dim.count()  # materialise now: the load time is the read time
        if self._dim is not None:
            self._dim.unpersist()
        self._dim, self._loaded_at = dim, time.monotonic()
        self.loads += 1
        log.info("enrich: loaded %s (%d rows)", c.table, rows)
        return dim

    def refresh_planned(self) -> bool:
        """Re-read the copy a running (planned once) query joins with, if older than ``refresh``.

        ``refreshTable`` would not do: it builds a new relation and drops the cache, while the
        running plan keeps the old relation and its file list (an overwritten table then fails with
        FILE_NOT_EXIST). ``refreshByPath`` on the table's files re-lists the planned relation's own
        file index and re-caches every plan that reads it; each micro-batch substitutes the cached
        data when it is planned.
        """
        dim = self._dim
        if dim is None or not self.planned or not self._stale():
            return False
        for path in _file_roots(dim):
            dim.sparkSession.catalog.refreshByPath(path)
        rows = dim.count()  # materialise the new cache now, not in the next micro-batch
        self._loaded_at = time.monotonic()
        self.loads += 1
        log.info("enrich: re-read %s in place (%d rows)", self.config.table, rows)
        return True

    def apply(self, df: DataFrame) -> DataFrame:
        from pyspark.sql import functions as F

        c = self.config
        missing = [left for left, _ in c.key_pairs if left not in df.columns]
        if missing:
            raise ConfigError(f"enrich.on: columns {missing} not in the records: {', '.join(df.columns)}")
        clash = [n for n in c.columns if n in df.columns]
        if clash:
            raise ConfigError(f"enrich.columns: {clash} already in the records; rename them first (select)")
        dim = self.dimension(df.sparkSession)
        right = F.broadcast(dim) if c.broadcast else dim
        cond = None
        for i, (left, _) in enumerate(c.key_pairs):
            eq = df[f"`{left}`"] == right[f"_hw_dim_{i}"]
            cond = eq if cond is None else cond & eq
        joined = df.join(right, cond, c.how)
        return joined.select(*[df[f"`{n}`"] for n in df.columns], *[right[f"`{n}`"] for n in c.columns])


def _file_roots(df: DataFrame) -> list[str]:
    """The root paths of the file relations (Hive tables are converted to them) ``df`` reads."""
    roots: list[str] = []
    leaves = df._jdf.queryExecution().analyzed().collectLeaves().iterator()
    while leaves.hasNext():
        leaf = leaves.next()
        if leaf.getClass().getSimpleName() == "LogicalRelation":
            relation = leaf.relation()
            if relation.getClass().getSimpleName() == "HadoopFsRelation":
                paths = relation.location().rootPaths().iterator()
                while paths.hasNext():
                    roots.append(str(paths.next().toString()))
    return roots
