"""The clickstream example end to end: an application's Kafka topic as the source (no ingest stage),
dedupe and per-user windows, two sinks (HBase profiles, Kafka spend alerts); and a kill -9 in the
middle. Checked against the plain-Python oracle of :mod:`headwater.clicks`."""

from __future__ import annotations

import base64
import json
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from headwater import clicks
from headwater.sinks.hbase.codec import decode_value
from headwater.sinks.hbase.rowkey import RowKeyTemplate
from kit import dead_letter_envelopes, hbase_cells, read_topic, run_cli

pytestmark = pytest.mark.e2e

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "clickstream.yaml"
EVENTS, USERS = 20_000, 20


def spec_for(tmp: Path, unique: str, max_offsets: int) -> tuple[Path, dict[str, str]]:
    """examples/clickstream.yaml with names of this test, families keeping 5 versions (a duplicate shows)."""
    names = {"topic": f"c{unique}.page_views", "table": f"c{unique}:user_profiles",
             "alerts": f"c{unique}.spend_alerts", "dlq": f"c{unique}.page_views.dlq"}  # fmt: skip
    text = EXAMPLE.read_text()
    for old, new in (("shop.page_views.dlq", names["dlq"]), ("shop.page_views", names["topic"]),
                     ("shop:user_profiles", names["table"]), ("shop.spend_alerts", names["alerts"]),
                     ("name: clickstream", f"name: c{unique}"),
                     ("max_offsets_per_trigger: 20000", f"max_offsets_per_trigger: {max_offsets}")):  # fmt: skip
        assert old in text, old
        text = text.replace(old, new)
    text = text.replace("    columns: {p: [views, spend, window_start, window_end]}\n",
                        "    columns: {p: [views, spend, window_start, window_end]}\n"
                        "    families: {p: {max_versions: 5}}\n")  # fmt: skip
    path = tmp / f"c{unique}.yaml"
    path.write_text(text)
    return path, names


def check(stack: Any, names: dict[str, str], replayed: bool = False) -> dict[str, int]:
    """HBase profiles, alerts and dead letters against the oracle; returns the figures."""
    want = clicks.expected(EVENTS, USERS)
    template = RowKeyTemplate.parse("{salt(user_id, 4)}|{user_id}|{window_start:timestamp}")
    cells = hbase_cells(stack.config.host, stack.config.thrift2_port, names["table"])
    got = {}
    for row, cols in cells.items():
        k = template.decode(row)
        assert all(len(v) == 1 for v in cols.values()), (k, cols)  # one version per cell: no duplicate write
        got[(k["user_id"], k["window_start"])] = {
            "views": decode_value(cols["p:views"][0][1], "long"),
            "spend": decode_value(cols["p:spend"][0][1], "decimal"),
            "window_end": decode_value(cols["p:window_end"][0][1], "timestamp"),
        }
    assert got == want.profiles
    last: dict[tuple[str, str], Decimal] = {}
    copies = 0
    for msg in read_topic(stack.config.kafka_bootstrap, names["alerts"]):  # in offset order per partition
        alert = json.loads(msg.value())
        assert msg.key().decode() == alert["user_id"]
        copies += 1
        last[(alert["user_id"], alert["window_start"])] = Decimal(str(alert["spend"]))
    assert last == {(u, w.strftime("%Y-%m-%dT%H:%M:%S.%fZ")): spend for (u, w), spend in want.alerts.items()}
    envelopes, duplicates = dead_letter_envelopes(stack.config.kafka_bootstrap, names["dlq"], allow_duplicates=replayed)
    originals = [json.loads(base64.b64decode(e["value_b64"])) for e in envelopes.values()]
    assert {o["event_id"] for o in originals} == want.dead and len(originals) == len(want.dead)
    assert {e["reason"] for e in envelopes.values()} == {"type_mismatch"}
    figures = {"events": EVENTS, "profiles": len(got), "alerts": len(last), "alert_records": copies,
               "dead_letters": len(envelopes), "dead_letter_copies": sum(duplicates.values())}  # fmt: skip
    print(figures)
    return figures


def test_clickstream_end_to_end(stack, unique, tmp_path) -> None:  # type: ignore[no-untyped-def]
    path, names = spec_for(tmp_path, unique, 20_000)
    clicks.produce(stack.config.kafka_bootstrap, names["topic"], clicks.stream(EVENTS, USERS))
    out = run_cli("run", str(path), "--until-drained")
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    check(stack, names)
    # The query side decodes the columns the window computed with the types they were written with
    # (kept with the table by the process stage), not as text: views is a number, spend a decimal.
    out = run_cli("query", str(path), "--prefix", "user_id=u0007", "--limit", "100", "--json")
    assert out.returncode == 0, out.stderr[-2000:]
    rows = [json.loads(line) for line in out.stdout.splitlines() if line.strip()]
    want = {w: p for (u, w), p in clicks.expected(EVENTS, USERS).profiles.items() if u == "u0007"}
    assert len(rows) == len(want)
    for row in rows:
        cols = row["columns"]
        assert isinstance(cols["views"], int) and not isinstance(cols["views"], bool), row
        start = datetime.fromisoformat(row["key"]["window_start"])
        assert (cols["views"], Decimal(cols["spend"])) == (want[start]["views"], want[start]["spend"])


def test_clickstream_kill_9_mid_stream(stack, unique, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """kill -9 right after the 3rd micro-batch reached both sinks, before Spark committed it: replayed, exact."""
    path, names = spec_for(tmp_path, unique, 3000)
    clicks.produce(stack.config.kafka_bootstrap, names["topic"], clicks.stream(EVENTS, USERS))
    killed = run_cli("run", str(path), "--stage", "process", env={"HEADWATER_FAULT": "process.after_sink:3"})
    assert killed.returncode == -9, killed.stderr[-2000:]
    out = run_cli("run", str(path), "--stage", "process", "--until-drained")
    assert out.returncode == 0, out.stderr[-3000:]
    check(stack, names, replayed=True)
