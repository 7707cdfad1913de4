"""Metrics, the terminal display, JSON logs and the dashboard server, over real progress files (no JVM)."""

from __future__ import annotations

import io
import json
import logging
import os
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console

from headwater.cli.display import Display, plain_line, stage_table
from headwater.observability.logs import JsonFormatter
from headwater.observability.metrics import METRICS, MetricsServer
from headwater.observability.progress import ProgressFile
from headwater.observability.view import pipeline_view
from headwater.ui.server import Dashboard


def _process_progress(home: Path) -> ProgressFile:
    """A process stage's progress file as the stage leaves it after two micro-batches."""
    p = ProgressFile(home / "process.progress.json", "process")
    p.set(state="running", topic="t.orders", sink="hbase", lag=7, lag_partitions={0: 3, 1: 4})
    p.add(rows_in=100, rows_written=90, rows_deduped=2, filtered=4, dead_lettered=6, write_calls=3,
          write_retries=1, busy_seconds=2.0, batches=2, expectation_positive_failed=2)  # fmt: skip
    p.add(**{"dead_letter.malformed_json": 4, "dead_letter.expectation_failed": 2})
    for v in (5, 40, 40, 300):
        p.observe("latency.end_to_end", v, 20)
    p.observe("latency.kafka_to_batch", 12, 90)
    p.observe("batch", 800)
    p.observe("batch", 1200)
    p.flush()
    return p


class _Samples(dict):  # type: ignore[type-arg]
    """Scraped samples by (name, labels); labels are looked up in any order."""

    def __getitem__(self, key: tuple[str, tuple[tuple[str, str], ...]]) -> float:
        return super().__getitem__((key[0], tuple(sorted(key[1]))))  # type: ignore[no-any-return]


def _scrape(url: str) -> _Samples:
    text = urllib.request.urlopen(url, timeout=10).read().decode()
    out = _Samples()
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_metrics_endpoint_shows_the_progress_file(tmp_path: Path) -> None:
    p = _process_progress(tmp_path)
    server = MetricsServer(p, "orders", port=0)
    try:
        m = _scrape(server.url)
    finally:
        server.close()
    base = (("pipeline", "orders"), ("stage", "process"))
    assert m[("headwater_records_consumed_total", base)] == 100
    assert m[("headwater_records_written_total", (*base, ("sink", "hbase")))] == 90
    assert m[("headwater_records_filtered_total", base)] == 4
    assert m[("headwater_sink_write_retries_total", (*base, ("sink", "hbase")))] == 1
    reasons = {dict(k[1])["reason"]: v for k, v in m.items() if k[0] == "headwater_dead_letters_total"}
    assert reasons == {"malformed_json": 4, "expectation_failed": 2}  # sums to the 6 dead-lettered
    assert m[("headwater_expectation_failures_total", (*base, ("rule", "positive")))] == 2
    assert m[("headwater_consumer_lag_records", (*base, ("partition", "1"), ("topic", "t.orders")))] == 4
    assert m[("headwater_stage_state", (*base, ("state", "running")))] == 1
    assert m[("headwater_stage_state", (*base, ("state", "failed")))] == 0
    e2e = (*base, ("leg", "end_to_end"), ("sink", ""))
    assert m[("headwater_latency_seconds_count", e2e)] == 80
    assert m[("headwater_latency_seconds_sum", e2e)] == (5 + 40 + 40 + 300) * 20 / 1000
    assert m[("headwater_latency_seconds_bucket", (*e2e, ("le", "0.05")))] == 60  # 5, 40, 40 ms
    assert m[("headwater_microbatch_duration_seconds_count", base)] == 2
    names = {k[0] for k in m}
    assert {n for n in METRICS if n + "_bucket" in names or n in names} >= {
        "headwater_records_consumed_total", "headwater_dead_letters_total", "headwater_latency_seconds",
        "headwater_consumer_lag_records", "headwater_stage_state",
    }  # fmt: skip


def test_dead_letters_without_a_reason_are_unclassified(tmp_path: Path) -> None:
    p = ProgressFile(tmp_path / "process.progress.json", "process")
    p.add(dead_lettered=5, **{"dead_letter.malformed_json": 2})
    server = MetricsServer(p, "x", port=0)
    try:
        m = _scrape(server.url)
    finally:
        server.close()
    reasons = {dict(k[1])["reason"]: v for k, v in m.items() if k[0] == "headwater_dead_letters_total"}
    assert reasons == {"malformed_json": 2, "unclassified": 3}


