"""Commands on pipelines started elsewhere: ``status``, ``stop``, ``logs``, and the dashboard (``ui``).

A pipeline is found through its folder under the stack home (``pipelines/<name>``): each stage's
progress file names its pid, state, counters and metrics address; each stage logs to
``<stage>.log`` beside it.
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from typing import Any

import click

from headwater.errors import HeadwaterError, NotFoundError


class LogTail:
    """New complete lines of a growing log file, prefixed (``--verbose`` runs, ``logs --follow``)."""

    def __init__(self, path: Path, prefix: str, from_start: bool = False) -> None:
        self.path = path
        self.prefix = prefix
        self.offset = 0 if from_start or not path.exists() else path.stat().st_size
        self._rest = b""

    def new_lines(self) -> list[str]:
        try:
            with self.path.open("rb") as f:
                if f.seek(0, 2) < self.offset:  # truncated: start over
                    self.offset = 0
                f.seek(self.offset)
                chunk = f.read()
        except OSError:
            return []
        self.offset += len(chunk)
        data = self._rest + chunk
        *lines, self._rest = data.split(b"\n")
        return [f"[{self.prefix}] {line.decode('utf-8', 'replace')}" for line in lines]


def pipelines_home() -> Path:
    """The folder holding one folder per pipeline."""
    from headwater.stack import StackConfig

    return StackConfig.from_env().root / "pipelines"


def resolve(specs: tuple[str, ...]) -> list[tuple[Path, Any]]:
    """(home, spec or None) of each pipeline named by ``specs``: spec files, folders of them, or names.

    With no ``specs``: every pipeline that has run on this stack home.
    """
    from headwater.cli.pipeline import expand_specs
    from headwater.spec import load_spec

    root = pipelines_home()
    if not specs:
        homes = sorted(p for p in root.glob("*") if p.is_dir() and any(p.glob("*.progress.json")))
        return [(h, None) for h in homes]
    out: list[tuple[Path, Any]] = []
    for item in specs:
        if Path(item).exists():
            for path in expand_specs([item]):
                s = load_spec(path)
                out.append((root / s.name, s))
        elif (root / item).is_dir():
            out.append((root / item, None))
        else:
            raise NotFoundError(f"{item}: no such spec file, folder or pipeline (pipelines under {root})")
    return out


@click.command()
@click.argument("specs", nargs=-1, type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def status(specs: tuple[str, ...], as_json: bool) -> None:
    """State, counters, lag, latency and metrics address of each stage (all pipelines without SPECS)."""
    from rich.console import Console

    from headwater.cli.display import stage_table
    from headwater.observability.view import pipeline_view

    views = [pipeline_view(home, spec) for home, spec in resolve(specs)]
    if as_json:
        click.echo(json.dumps({"pipelines": views}, indent=2, default=str))
        return
    if not views:
        click.echo(f"no pipelines under {pipelines_home()}")
        return
    console = Console(soft_wrap=True)
    console.print(stage_table(views))
    for v in views:
        for name, s in v["stages"].items():
            extra = [f"metrics {s['metrics_url']}" if s.get("metrics_url") and s.get("running") else "",
                     f"last error: {s['last_error']}" if s.get("last_error") else ""]  # fmt: skip
            if any(extra):
                console.print(f"{v['name']}/{name}: " + "; ".join(e for e in extra if e), highlight=False, markup=False)


@click.command()
@click.argument("specs", nargs=-1, required=True, type=click.Path())
@click.option("--timeout", type=float, default=120.0, show_default=True, help="Seconds to wait for a clean stop.")
def stop(specs: tuple[str, ...], timeout: float) -> None:
    """Stop a running pipeline's stages cleanly (SIGTERM: each finishes its batch in flight), and wait."""
    import os

    from headwater.observability.view import pid_alive, stage_pids

    for home, _ in resolve(specs):
        pids = stage_pids(home)
        if not pids:
            click.echo(f"{home.name}: not running")
            continue
        for stage, pid in pids.items():
            os.kill(pid, signal.SIGTERM)
            click.echo(f"{home.name}/{stage}: SIGTERM sent to pid {pid}")
        deadline = time.monotonic() + timeout
        while any(pid_alive(p) for p in pids.values()):
            if time.monotonic() > deadline:
                left = ", ".join(f"{s} (pid {p})" for s, p in pids.items() if pid_alive(p))
                raise HeadwaterError(f"{home.name}: still running after {timeout:.0f}s: {left}")
            time.sleep(0.2)
        from headwater.observability.view import stage_view

        states = ", ".join(f"{s} {stage_view(home, s)['state']}" for s in pids)
        click.echo(f"{home.name}: stopped ({states})")


@click.command()
@click.argument("spec", type=click.Path())
@click.option("--stage", type=click.Choice(["ingest", "process", "all"]), default="all", show_default=True)
@click.option("-n", "--lines", type=click.IntRange(min=0), default=50, show_default=True, help="Last lines shown.")
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines (Ctrl-C to end).")
def logs(spec: str, stage: str, lines: int, follow: bool) -> None:
    """Print a pipeline's stage logs (Spark, JVM and librdkafka output included)."""
    stages = ("ingest", "process") if stage == "all" else (stage,)
    for home, _ in resolve((spec,)):
        tails = []
        for name in stages:
            path = home / f"{name}.log"
            if not path.exists():
                click.echo(f"{home.name}/{name}: no log yet ({path})", err=True)
                continue
            text = path.read_bytes().decode("utf-8", "replace").splitlines()[-lines:] if lines else []
            for line in text:
                click.echo(f"[{home.name}/{name}] {line}" if len(stages) > 1 else line)
            tails.append(LogTail(path, f"{home.name}/{name}"))
        while follow:
            for tail in tails:
                for line in tail.new_lines():
                    click.echo(line)
            time.sleep(0.5)


@click.command()
@click.argument("specs", nargs=-1, type=click.Path())
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(0, 65535), default=8787, show_default=True, help="0: any free port.")
def ui(specs: tuple[str, ...], host: str, port: int) -> None:
    """Serve the live dashboard of pipelines (all that have run here without SPECS) until Ctrl-C."""
    from headwater.ui.server import Dashboard

    dashboard = Dashboard(resolve(specs), refresh_pipelines=not specs)
    click.echo(f"dashboard: {dashboard.start(host, port)}  (Ctrl-C to stop)")
    try:
        while True:
            time.sleep(3600)
    finally:
        dashboard.close()


COMMANDS = [status, stop, logs, ui]
