"""Schema drift between increments: the pure comparison (no Spark)."""

from __future__ import annotations

import pytest

from headwater.errors import ConfigError
from headwater.sources.drift import ALL_COLUMNS, SchemaDriftError, compare, used_columns, widens
from headwater.spec import load_spec_text

BEFORE = {"order_id": "bigint", "amount": "decimal(12,2)", "quantity": "int", "note": "string", "ts": "timestamp"}
USED = {"order_id": "topic.key, schema", "amount": "schema", "quantity": "schema", "ts": "schema"}


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ("int", "bigint"), ("tinyint", "smallint"), ("smallint", "bigint"), ("float", "double"),
        ("int", "double"), ("decimal(12,2)", "decimal(14,2)"), ("decimal(12,2)", "decimal(13,3)"),
        ("int", "decimal(10,0)"), ("bigint", "decimal(22,2)"),
    ],
)  # fmt: skip
def test_widenings(before: str, after: str) -> None:
    assert widens(before, after)
    assert not widens(after, before)


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ("bigint", "int"), ("double", "float"), ("bigint", "double"), ("decimal(12,2)", "decimal(10,2)"),
        ("decimal(12,2)", "decimal(12,3)"), ("date", "timestamp"), ("int", "string"), ("string", "int"),
        ("int", "decimal(9,0)"), ("int", "int"), ("array<int>", "array<bigint>"), ("timestamp", "timestamp_ntz"),
    ],
)  # fmt: skip
def test_not_widenings(before: str, after: str) -> None:
    assert not widens(before, after)


def test_no_change_is_empty() -> None:
    drift = compare(BEFORE, dict(reversed(BEFORE.items())), USED)  # order alone is no change
    assert not drift and drift.compatible and drift.changes == []


def test_added_column_and_widened_types_continue() -> None:
    after = {**BEFORE, "quantity": "bigint", "amount": "decimal(14,2)", "channel": "string"}
    drift = compare(BEFORE, after, USED)
    assert drift.compatible
    assert [c.as_dict() for c in drift.changes] == [
        {"column": "amount", "before": "decimal(12,2)", "after": "decimal(14,2)", "verdict": "ok: widened"},
        {"column": "quantity", "before": "int", "after": "bigint", "verdict": "ok: widened"},
        {"column": "channel", "before": None, "after": "string", "verdict": "ok: added"},
    ]
    assert drift.record("2025-01-01T00:00:00+00:00") == {
        "at": "2025-01-01T00:00:00+00:00", "changes": [c.as_dict() for c in drift.changes]
    }  # fmt: skip


def test_added_not_null_column_is_incompatible() -> None:
    drift = compare(BEFORE, {**BEFORE, "extra": "int"}, USED, required={"extra"})
    assert not drift.compatible
    assert drift.changes[0].verdict == "INCOMPATIBLE: added NOT NULL"


def test_narrowed_used_column_stops() -> None:
    drift = compare(BEFORE, {**BEFORE, "quantity": "smallint"}, USED)
    assert not drift.compatible
    (change,) = drift.changes
    assert (change.column, change.before, change.after) == ("quantity", "int", "smallint")
    assert change.verdict == "INCOMPATIBLE: narrowed (used by schema)"


def test_dropped_used_column_stops_and_unused_is_recorded() -> None:
    after = {k: v for k, v in BEFORE.items() if k not in ("order_id", "note")}
    drift = compare(BEFORE, after, USED)
    assert not drift.compatible
    assert [(c.column, c.verdict, c.compatible) for c in drift.changes] == [
        ("order_id", "INCOMPATIBLE: dropped (used by topic.key, schema)", False),
        ("note", "ok: dropped, not used", True),
    ]


def test_changes_of_unused_columns_continue() -> None:
    drift = compare(BEFORE, {**BEFORE, "note": "int"}, USED)
    assert drift.compatible
    assert drift.changes[0].verdict == "ok: type changed, not used"


def test_rename_is_a_dropped_column_with_a_hint() -> None:
    after = {"order_id": "bigint", "amt": "decimal(12,2)", "quantity": "int", "note": "string", "ts": "timestamp"}
    drift = compare(BEFORE, after, USED)
    assert not drift.compatible
    assert [(c.column, c.before, c.after, c.verdict) for c in drift.changes] == [
        ("amount", "decimal(12,2)", None, "INCOMPATIBLE: dropped (renamed to amt?) (used by schema)"),
        ("amt", None, "decimal(12,2)", "ok: added"),
    ]


def test_without_declared_schema_every_column_is_used() -> None:
    drift = compare(BEFORE, {**BEFORE, "note": "int"}, None)
    assert not drift.compatible
    assert drift.changes[0].verdict == f"INCOMPATIBLE: type changed (used by {ALL_COLUMNS})"


def test_type_change_that_is_not_narrowing() -> None:
    drift = compare({"d": "date"}, {"d": "timestamp"}, {"d": "schema"})
    assert drift.changes[0].verdict == "INCOMPATIBLE: type changed (used by schema)"


def test_error_shows_a_table() -> None:
    after = {k: v for k, v in BEFORE.items() if k != "ts"} | {"quantity": "smallint", "channel": "string"}
    err = SchemaDriftError("db.orders", compare(BEFORE, after, USED))
    assert isinstance(err, ConfigError) and err.exit_code == 2
    lines = str(err).splitlines()
    assert lines[0] == (
        "source schema of db.orders changed incompatibly since the last committed position; nothing was produced:"
    )
    assert lines[1:5] == [
        "  column    before     after     verdict",
        "  quantity  int        smallint  INCOMPATIBLE: narrowed (used by schema)",
        "  ts        timestamp  -         INCOMPATIBLE: dropped (used by schema)",
        "  channel   -          string    ok: added",
    ]


SPEC = """
name: p
source: {type: hive, table: db.t, watermark: Updated_At}
topic: {name: p.t, key: [id]}
schema: {id: bigint, amount: "decimal(12,2)", Updated_At: timestamp}
transforms: [{type: sql, query: "SELECT *, amount * 2 AS doubled FROM input"}]
sink: {type: hbase, table: "p:t", row_key: "{salt(cust, 4)}|{id:long}", version: Updated_At,
       columns: {d: [amount, doubled]}}
dead_letter: {topic: p.t.dlq}
"""


def test_used_columns_of_a_spec() -> None:
    spec = load_spec_text(SPEC)
    assert used_columns(spec) == {
        "id": "topic.key, schema, sink.row_key", "amount": "schema, sink.columns",
        "updated_at": "schema, sink.version, source.watermark", "cust": "sink.row_key", "doubled": "sink.columns",
    }  # fmt: skip
    no_schema = load_spec_text(
        SPEC.replace('schema: {id: bigint, amount: "decimal(12,2)", Updated_At: timestamp}\n', "")
    )
    assert used_columns(no_schema) is None


def test_used_columns_match_case_insensitively() -> None:
    spec = load_spec_text(SPEC)
    drift = compare({"id": "bigint", "updated_at": "timestamp"}, {"id": "bigint"}, used_columns(spec))
    assert drift.changes[0].verdict == "INCOMPATIBLE: dropped (used by schema, sink.version, source.watermark)"
