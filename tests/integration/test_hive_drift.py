"""Schema drift of a real Hive table between increments: compatible changes go on, others stop ingest."""

from __future__ import annotations

import json

import pytest

from headwater import kafka
from headwater.context import PipelineContext
from headwater.ingest.runner import IngestStage
from headwater.sources.drift import SchemaDriftError
from headwater.spec import load_spec_text
from kit import read_topic

pytestmark = pytest.mark.integration

COLUMNS = "id BIGINT, qty INT, amount DECIMAL(12,2), note STRING, updated_at TIMESTAMP"


def _setup(spark, unique: str):  # type: ignore[no-untyped-def]
    """A Hive table with 3 rows and an ingest stage whose spec declares id, qty, amount, updated_at."""
    db = f"drift_{unique}"
    spark.sql(f"CREATE DATABASE {db}")
    spark.sql(f"CREATE TABLE {db}.events ({COLUMNS}) STORED AS PARQUET")
    _insert(spark, f"{db}.events", [1, 2, 3])
    spec = load_spec_text(
        f"""
name: drift{unique}
source: {{type: hive, table: {db}.events, watermark: updated_at, poll: 1 second}}
topic: {{name: drift{unique}, partitions: 1, key: [id]}}
schema: {{id: bigint, qty: int, amount: "decimal(12,2)", updated_at: timestamp}}
sink: {{type: hbase, table: "drift{unique}", row_key: "{{id:long}}", columns: {{d: [qty, amount]}}}}
dead_letter: {{topic: drift{unique}.dlq}}
"""
    )
    stage = IngestStage(PipelineContext(spec), spark=spark)
    stage.prepare()
    first = stage.poll_once()
    assert first is not None and first.rows == 3 and first.produced == 3
    position = stage.positions.load(stage.ctx.position_key)
    assert position is not None
    assert position["schema"] == {"id": "bigint", "qty": "int", "amount": "decimal(12,2)", "note": "string",
                                  "updated_at": "timestamp"}  # fmt: skip
    assert position["schema_changes"] == []
    return spec, stage, f"{db}.events"


def _insert(spark, table: str, ids: list[int], extra: str = "") -> None:  # type: ignore[no-untyped-def]
    rows = ", ".join(
        f"({i}, {i * 10}, {i}.25, 'n{i}', TIMESTAMP'2025-01-01 00:00:00' + INTERVAL {i} MINUTES{extra})" for i in ids
    )
    spark.sql(f"INSERT INTO {table} VALUES {rows}")


def _values(bootstrap: str, topic: str) -> dict[int, dict[str, object]]:
    return {v["id"]: v for v in (json.loads(m.value()) for m in read_topic(bootstrap, topic))}


def test_added_column_continues_and_is_recorded(stack, spark, unique) -> None:  # type: ignore[no-untyped-def]
    spec, stage, table = _setup(spark, unique)
    spark.sql(f"ALTER TABLE {table} ADD COLUMNS (channel STRING)")
    assert stage.poll_once() is None  # no new rows: nothing produced, but the change is recorded
    position = stage.positions.load(stage.ctx.position_key)
    assert position["schema"]["channel"] == "string"
    (change,) = position["schema_changes"]
    assert change["changes"] == [{"column": "channel", "before": None, "after": "string", "verdict": "ok: added"}]
    assert change["at"].startswith("20")

    _insert(spark, table, [4, 5], extra=", 'web'")
    result = stage.poll_once()
    assert result is not None and result.rows == 2 and result.produced == 2
    values = _values(stack.config.kafka_bootstrap, spec.topic.name)
    assert sorted(values) == [1, 2, 3, 4, 5]
    assert values[4] == {"id": 4, "qty": 40, "amount": 4.25, "note": "n4", "updated_at": "2025-01-01T00:04:00.000000Z",
                         "channel": "web"}  # fmt: skip
    assert "channel" not in values[1]
    after = stage.positions.load(stage.ctx.position_key)
    assert len(after["schema_changes"]) == 1  # recorded once, not again with the next increment
    assert after["watermark"] == "2025-01-01 00:05:00"


