"""Test your own specs and transforms without Kafka or HBase: records in, what the sink would get out.

:func:`run_locally` takes a pipeline spec and a few records (dicts, JSON text or bytes, as they would
sit in the pipeline's topic) and runs, on a local SparkSession, exactly what the process stage runs
on a micro-batch: decoding against the spec's ``schema``, the expectations, the transforms and the
dead-letter routing. Instead of writing, it collects:

- ``written``: the records the sink would receive, in input order when the transforms keep it;
- ``dead_letters``: each bad record's reason, message and original value;
- ``expectations``: per rule, how many records failed it.

Nothing is started: no broker, no HBase, no metastore (a ``enrich`` transform that reads a Hive table
needs one, as in production). Stateful transforms (``dedupe``, ``window``) need a streaming query
and are refused here for now: test them with the e2e tier's real stack.

Example::

    >>> from headwater.testkit import run_locally
    >>> spec = '''
    ... name: orders
    ... source: {type: hive, table: demo.orders_raw, mode: snapshot}
    ... topic: {name: demo.orders, key: [order_id]}
    ... schema: {order_id: bigint, amount: "decimal(12,2)", quantity: int, status: string}
    ... expectations:
    ...   - {name: positive_quantity, sql: "quantity > 0", action: dead_letter}
    ... transforms:
    ...   - {type: filter, where: "status <> 'test'"}
    ...   - {type: sql, query: "SELECT *, amount * quantity AS total FROM input"}
    ... sink: {type: hbase, table: "demo:orders", row_key: "{order_id:long}", columns: {d: [amount, total]}}
    ... dead_letter: {topic: demo.orders.dlq}
    ... '''
    >>> out = run_locally(spec, [
    ...     {"order_id": 1, "amount": "2.50", "quantity": 4, "status": "paid"},
    ...     {"order_id": 2, "amount": "1.00", "quantity": 1, "status": "test"},
    ...     {"order_id": 3, "amount": "N/A", "quantity": 1, "status": "paid"},
    ...     {"order_id": 4, "amount": "1.00", "quantity": 0, "status": "paid"},
    ... ])
    >>> [(r["order_id"], str(r["total"])) for r in out.written]
    [(1, '10.00')]
    >>> [(d.reason, d.record["order_id"]) for d in out.dead_letters]
    [('type_mismatch', 3), ('expectation_failed', 4)]
    >>> out.filtered, out.expectations["positive_quantity"]["failed"]
    (1, 1)
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from headwater.errors import ConfigError
from headwater.spec import load_spec, load_spec_text
from headwater.spec.models import PipelineSpec

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

__all__ = ["DeadLetter", "LocalRun", "local_session", "run_locally"]

_META = ("_hw_topic", "_hw_partition", "_hw_offset", "_hw_kafka_ts")


@dataclass(frozen=True)
class DeadLetter:
    """A record the pipeline would send to its dead-letter topic."""

    reason: str
    message: str
    offset: int | None
    value: bytes | None

    @property
    def record(self) -> dict[str, Any] | None:
        """The original value parsed as JSON, or None if it is not JSON."""
        try:
            out = json.loads(self.value) if self.value is not None else None
        except ValueError:
            return None
        return out if isinstance(out, dict) else None


@dataclass
class LocalRun:
    """What one local run of a spec's processing produced."""

    written: list[dict[str, Any]] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    filtered: int = 0
    expectations: dict[str, dict[str, Any]] = field(default_factory=dict)


def local_session() -> SparkSession:
    """A small local SparkSession (``local[1]``, no UI, UTC), reused when one is active."""
    import os
    import sys

    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # Python transforms run in this interpreter
    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    return (
        SparkSession.builder.master("local[1]").appName("headwater-testkit")
        .config("spark.ui.enabled", "false").config("spark.sql.shuffle.partitions", "1")
        .config("spark.sql.session.timeZone", "UTC").getOrCreate()
    )  # fmt: skip


