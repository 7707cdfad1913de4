"""The pipeline end to end through the CLI, HBase checked against an independent oracle, and faults."""

from __future__ import annotations

import json
import re
from collections import Counter

import pytest

from headwater.demo import append_orders, create_orders
from headwater.spec import load_spec
from kit import compare, dead_letters, expected_from_hive, hbase_cells, read_topic, run_cli, wait_for, write_spec

pytestmark = pytest.mark.e2e


def _check(stack, spark, spec, replayed: bool = False) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    """HBase equals the oracle exactly; dead letters are exactly the malformed ids. Returns (rows, dlq).

    ``replayed``: a batch was replayed after a kill, so its dead letters may be in the topic twice
    (counted and printed; docs/guarantees.md explains why)."""
    expected, expected_dlq = expected_from_hive(spark, spec.source.table)
    cells = hbase_cells(stack.config.host, stack.config.thrift2_port, spec.sink.full_table)
    report = compare(expected, cells)
    assert report == {"lost": [], "phantom": [], "dup": [], "corrupt": []}
    assert len(cells) == len(expected)
    dlq = dead_letters(stack.config.kafka_bootstrap, spec.dead_letter.topic, allow_duplicates=replayed)
    print(f"dead letters: {len(dlq)}, duplicated by the replay: {dlq.duplicated}")
    assert {k: v["reason"] for k, v in dlq.items()} == expected_dlq
    for env in dlq.values():
        assert env["v"] == 1 and env["source"]["topic"] == spec.topic.name and env["source"]["offset"] >= 0
        assert env["message"]
    return len(cells), len(dlq)


def test_run_until_drained_then_increments(stack, spark, unique, tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = write_spec(tmp_path, unique)
    spec = load_spec(path)
    create_orders(spark, spec.source.table, 42_000)  # includes ids 777, 40123, 40321 (malformed) ...
    out = run_cli("run", str(path), "--until-drained")
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    assert re.search(r"rows read from source\s+42,000\n", out.stdout), out.stdout
    rows, dlq = _check(stack, spark, spec)
    assert dlq == 5  # ids 123, 321, 40123, 40321 (amount) and 777 (customer_id)
    bad = dead_letters(stack.config.kafka_bootstrap, spec.dead_letter.topic)
    assert bad[123]["message"] == "amount: N/A is not decimal(12,2)"
    assert bad[321]["message"] == "amount: 12,50 is not decimal(12,2)"
    assert bad[777]["message"] == "customer_id is null or missing"

    # A later increment: new rows by watermark and a new partition; each arrives once.
    append_orders(spark, spec.source.table, 42_000, 43_000)
    append_orders(spark, spec.source.table, 300_000, 301_000)
    out = run_cli("run", str(path), "--until-drained")
    assert out.returncode == 0, out.stderr[-3000:]
    rows2, _ = _check(stack, spark, spec)
    assert rows2 > rows
    ids = Counter(json.loads(m.value())["order_id"] for m in read_topic(stack.config.kafka_bootstrap, spec.topic.name))
    assert max(ids.values()) == 1 and len(ids) == 44_000


def test_kill_process_stage_mid_stream(stack, spark, unique, tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = write_spec(tmp_path, unique, max_offsets=2500)
    spec = load_spec(path)
    create_orders(spark, spec.source.table, 12_000)
    assert run_cli("run", str(path), "--stage", "ingest", "--until-drained").returncode == 0
    # kill -9 right after the 3rd batch reached HBase, before Spark committed it: it is replayed.
    killed = run_cli("run", str(path), "--stage", "process", env={"HEADWATER_FAULT": "process.after_sink:3"})
    assert killed.returncode == -9, killed.stderr[-2000:]
    partial = hbase_cells(stack.config.host, stack.config.thrift2_port, spec.sink.full_table)
    assert 0 < len(partial) < 11_000
    out = run_cli("run", str(path), "--stage", "process", "--until-drained")
    assert out.returncode == 0, out.stderr[-3000:]
    _check(stack, spark, spec, replayed=True)


def test_kill_ingest_between_produce_and_commit(stack, spark, unique, tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = write_spec(tmp_path, unique)
    spec = load_spec(path)
    create_orders(spark, spec.source.table, 6_000)
    killed = run_cli("run", str(path), "--stage", "ingest", env={"HEADWATER_FAULT": "ingest.after_produce"})
    assert killed.returncode == -9
    # Produced, never committed: the restart produces the same increment again.
    assert run_cli("run", str(path), "--stage", "ingest", "--until-drained").returncode == 0
    ids = Counter(json.loads(m.value())["order_id"] for m in read_topic(stack.config.kafka_bootstrap, spec.topic.name))
    assert set(ids.values()) == {2} and len(ids) == 6_000
    out = run_cli("run", str(path), "--stage", "process", "--until-drained")
    assert out.returncode == 0, out.stderr[-3000:]
    _check(stack, spark, spec)  # every cell exactly one version: the duplicates collapsed


def test_hbase_thrift_outage_is_retried_not_dead_lettered(stack, spark, unique, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import subprocess
    import sys

    from headwater.context import PipelineContext
    from headwater.observability.progress import read_progress
    from headwater.stack import supervisor

    path = write_spec(tmp_path, unique, max_offsets=1500)
    spec = load_spec(path)
    create_orders(spark, spec.source.table, 9_000)
    assert run_cli("run", str(path), "--stage", "ingest", "--until-drained").returncode == 0
    progress = PipelineContext(spec).progress_path("process")
    log = tmp_path / "process.log"
    with log.open("w") as err_file:
        proc = subprocess.Popen([sys.executable, "-m", "headwater.cli", "run", str(path), "--stage", "process",
                                 "--until-drained"], stdout=subprocess.DEVNULL, stderr=err_file)  # fmt: skip
    # The first written batch, then Thrift2 is taken away.
    wait_for("the first written batch", lambda: (read_progress(progress) or {}).get("counters", {}).get("rows_written"),
             180, proc)  # fmt: skip
    thrift2 = supervisor.find(stack.config.root, "hbase-thrift2")
    assert thrift2 is not None
    thrift2.kill()

    # The outage lasts until the stage has shown it is riding it out: a writer's third retry (or a
    # query restart) in its log; then Thrift2 comes back (only the missing service is started).
    def riding_out() -> bool:
        text = log.read_text(errors="replace")
        return "; retry 3/" in text or "query failed with a transient error" in text or proc.poll() is not None

    wait_for("the stage to retry its writes", riding_out, 180)
    stack.up()
    proc.wait(timeout=400)
    err = log.read_text(errors="replace")
    assert proc.returncode == 0, err[-3000:]
    counters = (read_progress(progress) or {})["counters"]
    assert counters["write_retries"] + counters.get("query_restarts", 0) > 0
    _check(stack, spark, spec)  # nothing lost, nothing duplicated, and the dead-letter topic has only malformed ids
