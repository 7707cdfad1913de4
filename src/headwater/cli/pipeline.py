"""Pipeline commands: ``validate``, ``schema``, ``plugins``, ``run``."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import click

from headwater import plugins
from headwater.errors import HeadwaterError


def _setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose or os.environ.get("HEADWATER_VERBOSE") else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr,
    )  # fmt: skip
    logging.getLogger("headwater").setLevel(logging.INFO)
    logging.getLogger("py4j").setLevel(logging.WARNING)


@click.command()
@click.argument("spec", type=click.Path(dir_okay=False))
def validate(spec: str) -> None:
    """Check a pipeline spec; exit 0, or 2 with every problem (file, path, value)."""
    from headwater.spec import load_spec

    s = load_spec(spec)
    click.echo(f"{spec}: ok (pipeline '{s.name}': {s.source.type} -> {s.topic.name} -> "
               f"{len(s.transforms)} transform(s) -> {' + '.join(x.type for x in s.sinks)})")  # fmt: skip


@click.command()
def schema() -> None:
    """Print the JSON Schema of pipeline specs (all registered plugins)."""
    from headwater.spec import spec_json_schema

    click.echo(json.dumps(spec_json_schema(), indent=2))


@click.command(name="plugins")
def plugins_cmd() -> None:
    """List the registered sources, transforms and sinks."""
    kinds: tuple[plugins.Kind, ...] = ("source", "transform", "sink")
    for kind in kinds:
        click.echo(f"{kind}s:")
        for name in plugins.names(kind):
            try:
                cls = plugins.get(kind, name)
                doc = (cls.__doc__ or "").strip().splitlines()[0]
            except HeadwaterError as exc:
                doc = f"(unavailable: {exc})"
            click.echo(f"  {name:<10} {doc}")


@click.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("--stage", type=click.Choice(["ingest", "process", "all"]), default="all", show_default=True)
@click.option("--until-drained", is_flag=True, help="Exit 0 once the source has nothing new and all of it is stored.")
@click.option("--wait-for-ingest", is_flag=True, hidden=True, help="(process) drain only after ingest drained.")
@click.option("-v", "--verbose", is_flag=True)
def run(spec: str, stage: str, until_drained: bool, wait_for_ingest: bool, verbose: bool) -> None:
    """Run a pipeline: ingest and process as separate processes (``all``), or one stage here."""
    from headwater.context import PipelineContext
    from headwater.observability.summary import render, summarize
    from headwater.spec import load_spec

    _setup_logging(verbose)
    s = load_spec(spec)  # a spec with errors starts nothing
    ctx = PipelineContext(s)
    if stage == "all":
        from headwater import kafka

        kafka.check_reachable(s.connections.kafka)
        stages = ["ingest", "process"] if ctx.source.needs_ingest else ["process"]
        if ctx.source.needs_ingest:
            t = s.topic  # created here so the process stage can subscribe while ingest starts up
            kafka.ensure_topic(s.connections.kafka, t.name, t.partitions, t.replication, t.config)
        code = _run_all(spec, ctx.home, until_drained, verbose, stages)
        click.echo(f"\npipeline '{s.name}' summary:\n{render(summarize(ctx.home))}")
        sys.exit(code)
    if stage == "ingest" and not ctx.source.needs_ingest:
        raise HeadwaterError(f"source: {ctx.source.describe()} needs no ingest stage; run --stage process")
    runner = _stage(ctx, stage)
    signal.signal(signal.SIGTERM, lambda *_: runner.stop_event.set())
    signal.signal(signal.SIGINT, lambda *_: runner.stop_event.set())
    if stage == "ingest":
        runner.run(until_drained=until_drained)
    else:
        ingest_file = ctx.progress_path("ingest")

        def upstream_done() -> bool:
            if not wait_for_ingest:
                return True
            data = json.loads(ingest_file.read_text()) if ingest_file.exists() else {}
            return data.get("state") == "drained"

        runner.run(until_drained=until_drained, upstream_done=upstream_done)
    if stage == "process" or until_drained:
        click.echo(render(summarize(ctx.home)), err=True)


def _stage(ctx, stage: str):  # type: ignore[no-untyped-def]
    if stage == "ingest":
        from headwater.ingest.runner import IngestStage

        return IngestStage(ctx)
    from headwater.streaming.process import ProcessStage

    return ProcessStage(ctx)


def _run_all(spec: str, home: Path, until_drained: bool, verbose: bool, stages: list[str]) -> int:
    """Start the stages as child processes, show live progress, stop them on Ctrl-C."""
    from headwater.observability.summary import progress_line

    for f in ("ingest.progress.json", "process.progress.json"):
        (home / f).unlink(missing_ok=True)
    base = [sys.executable, "-m", "headwater.cli", "run", spec]
    extra = (["--until-drained"] if until_drained else []) + (["-v"] if verbose else [])
    logs = {name: (home / f"{name}.log").open("ab") for name in stages}
    wait = ["--wait-for-ingest"] if "ingest" in stages else []
    procs = {
        name: subprocess.Popen([*base, "--stage", name, *extra, *(wait if name == "process" else [])],
                               stdout=logs[name], stderr=logs[name])
        for name in stages
    }  # fmt: skip
    pids = ", ".join(f"{name} pid {p.pid}" for name, p in procs.items())
    click.echo(f"{pids}; logs in {home}", err=True)
    interrupted = False
    try:
        while any(p.poll() is None for p in procs.values()):
            time.sleep(2)
            click.echo(progress_line(home), err=True)
            failed = [n for n, p in procs.items() if p.poll() not in (None, 0)]
            if failed:
                raise _stage_failed(failed[0], procs[failed[0]].returncode, home)
    except KeyboardInterrupt:
        interrupted = True
        click.echo("stopping (Ctrl-C) ...", err=True)
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs.values():
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()
    return 130 if interrupted else 0


def _stage_failed(stage: str, code: int, home: Path) -> HeadwaterError:
    """The error of a stage process that exited with ``code``: its own last error, and the same exit code."""
    from headwater.observability.progress import read_progress

    reason = (read_progress(home / f"{stage}.progress.json") or {}).get("last_error")
    error = HeadwaterError(
        f"stage {stage} exited with code {code}{f': {reason}' if reason else ''}; log: {home / (stage + '.log')}"
    )
    error.exit_code = code if code > 0 else 1
    return error


@click.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("--topics", is_flag=True, help="Also delete the pipeline's topic and dead-letter topic.")
@click.option("--table", is_flag=True, help="Also delete the sink table.")
@click.confirmation_option(prompt="Forget this pipeline's positions and checkpoint?")
def reset(spec: str, topics: bool, table: bool) -> None:
    """Forget a pipeline's progress (ingest position, checkpoint); optionally its topics and table."""
    from headwater.context import reset_pipeline
    from headwater.spec import load_spec

    for line in reset_pipeline(load_spec(spec), topics=topics, table=table):
        click.echo(line)


COMMANDS = [validate, schema, plugins_cmd, run, reset]