def run_locally(
    spec: PipelineSpec | str | Path,
    records: Iterable[dict[str, Any] | str | bytes],
    spark: SparkSession | None = None,
) -> LocalRun:
    """Run ``spec``'s decoding, expectations, transforms and dead-letter routing on ``records``.

    Args:
        spec: a loaded spec, a path to a YAML file, or the YAML text itself.
        records: topic values: dicts (sent as JSON), JSON text, or raw bytes (to test bad input).
        spark: the session to use; default :func:`local_session`.

    Raises:
        ConfigError: the spec is invalid or declares no ``schema`` (the kit has no source to ask).
        ExpectationFailed: a record fails an expectation whose action is ``fail``.
    """
    from pyspark.sql.types import StructType

    from headwater.context import PipelineContext
    from headwater.streaming import decode as dec
    from headwater.streaming.expectations import apply_expectations, count_expectations
    from headwater.transforms.python import split_errors

    spec = _load(spec)
    if not spec.schema_:
        raise ConfigError(f"pipeline '{spec.name}': the test kit needs the record schema declared as `schema:`")
    spark = spark or local_session()
    schema = StructType.fromDDL(", ".join(f"`{k}` {v}" for k, v in spec.schema_.items()))
    assert isinstance(schema, StructType)
    raw = _kafka_rows(spark, spec, list(records))
    required = list(dict.fromkeys([*spec.topic.key, *_sink_fields(spec)]))
    decoded = dec.decode(raw, schema, required, keyed=False)
    counts = count_expectations(decoded, spec.expectations)
    checked = apply_expectations(decoded, spec.expectations, counts)
    out = LocalRun(expectations=counts)
    out.dead_letters = [_letter(r) for r in dec.bad_records(checked).orderBy("_hw_offset").collect()]

    errors: list[DataFrame] = []
    df = dec.good_records(checked, schema)
    good = df.count()
    transforms = PipelineContext(spec, home=Path(".")).transforms
    stateful = [type(t).__name__ for t in transforms if t.stateful]
    if stateful:
        raise ConfigError(f"pipeline '{spec.name}': the test kit runs stateless transforms only; "
                          f"{', '.join(stateful)} need a streaming query")  # fmt: skip
    for transform in transforms:
        df = split_errors(transform.apply(df), errors, None)
    ordered = df.orderBy("_hw_offset") if "_hw_offset" in df.columns else df
    out.written = [{k: v for k, v in r.asDict(recursive=True).items() if k not in _META} for r in ordered.collect()]
    failed = 0
    for rows in errors:
        for r in rows.collect():
            failed += 1
            offset = r.asDict().get("_hw_offset")
            value = next((v for (o, v) in _values(raw) if o == offset), None)
            out.dead_letters.append(DeadLetter(r[dec.ERROR], r[dec.ERROR_DETAIL], offset, value))
    out.filtered = max(0, good - failed - len(out.written))
    return out


def _load(spec: PipelineSpec | str | Path) -> PipelineSpec:
    if isinstance(spec, PipelineSpec):
        return spec
    if isinstance(spec, Path) or (isinstance(spec, str) and "\n" not in spec and spec.endswith((".yaml", ".yml"))):
        return load_spec(Path(spec))
    return load_spec_text(spec, "<spec>")


def _sink_fields(spec: PipelineSpec) -> list[str]:
    """The record fields the sink cannot do without (a row key's fields), as the process stage requires them."""
    from headwater.sinks.rowkey import RowKeyTemplate

    row_key = getattr(spec.sink, "row_key", None)
    return list(RowKeyTemplate.parse(row_key).fields) if row_key else []


def _kafka_rows(spark: SparkSession, spec: PipelineSpec, records: list[dict[str, Any] | str | bytes]) -> DataFrame:
    """``records`` as the rows Spark's Kafka source gives: key, value, topic, partition, offset, timestamp."""
    now = datetime.now(UTC)
    rows = []
    for offset, rec in enumerate(records):
        if isinstance(rec, dict):
            key = json.dumps([str(rec.get(k)) for k in spec.topic.key]) if len(spec.topic.key) > 1 else (
                str(rec.get(spec.topic.key[0])) if spec.topic.key else None)  # fmt: skip
            value = json.dumps(rec, default=str).encode()
        else:
            key, value = None, rec.encode() if isinstance(rec, str) else rec
        rows.append((key.encode() if key is not None else None, value, spec.topic.name, 0, offset, now))
    schema = "key binary, value binary, topic string, partition int, offset bigint, timestamp timestamp"
    return spark.createDataFrame(rows, schema)


def _values(raw: DataFrame) -> list[tuple[int, bytes]]:
    return [(r["offset"], bytes(r["value"])) for r in raw.select("offset", "value").collect()]


def _letter(row: Any) -> DeadLetter:
    from headwater.streaming import decode as dec

    value = row["value"]
    return DeadLetter(row[dec.ERROR], row[dec.ERROR_DETAIL], row["_hw_offset"],
                      bytes(value) if value is not None else None)  # fmt: skip
