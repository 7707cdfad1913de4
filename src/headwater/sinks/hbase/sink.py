"""``hbase``: write records to an HBase table with a declarative row key and column mapping.

Example (spec)::

    sink:
      type: hbase
      table: demo:orders
      row_key: "{salt(customer_id, 8)}|{customer_id}|{order_id:long}"
      version: updated_at          # cell timestamp: a deterministic function of the record
      columns:
        d: [amount, quantity, status, updated_at]
        x: {items: json, attrs: json}
      families:
        d: {max_versions: 1, compression: none, bloom: row}

Delivery: at-least-once replay + idempotent writes = effectively once. Row key and cell timestamp
are functions of the record, so a replayed record rewrites the same cells. Versions of a row key
keep their own cell timestamps, so the newest ``version`` wins in any arrival order (see
:mod:`headwater.sinks.hbase.writer`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from headwater.sinks.base import Sink, SinkConfig, SinkResult
from headwater.sinks.hbase.codec import TYPE_NAMES
from headwater.sinks.hbase.rowkey import RowKeyError, RowKeyTemplate

if TYPE_CHECKING:
    from pyspark.sql import DataFrame
    from pyspark.sql.types import DataType, StructType

    from headwater.sinks.hbase.writer import WriterDescription


class FamilySpec(BaseModel):
    """Layout of one column family."""

    model_config = ConfigDict(extra="forbid")
    max_versions: int = Field(default=1, ge=1, description="Versions HBase keeps per cell.")
    ttl: int | None = Field(default=None, ge=1, description="Seconds a cell lives (from its timestamp).")
    compression: Literal["none", "snappy", "lz4", "gz", "zstd"] = "none"
    bloom: Literal["none", "row", "rowcol"] = "row"
    in_memory: bool = False


class HBaseSinkConfig(SinkConfig):
    """Config of the ``hbase`` sink."""

    type: Literal["hbase"] = "hbase"
    table: str = Field(description="`namespace:table` (or `table` in the default namespace).",
                       pattern=r"^([A-Za-z0-9_]+:)?[A-Za-z0-9_.-]+$")  # fmt: skip
    row_key: str = Field(description="Row-key template, e.g. `{salt(user_id, 8)}|{user_id}|{ts:timestamp}`.")
    columns: dict[str, list[str] | dict[str, str | None]] = Field(
        description="family -> columns; as a list (types from the records) or {column: type}."
    )
    version: str | None = Field(
        default=None, description="Record field whose value (timestamp, date or long) is the cell timestamp."
    )
    families: dict[str, FamilySpec] = Field(default_factory=dict, description="Per-family layout.")
    create: bool = Field(default=True, description="Create the namespace and table if missing.")
    pre_split: bool = Field(default=True, description="Pre-split a salted table: one region per salt bucket.")
    durability: Literal["sync_wal", "fsync_wal", "async_wal", "skip_wal"] = "sync_wal"
    batch_rows: int = Field(default=2000, ge=1, description="Rows per putMultiple call at most.")
    batch_bytes: int = Field(default=2_000_000, ge=1024, description="Bytes per putMultiple call at most.")
    max_cell_bytes: int = Field(
        default=10_485_760, ge=1024,
        description="Largest cell HBase accepts (the cluster's hbase.client.keyvalue.maxsize); larger: dead letter.",
    )  # fmt: skip
    max_request_bytes: int = Field(
        default=64 * 1024 * 1024, ge=1024,
        description="Largest Thrift request the server accepts; a row larger than this goes to the dead letters.",
    )  # fmt: skip
    retries: int = Field(default=8, ge=0, description="Retries of a failed call (exponential backoff).")

    @field_validator("row_key")
    @classmethod
    def _template_parses(cls, value: str) -> str:
        try:
            RowKeyTemplate.parse(value)
        except RowKeyError as exc:
            raise ValueError(str(exc)) from None
        return value

    @field_validator("columns")
    @classmethod
    def _types_known(cls, value: dict[str, list[str] | dict[str, str | None]]) -> dict[str, Any]:
        for family, cols in value.items():
            if isinstance(cols, dict):
                for col, typ in cols.items():
                    if typ is not None and typ not in TYPE_NAMES:
                        raise ValueError(f"{family}.{col}: unknown type '{typ}'; valid: {', '.join(TYPE_NAMES)}")
        return value

    @model_validator(mode="after")
    def _families_consistent(self) -> HBaseSinkConfig:
        unknown = set(self.families) - set(self.columns)
        if unknown:
            raise ValueError(f"families {sorted(unknown)} have no columns; families in columns: {sorted(self.columns)}")
        if self.version is None and any(f.ttl for f in self.families.values()):
            raise ValueError("a family with ttl needs `version`: cells with a constant timestamp would expire at once")
        return self

    def fields_named(self) -> dict[str, list[str]]:
        named = {"sink.row_key": list(RowKeyTemplate.parse(self.row_key).fields),
                 "sink.columns": [str(c) for cols in self.columns.values() for c in cols]}  # fmt: skip
        if self.version:
            named["sink.version"] = [self.version]
        return named

    @property
    def full_table(self) -> str:
        return self.table if ":" in self.table else f"default:{self.table}"

    def family(self, name: str) -> FamilySpec:
        return self.families.get(name, FamilySpec())


def codec_type(dtype: DataType) -> str:
    """The value codec for a Spark type."""
    from pyspark.sql import types as T

    simple = {
        T.StringType: "string", T.IntegerType: "int", T.ShortType: "int", T.ByteType: "int",
        T.LongType: "long", T.DoubleType: "double", T.FloatType: "double", T.BooleanType: "boolean",
        T.DecimalType: "decimal", T.DateType: "date", T.TimestampType: "timestamp",
        T.TimestampNTZType: "timestamp", T.BinaryType: "bytes",
    }  # fmt: skip
    for cls, name in simple.items():
        if isinstance(dtype, cls):
            return name
    return "json"


class HBaseSink(Sink):
    """Writes each micro-batch from the executors through HBase's Thrift2 server."""

    Config = HBaseSinkConfig
    config: HBaseSinkConfig
    worker_modules = ("headwater.sinks.hbase.writer",)
    guarantee = (
        "effectively once: row keys and cell timestamps come from the record, so a replay rewrites the same cells"
    )

    def __init__(self, config: HBaseSinkConfig, connections: Any) -> None:
        super().__init__(config, connections)
        self._resolved: WriterDescription | None = None  # the mapping checked against the records (check)

    def required_fields(self) -> list[str]:
        return list(RowKeyTemplate.parse(self.config.row_key).fields)

    def columns_used(self, schema: StructType) -> list[str]:
        desc = self.describe(schema)
        return sorted({c.column for c in desc.cells} | set(self.required_fields())
                      | ({desc.version} if desc.version else set())
                      | {n for n in schema.fieldNames() if n in ("_hw_partition", "_hw_offset")})  # fmt: skip

    def check(self, schema: StructType) -> None:
        self._resolved = self.describe(schema)

    def prepare(self) -> None:
        from headwater.sinks.hbase import mapping
        from headwater.sinks.hbase.admin import connect, ensure_table

        ensure_table(self.config, self.connections.hbase)
        resolved = self._resolved
        if resolved is not None:  # the mapping checked against the records: kept with the table for the query side
            with connect(self.connections.hbase) as client:
                mapping.store(client, self.config.full_table, mapping.column_types(resolved.cells))

    def drop(self) -> list[str]:
        from headwater.sinks.hbase.admin import connect

        with connect(self.connections.hbase) as client:
            full = self.config.full_table
            if client.table_exists(full):
                client.delete_table(full)
                return [f"table {full} deleted"]
        return []

    def describe_target(self) -> str:
        return f"hbase table {self.config.full_table}"

    def describe(self, schema: StructType) -> WriterDescription:
        """Resolve the column mapping against the records' schema; raises ConfigError on a mismatch."""
        from headwater.errors import ConfigError
        from headwater.sinks.hbase.writer import CellSpec, WriterDescription

        c = self.config
        fields = {f.name: f.dataType for f in schema.fields}
        available = ", ".join(n for n in fields if not n.startswith("_hw_"))
        cells = []
        for family, cols in c.columns.items():
            items = cols.items() if isinstance(cols, dict) else ((col, None) for col in cols)
            for col, typ in items:
                if col not in fields:
                    raise ConfigError(
                        f"sink.columns.{family}: column '{col}' not in the records; available: {available}"
                    )
                cells.append(CellSpec(family, col, col, typ or codec_type(fields[col])))
        for name in RowKeyTemplate.parse(c.row_key).fields:
            if name not in fields:
                raise ConfigError(f"sink.row_key: field '{name}' not in the records; available: {available}")
        version_type = None
        if c.version:
            if c.version not in fields:
                raise ConfigError(f"sink.version: field '{c.version}' not in the records; available: {available}")
            version_type = codec_type(fields[c.version])
            if version_type not in ("timestamp", "date", "long", "int"):
                raise ConfigError(f"sink.version: '{c.version}' is {version_type}; need a timestamp, date or long")
        h = self.connections.hbase
        return WriterDescription(
            host=h.host, port=h.port, timeout_ms=h.timeout_ms, transport=h.transport, protocol=h.protocol,
            table=c.full_table, row_key=c.row_key, cells=cells, version=c.version, version_type=version_type,
            durability=c.durability, batch_rows=c.batch_rows, batch_bytes=c.batch_bytes, retries=c.retries,
            max_cell_bytes=c.max_cell_bytes, max_request_bytes=c.max_request_bytes,
        )  # fmt: skip

    def write(self, df: DataFrame) -> SinkResult:
        """Write ``df`` (one micro-batch); return counters and the records the sink rejected."""
        results = self._run_writer(df, dry=False)
        out = SinkResult()
        for r in results:
            if r["kind"] == "stats":
                out.rows += r["rows"]
                out.written += r["written"]
                out.deduped += r["deduped"]
                out.bytes += r["bytes"]
                out.retries += r["retries"]
                out.calls += r["calls"]
            else:
                out.rejected.append(r.asDict())
        return out

    def rehearse(self, df: DataFrame) -> None:
        """Everything :meth:`write` does (JVM projection, Arrow, row keys, cell encoding) but send no put."""
        self._run_writer(df, dry=True)

    def _run_writer(self, df: DataFrame, dry: bool) -> list[Any]:
        """The executor-side writer over ``df``'s columns; its result rows (stats and rejected records)."""
        from dataclasses import replace

        from headwater.sinks.hbase.writer import RESULT_SCHEMA, make_writer

        desc = replace(self.describe(df.schema), dry=dry)
        needed = self.columns_used(df.schema)
        return df.select(*[f"`{n}`" for n in needed]).mapInArrow(make_writer(desc), RESULT_SCHEMA).collect()
