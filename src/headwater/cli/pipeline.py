"""Pipeline commands: ``validate``, ``schema``, ``plugins``, ``run``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import click

from headwater import plugins
from headwater.errors import HeadwaterError


def _setup_logging(verbose: bool = False, log_format: str = "text") -> None:
    from headwater.observability.logs import setup_logging

    setup_logging(verbose or bool(os.environ.get("HEADWATER_VERBOSE")), log_format)


@click.command()
@click.argument("spec", type=click.Path(dir_okay=False))
def validate(spec: str) -> None:
    """Check a pipeline spec; exit 0, or 2 with every problem (file, path, value)."""
    from headwater.spec import load_spec

    s = load_spec(spec)
    click.echo(f"{spec}: ok (pipeline '{s.name}': {s.source.type} -> {s.topic.name} -> "
               f"{len(s.transforms)} transform(s) -> {s.sink.type})")  # fmt: skip


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
@click.argument("specs", nargs=-1, required=True, type=click.Path())
@click.option("--stage", type=click.Choice(["ingest", "process", "all"]), default="all", show_default=True)
@click.option("--until-drained", is_flag=True, help="Exit 0 once the source has nothing new and all of it is stored.")
@click.option("--wait-for-ingest", is_flag=True, hidden=True, help="(process) drain only after ingest drained.")
@click.option(
    "--ui-port",
    type=click.IntRange(0, 65535),
    default=0,
    show_default=True,
    help="Port of the dashboard served while the pipelines run (0: any free port).",
)
@click.option("--no-ui", is_flag=True, help="Serve no dashboard.")
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="Format of the stage logs (json: one object per line).",
)
@click.option("-v", "--verbose", is_flag=True, help="Show the stage logs (Spark, JVM, librdkafka) on the terminal too.")
def run(specs: tuple[str, ...], stage: str, until_drained: bool, wait_for_ingest: bool, ui_port: int, no_ui: bool,
        log_format: str, verbose: bool) -> None:  # fmt: skip
    """Run pipelines: each one's ingest and process as separate processes (``all``), or one stage here.

    SPECS are spec files or folders of them (``*.yaml``); several run side by side with one display.
    """
    from headwater.context import PipelineContext
    from headwater.observability.summary import render, summarize
    from headwater.spec import load_spec

    paths = expand_specs(specs)
    _setup_logging(verbose, log_format)
    if stage == "all":
        from headwater import kafka

        loaded = [load_spec(p) for p in paths]  # a spec with errors starts nothing
        for s in loaded:
            kafka.check_reachable(s.connections.kafka)
            if PipelineContext(s).source.needs_ingest:
                t = s.topic  # created here so the process stage can subscribe while ingest starts up
                kafka.ensure_topic(
                    s.connections.kafka, t.name, t.partitions, t.replication, t.config, field="topic.replication"
                )
        code = _run_all(paths, [PipelineContext(s) for s in loaded], until_drained, verbose, log_format,
                        None if no_ui else ui_port)  # fmt: skip
        sys.exit(code)
    if len(paths) != 1:
        raise click.UsageError(f"--stage {stage} runs one spec; got {len(paths)}")
    s = load_spec(paths[0])
    ctx = PipelineContext(s)
    if stage == "ingest" and not ctx.source.needs_ingest:
        raise HeadwaterError(f"source: {ctx.source.describe()} needs no ingest stage; run --stage process")
    runner = _stage(ctx, stage)
    from headwater.observability.metrics import start_for_stage

    start_for_stage(runner.progress, s.name, s.metrics.host, s.metrics.port(stage))
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


def expand_specs(specs: tuple[str, ...] | list[str]) -> list[str]:
    """Spec files, with each folder among ``specs`` replaced by its ``*.yaml``/``*.yml`` files (sorted)."""
    out: list[str] = []
    for item in specs:
        path = Path(item)
        if path.is_dir():
            found = sorted([*path.glob("*.yaml"), *path.glob("*.yml")])
            if not found:
                raise click.UsageError(f"{item}: a folder with no *.yaml spec")
            out.extend(str(f) for f in found)
        else:
            out.append(item)
    return out


def _stage(ctx, stage: str):  # type: ignore[no-untyped-def]
    if stage == "ingest":
        from headwater.ingest.runner import IngestStage

        return IngestStage(ctx)
    from headwater.streaming.process import ProcessStage

    return ProcessStage(ctx)


def _run_all(paths: list[str], contexts: list[Any], until_drained: bool, verbose: bool, log_format: str,
             ui_port: int | None) -> int:  # fmt: skip
    """Start both stages of each pipeline as child processes, show them live, stop them on Ctrl-C or SIGTERM.

    The stages run in sessions of their own: a Ctrl-C on the terminal reaches this process only, which
    stops them cleanly (SIGTERM: they finish the batch in flight). Their output (Spark, JVM,
    librdkafka) goes to a log file per stage (``headwater logs``); ``--verbose`` shows it here too.
    """
    from rich.console import Console

    from headwater.cli.display import Display
    from headwater.cli.ops import LogTail

    homes = [c.home for c in contexts]
    for home in homes:
        for f in ("ingest.progress.json", "process.progress.json"):
            (home / f).unlink(missing_ok=True)
    extra = (["--until-drained"] if until_drained else []) + (["-v"] if verbose else [])
    extra += ["--log-format", log_format]
    procs: dict[tuple[str, str], subprocess.Popen[bytes]] = {}
    for path, ctx in zip(paths, contexts, strict=True):
        base = [sys.executable, "-m", "headwater.cli", "run", path]
        stages = ["ingest", "process"] if ctx.source.needs_ingest else ["process"]
        for name in stages:
            flags = ["--wait-for-ingest"] if name == "process" and "ingest" in stages else []
            log = (ctx.home / f"{name}.log").open("ab")
            procs[(ctx.spec.name, name)] = subprocess.Popen([*base, "--stage", name, *extra, *flags], stdout=log,
                                                            stderr=log, start_new_session=True)  # fmt: skip
        (ctx.home / "run.json").write_text(json.dumps({"pid": os.getpid(), "spec": str(Path(path).resolve()),
                                                       "started_at": time.time()}))  # fmt: skip
    stopping = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        stopping.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    display = Display(homes, Console(stderr=True), Console(),
                      without_ingest={c.home for c in contexts if not c.source.needs_ingest})  # fmt: skip
    tails = [LogTail(c.home / f"{n}.log", f"{c.spec.name}/{n}") for c in contexts for n in ("ingest", "process")]
    dashboard = None
    failure: HeadwaterError | None = None
    with display:
        for ctx in contexts:
            pids = ", ".join(f"{n} pid {p.pid}" for (name, n), p in procs.items() if name == ctx.spec.name)
            display.echo(f"{ctx.spec.name}: {pids}; logs: headwater logs {ctx.spec.name} (in {ctx.home})")
        if ui_port is not None:
            from headwater.ui.server import Dashboard

            dashboard = Dashboard([(c.home, c.spec) for c in contexts])
            display.echo(f"dashboard: {dashboard.start('127.0.0.1', ui_port)}")
        try:
            while any(p.poll() is None for p in procs.values()) and not stopping.wait(0.5):
                display.tick()
                if verbose:
                    for tail in tails:
                        for line in tail.new_lines():
                            display.echo(line)
                failed = [k for k, p in procs.items() if p.poll() not in (None, 0)]
                if failed:
                    (name, stage) = failed[0]
                    home = next(c.home for c in contexts if c.spec.name == name)
                    failure = _stage_failed(stage, procs[failed[0]].returncode, home)
                    break
            if stopping.is_set():
                display.echo("stopping (the batch in flight finishes first) ...")
        finally:
            for p in procs.values():
                if p.poll() is None:
                    p.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + 90
            while any(p.poll() is None for p in procs.values()) and time.monotonic() < deadline:
                display.tick()
                time.sleep(0.2)
            for p in procs.values():
                if p.poll() is None:
                    p.kill()
                    p.wait()
            for ctx in contexts:
                (ctx.home / "run.json").unlink(missing_ok=True)
    if dashboard is not None:
        dashboard.close()
    display.summary()
    if failure is not None:
        raise failure
    return 130 if stopping.is_set() else 0


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


@click.command()
@click.argument("spec", type=click.Path(dir_okay=False, exists=True))
@click.option("--stage", type=click.Choice(["ingest", "process"]), default="process", show_default=True)
@click.option("--master", required=True, help="yarn, spark://host:7077 or k8s://https://host:port.")
@click.option("--deploy-mode", type=click.Choice(["client", "cluster"]), default="cluster", show_default=True)
@click.option("--wait", is_flag=True, help="Follow the application until it ends; exit with its result.")
@click.option("--dry-run", is_flag=True, help="Print the spark-submit command line and submit nothing.")
def submit(spec: str, stage: str, master: str, deploy_mode: str, wait: bool, dry_run: bool) -> None:
    """Submit one stage of SPEC to a cluster with spark-submit; print the application id.

    The stage runs until drained, as ``headwater run SPEC --stage STAGE --until-drained`` would.
    """
    import shlex

    from headwater import submit as submitting
    from headwater.context import PipelineContext
    from headwater.spec import load_spec

    sub = submitting.build(spec, stage=stage, master=master, deploy_mode=deploy_mode, wait=wait)
    if dry_run:
        click.echo(shlex.join(sub.argv))
        return
    log = PipelineContext(load_spec(spec)).home / f"submit-{stage}.log"
    app_id, code = submitting.run(sub, log, wait=wait)
    click.echo(app_id)
    click.echo(f"spark-submit log: {log}", err=True)
    if wait and code:
        raise HeadwaterError(f"application {app_id} failed (spark-submit exit {code}); log: {log}")


COMMANDS.append(submit)
