"""Dead letters as a workflow, through the CLI: show them, fix the pipeline, replay them exactly once."""

from __future__ import annotations

import json
from datetime import UTC
from decimal import Decimal

import pytest

from headwater.demo import create_orders
from headwater.sinks.hbase.codec import decode_value
from headwater.sinks.hbase.rowkey import RowKeyTemplate
from headwater.spec import load_spec
from kit import ROW_KEY, compare, dead_letters, expected_from_hive, hbase_cells, read_topic, run_cli, write_spec

pytestmark = pytest.mark.e2e

# The fix: the landing table's amount is text; read it as text and parse it leniently ('12,50' is
# 12.50, 'N/A' is unknown, i.e. null) instead of dead-lettering the record.
FIXED_TRANSFORM = (
    '  - {type: sql, query: "SELECT * EXCEPT (amount), '
    "try_cast(replace(amount, ',', '.') AS decimal(12,2)) AS amount FROM input\"}\n"
)


def _fix(path) -> None:  # type: ignore[no-untyped-def]
    text = path.read_text()
    assert "  amount: decimal(12,2)\n" in text and "transforms:\n" in text
    text = text.replace("  amount: decimal(12,2)\n", "  amount: string\n")
    text = text.replace("transforms:\n", "transforms:\n" + FIXED_TRANSFORM)
    path.write_text(text)


def test_show_fix_replay_exactly_once(stack, spark, unique, tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = write_spec(tmp_path, unique)
    spec = load_spec(path)
    bootstrap = stack.config.kafka_bootstrap
    create_orders(spark, spec.source.table, 1000)  # ids 123 ('N/A'), 321 ('12,50') and 777 (no customer) are bad
    out = run_cli("run", str(path), "--until-drained")
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    bad = dead_letters(bootstrap, spec.dead_letter.topic)
    assert {k: v["reason"] for k, v in bad.items()} == {
        123: "type_mismatch",
        321: "type_mismatch",
        777: "missing_field",
    }

    # show: reason counts first, then one line per source position
    shown = run_cli("dlq", "show", str(path))
    assert shown.returncode == 0, shown.stderr[-2000:]
    lines = shown.stdout.splitlines()
    assert lines[0] == f"{spec.dead_letter.topic}: 3 dead letter(s)"
    assert lines[1].split() == ["type_mismatch", "2"] and lines[2].split() == ["missing_field", "1"]
    positions = {bad[i]["source"]["offset"]: i for i in bad}
    assert sum("amount: N/A is not decimal(12,2)" in line for line in lines) == 1
    as_json = json.loads(run_cli("dlq", "show", str(path), "--reason", "type_mismatch", "--json").stdout)
    assert as_json["total"] == 3 and as_json["reasons"] == {"type_mismatch": 2, "missing_field": 1}
    assert sorted(json.loads(e["value"])["order_id"] for e in as_json["envelopes"]) == [123, 321]
    assert all(e["replayed"] is False for e in as_json["envelopes"]) and len(positions) == 3

    dry = run_cli("dlq", "replay", str(path), "--reason", "type_mismatch", "--dry-run")
    assert dry.returncode == 0 and "found 2 dead letter(s), would replay 2, skipped 0" in dry.stdout, dry.stderr

    # Fix the pipeline, then replay; the first replay dies after Kafka acknowledged, before recording.
    _fix(path)
    spec = load_spec(path)
    killed = run_cli("dlq", "replay", str(path), "--reason", "type_mismatch",
                     env={"HEADWATER_FAULT": "dlq.replay.after_produce"})  # fmt: skip
    assert killed.returncode == -9, killed.stdout + killed.stderr[-2000:]
    again = run_cli("dlq", "replay", str(path), "--reason", "type_mismatch")
    assert again.returncode == 0, again.stderr[-2000:]
    assert "found 2 dead letter(s), replayed 2, skipped 0 (already replayed)" in again.stdout

    replays = [m for m in read_topic(bootstrap, spec.topic.name) if m.headers()]
    sources = sorted(dict(m.headers())["hw.replay_of"].decode() for m in replays)
    expected_sources = sorted(f"{e['source']['topic']}:{e['source']['partition']}:{e['source']['offset']}"
                              for k, e in bad.items() if k in (123, 321))  # fmt: skip
    assert sources == sorted(expected_sources * 2)  # sent twice: once by the killed run, once after
    assert sorted(json.loads(m.value())["order_id"] for m in replays) == [123, 123, 321, 321]

    out = run_cli("run", str(path), "--stage", "process", "--until-drained")
    assert out.returncode == 0, out.stderr[-3000:]

    # HBase: every earlier row unchanged, the replayed rows present, every cell exactly one version.
    expected, _ = expected_from_hive(spark, spec.source.table)
    cells = hbase_cells(stack.config.host, stack.config.thrift2_port, spec.sink.full_table)
    template = RowKeyTemplate.parse(ROW_KEY)
    by_id = {template.decode(row)["order_id"]: row for row in cells}
    raw = {
        r.order_id: r for r in spark.sql(f"SELECT * FROM {spec.source.table} WHERE order_id IN (123, 321)").collect()
    }
    fixed = [i for i in (123, 321) if raw[i].status != "test"]
    assert fixed, "the demo rows 123 and 321 should not both be filtered test orders"
    for i in fixed:
        r = raw[i]
        ts = int(r.updated_at.replace(tzinfo=UTC).timestamp() * 1000)
        row = cells.pop(by_id[i])
        assert all(len(versions) == 1 and versions[0][0] == ts for versions in row.values()), row
        assert decode_value(row["d:quantity"][0][1], "int") == r.quantity
        if i == 321:  # '12,50' -> 12.50
            assert decode_value(row["d:amount"][0][1], "decimal") == Decimal("12.50")
            assert decode_value(row["d:total"][0][1], "decimal") == Decimal("12.50") * r.quantity
        else:  # 'N/A' -> unknown: no amount or total cell
            assert "d:amount" not in row and "d:total" not in row and decode_value(row["d:status"][0][1], "string")
    assert compare(expected, cells) == {"lost": [], "phantom": [], "dup": [], "corrupt": []}

    # Nothing dead-lettered again, and a second replay sends nothing.
    assert {k: v["reason"] for k, v in dead_letters(bootstrap, spec.dead_letter.topic).items()} == {
        123: "type_mismatch", 321: "type_mismatch", 777: "missing_field"}  # fmt: skip
    second = run_cli("dlq", "replay", str(path), "--reason", "type_mismatch")
    assert second.returncode == 0 and "found 2 dead letter(s), replayed 0, skipped 2" in second.stdout
    assert len([m for m in read_topic(bootstrap, spec.topic.name) if m.headers()]) == 4
    shown = json.loads(run_cli("dlq", "show", str(path), "--json").stdout)
    assert {json.loads(e["value"])["order_id"]: e["replayed"] for e in shown["envelopes"]} == {
        123: True, 321: True, 777: False}  # fmt: skip
