"""Operating running pipelines: two specs from a folder run side by side under one ``headwater run``;
their metrics endpoints, ``status``, the dashboard in a real headless browser, ``logs``, ``stop`` and
Ctrl-C, all checked against the oracle computed from the Hive rows (one run for all the checks)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from headwater.demo import create_orders
from headwater.observability.progress import read_progress
from headwater.spec import load_spec
from kit import expected_from_hive, run_cli, wait_for, write_spec

pytestmark = pytest.mark.e2e

ROWS = 3000
ARTIFACTS = Path(__file__).resolve().parents[2] / ".headwater" / "artifacts"


class Running:
    """The ``headwater run FOLDER`` under test, its specs, outputs and oracle."""

    def __init__(self, proc: subprocess.Popen[str], specs: list[Any], paths: list[Path], out: Path, err: Path,
                 oracle: dict[str, dict[str, Any]]) -> None:  # fmt: skip
        self.proc, self.specs, self.paths, self.out, self.err, self.oracle = proc, specs, paths, out, err, oracle

    def progress(self, spec: Any, stage: str) -> dict[str, Any]:
        from headwater.context import PipelineContext

        return read_progress(PipelineContext(spec).progress_path(stage)) or {}


def _settled(run: Running) -> bool:
    for spec in run.specs:
        i, p = run.progress(spec, "ingest"), run.progress(spec, "process")
        want = run.oracle[spec.name]
        if i.get("state") != "idle" or p.get("state") != "running" or p.get("lag") != 0:
            return False
        if p.get("counters", {}).get("rows_in", 0) != want["rows"]:
            return False
    return True


@pytest.fixture(scope="module")
def running(stack, spark, tmp_path_factory) -> Iterator[Running]:  # type: ignore[no-untyped-def]
    import uuid

    folder = tmp_path_factory.mktemp("specs")
    paths, specs, oracle = [], [], {}
    for _ in range(2):
        path = write_spec(folder, uuid.uuid4().hex[:8])
        spec = load_spec(path)
        create_orders(spark, spec.source.table, ROWS)
        expected, dlq = expected_from_hive(spark, spec.source.table)
        oracle[spec.name] = {"rows": ROWS, "written": len(expected), "dead": Counter(dlq.values()),
                             "filtered": ROWS - len(expected) - len(dlq)}  # fmt: skip
        paths.append(path)
        specs.append(spec)
    out, err = folder / "run.out", folder / "run.err"
    proc = subprocess.Popen(
        [sys.executable, "-m", "headwater.cli", "run", str(folder), "--ui-port", "0"], stdout=out.open("w"),
        stderr=err.open("w"), stdin=subprocess.DEVNULL, text=True, start_new_session=True,
    )  # fmt: skip
    run = Running(proc, specs, paths, out, err, oracle)
    try:
        wait_for("both pipelines drained and idle", lambda: _settled(run), 420, proc, every=1)
        yield run
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=120)


def _scrape(url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    text = urllib.request.urlopen(url, timeout=10).read().decode()
    return {(s.name, frozenset(s.labels.items())): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}  # fmt: skip


def _value(m: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    hits = [v for (n, ls), v in m.items() if n == name and set(labels.items()) <= ls]
    assert len(hits) == 1, (name, labels, hits)
    return hits[0]


def test_metrics_match_the_oracle(running: Running) -> None:
    for spec in running.specs:
        want = running.oracle[spec.name]
        ingest = _scrape(running.progress(spec, "ingest")["metrics_url"])
        process = _scrape(running.progress(spec, "process")["metrics_url"])
        assert _value(ingest, "headwater_records_read_total", pipeline=spec.name) == want["rows"]
        assert _value(ingest, "headwater_records_produced_total", pipeline=spec.name) == want["rows"]
        assert _value(ingest, "headwater_stage_state", pipeline=spec.name, state="idle") == 1
        assert _value(process, "headwater_records_consumed_total", pipeline=spec.name) == want["rows"]
        assert _value(process, "headwater_records_written_total", pipeline=spec.name, sink="hbase") == want["written"]
        assert _value(process, "headwater_records_filtered_total", pipeline=spec.name) == want["filtered"]
        reasons = {dict(ls)["reason"]: v for (n, ls), v in process.items() if n == "headwater_dead_letters_total"}
        assert reasons == want["dead"]
        assert sum(v for (n, ls), v in process.items() if n == "headwater_consumer_lag_records") == 0
        decoded = want["rows"] - sum(want["dead"].values())  # every record that decoded, filtered ones too
        for leg in ("kafka_to_batch", "batch_to_sink", "end_to_end"):
            assert _value(process, "headwater_latency_seconds_count", pipeline=spec.name, leg=leg) == decoded
        assert _value(ingest, "headwater_latency_seconds_count", leg="source_to_kafka") == want["rows"]
        assert _value(process, "headwater_microbatch_duration_seconds_count", pipeline=spec.name) >= 1
        assert _value(ingest, "headwater_ingest_poll_duration_seconds_count", pipeline=spec.name) >= 1


def test_status_json_and_table(running: Running) -> None:
    out = run_cli("status", *map(str, running.paths), "--json")
    assert out.returncode == 0, out.stderr
    views = {v["name"]: v for v in json.loads(out.stdout)["pipelines"]}
    for spec in running.specs:
        p = views[spec.name]["stages"]["process"]
        assert p["state"] == "running" and p["records_out"] == running.oracle[spec.name]["written"]
        assert p["dead_letters"] == running.oracle[spec.name]["dead"] and p["lag"] == 0
        assert views[spec.name]["graph"]["topic"] == spec.topic.name
    table = run_cli("status")  # all pipelines of this stack home
    assert table.returncode == 0 and all(s.name in table.stdout for s in running.specs), table.stdout


def test_terminal_shows_plain_lines_and_no_chatter(running: Running) -> None:
    err = running.err.read_text()
    assert "dashboard: http://127.0.0.1:" in err
    assert f"{running.specs[0].name}: ingest[" in err and "\x1b[" not in err  # no terminal: plain lines
    for noise in ("NativeCodeLoader", "log4j", "SparkContext", "%4|", "%3|", "Traceback"):
        assert noise not in err, noise
    logs = run_cli("logs", str(running.paths[0]), "--stage", "process", "-n", "400")
    assert logs.returncode == 0 and "batch" in logs.stdout, logs.stderr  # the stage's own log, Spark included


def test_dashboard_in_a_headless_browser(running: Running) -> None:
    from browser import Browser

    url = running.err.read_text().split("dashboard: ", 1)[1].split()[0]
    metrics = {s.name: _scrape(running.progress(s, "process")["metrics_url"]) for s in running.specs}
    browser = Browser()
    try:
        browser.goto(url)
        browser.wait_for("document.getElementById('status')?.dataset.ready === 'true'")
        browser.wait_for("document.querySelectorAll('[data-pipeline]').length === 2")
        shown = browser.evaluate(
            "Object.fromEntries([...document.querySelectorAll('[data-metric]')].map(e => [e.dataset.metric, e.dataset.value]))"
        )
        nodes = browser.evaluate("[...document.querySelectorAll('[data-node]')].map(e => e.dataset.node)")
        shot = browser.screenshot(ARTIFACTS / "dashboard.png")
        assert browser.errors == [], browser.errors
    finally:
        browser.close()
    for spec in running.specs:
        m, p = metrics[spec.name], spec.name
        assert float(shown[f"{p}.process.records_out"]) == _value(m, "headwater_records_written_total", pipeline=p)
        assert float(shown[f"{p}.process.records_in"]) == _value(m, "headwater_records_consumed_total", pipeline=p)
        assert float(shown[f"{p}.process.lag"]) == 0
        assert shown[f"{p}.process.state"] == "running"
        for reason, n in running.oracle[p]["dead"].items():
            assert float(shown[f"{p}.dead_letters.{reason}"]) == n
        assert shown[f"{p}.latency.end_to_end.p50"] != "" and shown[f"{p}.freshness_s"] != ""
    assert {"source", "topic", "sink0", "dead_letter"} <= set(nodes)
    assert shot.stat().st_size > 10_000


def test_stop_one_then_ctrl_c(running: Running) -> None:
    first, second = running.specs
    out = run_cli("stop", str(running.paths[1]))
    assert out.returncode == 0 and f"{second.name}: stopped" in out.stdout, out.stdout + out.stderr
    assert running.progress(second, "process")["state"] == "stopped"
    assert running.proc.poll() is None  # the other pipeline goes on
    os.killpg(running.proc.pid, signal.SIGINT)  # Ctrl-C on the terminal of `headwater run`
    assert running.proc.wait(timeout=180) == 130
    err = running.err.read_text()
    assert "Traceback" not in err and "Aborted!" not in err, err[-3000:]
    assert running.progress(first, "process")["state"] == "stopped"
    assert f"pipeline '{first.name}' summary:" in running.out.read_text()
