"""The terminal display of ``headwater run``: a live table (rich) on a terminal, plain lines elsewhere."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from rich.console import Console, Group
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeRemainingColumn
from rich.table import Table

from headwater.observability.summary import render, summarize
from headwater.observability.view import pipeline_view

STATE_STYLE = {"running": "green", "idle": "green", "producing": "cyan", "drained": "bold green",
               "retrying": "yellow", "failed": "bold red", "dead": "bold red", "stopped": "dim"}  # fmt: skip


def _n(v: Any) -> str:
    return "-" if v is None else f"{v:,.0f}" if isinstance(v, int | float) else str(v)


def _ms(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v / 1000:,.1f} s" if v >= 10_000 else f"{v:,.0f} ms"


def stage_table(views: list[dict[str, Any]]) -> Table:
    """One row per stage of each pipeline: state, counters, rate, lag, latency."""
    table = Table(box=None, pad_edge=False, header_style="bold")
    for col, justify in (("pipeline", "left"), ("stage", "left"), ("state", "left"), ("in", "right"),
                         ("out", "right"), ("dead letters", "right"), ("rate/s", "right"), ("lag", "right"),
                         ("latency p50", "right"), ("p99", "right")):  # fmt: skip
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for v in views:
        for name, s in v["stages"].items():
            if name == "ingest" and not has_ingest(v):
                continue
            leg = s.get("latency", {}).get("end_to_end" if name == "process" else "source_to_kafka", {})
            state = s["state"]
            table.add_row(
                v["name"], name, f"[{STATE_STYLE.get(state, '')}]{state}[/]" if STATE_STYLE.get(state) else state,
                _n(s.get("records_in")), _n(s.get("records_out")), _n(s.get("dead_lettered")),
                _n(s.get("input_rate") if name == "process" and s.get("input_rate") else s.get("rate")),
                _n(s.get("lag")) if name == "process" else "", _ms(leg.get("p50")), _ms(leg.get("p99")),
            )  # fmt: skip
    return table


def has_ingest(v: dict[str, Any]) -> bool:
    """Whether a pipeline view shows an ingest stage (not for a source that needs none: ``no_ingest``)."""
    return not v.get("no_ingest")


class Backlog:
    """A progress bar per pipeline while a backlog (consumer lag) is worked off, with an ETA."""

    def __init__(self) -> None:
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                                 TextColumn("{task.completed:,.0f}/{task.total:,.0f}"), TimeRemainingColumn())  # fmt: skip
        self.tasks: dict[str, TaskID] = {}

    def update(self, views: list[dict[str, Any]]) -> bool:
        """Refresh the bars; True while any pipeline has a backlog."""
        busy = False
        for v in views:
            p, i = v["stages"]["process"], v["stages"]["ingest"]
            lag = p.get("lag") or 0
            working = lag > 0 or i.get("state") in ("preparing", "producing")
            done = p.get("records_in") or 0
            if v["name"] not in self.tasks:
                self.tasks[v["name"]] = self.progress.add_task(f"{v['name']} backlog", total=None)
            self.progress.update(self.tasks[v["name"]], completed=done, total=done + lag if working else done,
                                 visible=working)  # fmt: skip
            busy = busy or working
        return busy


def plain_line(v: dict[str, Any]) -> str:
    """One line per pipeline for a log or a pipe."""
    i, p = v["stages"]["ingest"], v["stages"]["process"]
    e2e = p.get("latency", {}).get("end_to_end", {})
    ingest = (f"ingest[{i['state']}] read {_n(i.get('records_in'))} produced {_n(i.get('records_out'))} | "
              if has_ingest(v) else "")  # fmt: skip
    return (
        f"{v['name']}: {ingest}"
        f"process[{p['state']}] in {_n(p.get('records_in'))} written {_n(p.get('records_out'))} "
        f"dead-lettered {_n(p.get('dead_lettered'))} lag {_n(p.get('lag'))} p50 {_ms(e2e.get('p50'))}"
    )


INGEST_ROWS = ("rows read from source", "records produced to Kafka", "ingest throughput")


def summary_table(home: Path, ingest: bool = True) -> Table:
    """The run summary of one pipeline as a table (``ingest`` False: a source with no ingest stage)."""
    s = summarize(home)
    legs = pipeline_view(home)["stages"]
    table = Table(title=f"pipeline '{home.name}' summary", box=None, header_style="bold", title_justify="left")
    table.add_column("")
    table.add_column("value", justify="right")
    for label, value in (("rows read from source", _n(s["rows_read"])),
                         ("records produced to Kafka", _n(s["records_produced"])),
                         ("records consumed", _n(s["rows_in"])), ("rows written to the sink", _n(s["rows_written"])),
                         ("deduplicated in batch", _n(s["rows_deduped"])), ("filtered by transforms", _n(s["filtered"])),
                         ("dead-lettered", _n(s["dead_lettered"])),
                         ("ingest throughput", f"{_n(s['ingest_rows_per_s'])} rows/s"),
                         ("process throughput", f"{_n(s['process_rows_per_s'])} rows/s ({s['batches']} micro-batches)")):  # fmt: skip
        if ingest or label not in INGEST_ROWS:
            table.add_row(label, value)
    for stage in ("ingest", "process"):
        for leg, p in sorted(legs[stage].get("latency", {}).items()):
            table.add_row(f"latency {leg} p50 / p95 / p99", f"{_ms(p['p50'])} / {_ms(p['p95'])} / {_ms(p['p99'])}")
    return table


class Display:
    """Shows the pipelines in ``homes`` while they run, on ``console`` (a terminal: live; else lines)."""

    def __init__(self, homes: list[Path], console: Console, out: Console | None = None, interval: float = 2.0,
                 without_ingest: set[Path] | None = None) -> None:  # fmt: skip
        """``without_ingest``: the homes of pipelines whose source needs no ingest stage (no ingest row)."""
        self.homes = homes
        self.without_ingest = without_ingest or set()
        self.console = console
        self.out = out or console
        self.interval = interval
        self.backlog = Backlog()
        self._live: Any = None
        self._last_plain = 0.0
        self._last_lines: list[str] = []

    def views(self) -> list[dict[str, Any]]:
        return [{**pipeline_view(h), "no_ingest": h in self.without_ingest} for h in self.homes]

    def renderable(self) -> Group:
        views = self.views()
        parts: list[Any] = [stage_table(views)]
        if self.backlog.update(views):
            parts.append(self.backlog.progress)
        return Group(*parts)

    def __enter__(self) -> Display:
        if self.console.is_terminal:
            from rich.live import Live

            self._live = Live(self.renderable(), console=self.console, refresh_per_second=2, transient=False)
            self._live.__enter__()
        return self

    def tick(self) -> None:
        """Refresh: the live table, or plain lines when they changed (at most every ``interval`` s)."""
        if self._live is not None:
            self._live.update(self.renderable())
            return
        now = time.monotonic()
        if now - self._last_plain < self.interval:
            return
        self._last_plain = now
        lines = [plain_line(v) for v in self.views()]
        if lines != self._last_lines:
            for line in lines:
                self.console.print(line, highlight=False, markup=False, soft_wrap=True)
            self._last_lines = lines

    def echo(self, text: str) -> None:
        """A line of headwater's own above the display."""
        self.console.print(text, highlight=False, markup=False, soft_wrap=True)

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.update(self.renderable())
            self._live.__exit__(None, None, None)
            self._live = None

    def summary(self) -> None:
        """The summary of each pipeline: a table on a terminal, the plain text block elsewhere."""
        for home in self.homes:
            if self.out.is_terminal:
                self.out.print(summary_table(home, ingest=home not in self.without_ingest))
            else:
                self.out.print(f"\npipeline '{home.name}' summary:\n{render(summarize(home))}", highlight=False,
                                   markup=False, soft_wrap=True)  # fmt: skip