def _recreate(spark, table: str, columns: str, values: str) -> None:  # type: ignore[no-untyped-def]
    """Drop and recreate ``table`` with other columns and rows.

    The metastore refuses an in-place incompatible type change (``ALTER TABLE ... CHANGE COLUMN qty
    qty SMALLINT`` fails with "types incompatible with the existing columns", as in Hive), so a
    narrowed or dropped column reaches a pipeline through a recreated table.
    """
    spark.sql(f"DROP TABLE {table}")
    spark.sql(f"CREATE TABLE {table} ({columns}) STORED AS PARQUET")
    spark.sql(f"INSERT INTO {table} VALUES {values}")


def test_widened_type_continues(stack, spark, unique) -> None:  # type: ignore[no-untyped-def]
    """``qty INT -> BIGINT`` in place (the metastore allows a widening); old files read as bigint."""
    spec, stage, table = _setup(spark, unique)
    db, name = table.split(".")
    widened = spark._jvm.org.apache.spark.sql.types.DataType.fromDDL(COLUMNS.replace("qty INT", "qty BIGINT"))
    spark._jsparkSession.sharedState().externalCatalog().alterTableDataSchema(db, name, widened)
    spark.catalog.refreshTable(table)
    spark.sql(f"INSERT INTO {table} VALUES (4, 5000000000, 4.25, 'n4', TIMESTAMP'2025-01-01 00:04:00')")
    result = stage.poll_once()
    assert result is not None and result.rows == 1
    assert _values(stack.config.kafka_bootstrap, spec.topic.name)[4]["qty"] == 5_000_000_000
    changes = stage.positions.load(stage.ctx.position_key)["schema_changes"]
    assert [c["changes"] for c in changes] == [
        [{"column": "qty", "before": "int", "after": "bigint", "verdict": "ok: widened"}]
    ]


def test_narrowed_type_stops_before_producing(stack, spark, unique) -> None:  # type: ignore[no-untyped-def]
    spec, stage, table = _setup(spark, unique)
    values = "(4, 40, 4.25, 'n4', TIMESTAMP'2025-01-01 00:04:00')"  # new data, NOT to be produced
    _recreate(spark, table, COLUMNS.replace("qty INT", "qty SMALLINT"), values)
    assert spark.table(table).schema["qty"].dataType.simpleString() == "smallint"
    conn = spec.connections.kafka
    ends = kafka.end_offsets(conn, spec.topic.name)
    position = stage.positions.load(stage.ctx.position_key)
    with pytest.raises(SchemaDriftError) as info:
        stage.poll_once()
    message = str(info.value)
    assert f"source schema of {table} changed incompatibly" in message
    assert "  column  before  after     verdict" in message
    assert "  qty     int     smallint  INCOMPATIBLE: narrowed (used by schema, sink.columns)" in message
    assert info.value.exit_code == 2
    assert kafka.end_offsets(conn, spec.topic.name) == ends  # nothing produced
    assert stage.positions.load(stage.ctx.position_key) == position  # nothing committed
    with pytest.raises(SchemaDriftError):  # and it stays stopped
        stage.poll_once()


def test_dropped_used_column_stops_before_producing(stack, spark, unique) -> None:  # type: ignore[no-untyped-def]
    spec, stage, table = _setup(spark, unique)
    _recreate(
        spark, table, COLUMNS.replace(" amount DECIMAL(12,2),", ""), "(7, 70, 'n7', TIMESTAMP'2025-02-01 00:00:00')"
    )
    conn = spec.connections.kafka
    ends = kafka.end_offsets(conn, spec.topic.name)
    with pytest.raises(SchemaDriftError) as info:
        stage.poll_once()
    assert "  amount  decimal(12,2)  -      INCOMPATIBLE: dropped (used by schema, sink.columns)" in str(info.value)
    assert kafka.end_offsets(conn, spec.topic.name) == ends
    assert sorted(_values(stack.config.kafka_bootstrap, spec.topic.name)) == [1, 2, 3]