def test_view_and_plain_line(tmp_path: Path) -> None:
    home = tmp_path / "orders"
    _process_progress(home)
    v = pipeline_view(home)
    p = v["stages"]["process"]
    assert p["state"] == "running" and p["records_in"] == 100 and p["records_out"] == 90  # our own pid: alive
    assert p["dead_letters"] == {"malformed_json": 4, "expectation_failed": 2}
    assert p["latency"]["end_to_end"]["p50"] is not None and v["stages"]["ingest"]["state"] == "not started"
    line = plain_line(v)
    assert "process[running] in 100 written 90 dead-lettered 6 lag 7" in line


def test_dead_stage_is_shown_as_dead(tmp_path: Path) -> None:
    p = _process_progress(tmp_path)
    p.set(pid=2**22 + 12345)  # no such process
    p.flush()
    assert pipeline_view(tmp_path)["stages"]["process"]["state"] == "dead"


def test_rich_table_and_display(tmp_path: Path) -> None:
    home = tmp_path / "orders"
    _process_progress(home)
    console = Console(record=True, force_terminal=True, width=140)
    with Display([home], console, Console(file=io.StringIO())) as d:
        d.tick()
    text = console.export_text()
    assert "pipeline" in text and "latency p50" in text
    assert "orders" in text and "running" in text and "100" in text and "90" in text
    assert "backlog" in text  # lag 7: the progress bar with its ETA is shown
    out = Console(record=True, width=140)
    out.print(stage_table([pipeline_view(home)]))
    assert "not started" in out.export_text()


def test_display_of_a_pipeline_without_ingest_has_no_ingest_rows(tmp_path: Path) -> None:
    """A Kafka source (no ingest stage): no ingest row, no ingest figures in the summary or the plain line."""
    home = tmp_path / "clicks"
    _process_progress(home)
    console, out = Console(record=True, force_terminal=True, width=140), Console(record=True, force_terminal=True)
    with Display([home], console, out, without_ingest={home}) as d:
        d.tick()
    d.summary()
    text, summary = console.export_text(), out.export_text()
    assert "process" in text and "running" in text and "ingest" not in text and "not started" not in text
    assert "records consumed" in summary and "rows read from source" not in summary and "ingest" not in summary
    buf = io.StringIO()
    with Display([home], Console(file=buf), interval=0, without_ingest={home}) as d:
        d.tick()
    assert buf.getvalue().startswith("clicks: process[running] in 100 written 90") and "ingest" not in buf.getvalue()


def test_display_without_a_terminal_prints_plain_lines(tmp_path: Path) -> None:
    home = tmp_path / "orders"
    _process_progress(home)
    buf, summary = io.StringIO(), io.StringIO()
    with Display([home], Console(file=buf), Console(file=summary), interval=0) as d:
        d.tick()
        d.tick()  # unchanged: not printed again
    d.summary()
    assert buf.getvalue().splitlines() == [plain_line(pipeline_view(home))]
    assert "\x1b[" not in buf.getvalue()
    assert "pipeline 'orders' summary:" in summary.getvalue() and "records consumed" in summary.getvalue()


def test_json_log_lines_mask_secrets() -> None:
    record = logging.LogRecord("headwater.x", logging.INFO, __file__, 1, "sasl.password=%s ok", ("hunter2",), None)
    out = json.loads(JsonFormatter().format(record))
    assert out["level"] == "INFO" and out["logger"] == "headwater.x" and out["message"].endswith(" ok")


def test_dashboard_serves_its_assets_and_state(tmp_path: Path) -> None:
    home = tmp_path / "orders"
    _process_progress(home)
    d = Dashboard([(home, None)])
    url = d.start("127.0.0.1", 0)
    try:
        d.sample()
        page = urllib.request.urlopen(url, timeout=10).read().decode()
        assert '<script src="/app.js">' in page and "http" not in page.split("<body>")[1]  # no CDN
        for asset in ("app.js", "app.css"):
            assert urllib.request.urlopen(url + asset, timeout=10).status == 200
        state = json.loads(urllib.request.urlopen(url + "api/state", timeout=10).read())
        (v,) = state["pipelines"]
        assert v["name"] == "orders" and v["stages"]["process"]["records_out"] == 90
        assert v["history"][-1]["written"] == 90 and v["history"][-1]["lag"] == 7
    finally:
        d.close()
    assert os.getpid()
