"""``headwater stack up | down | status | logs``: the embedded local stack."""

from __future__ import annotations

import json
import sys
import time

import click

from headwater.stack import Stack, StackConfig


def _stack() -> Stack:
    return Stack(StackConfig.from_env())


@click.group()
def stack() -> None:
    """Run the local stack (Kafka, HBase + Thrift, Hive metastore). Settings: HEADWATER_* variables."""


@stack.command()
@click.option(
    "--profile",
    type=click.Choice(["local", "cluster"]),
    default=None,
    help="local (default): one process per service. cluster: also a Spark standalone cluster, three Kafka "
    "brokers and Hadoop (HDFS + YARN). Remembered: later commands use the profile the stack was started with.",
)
def up(profile: str | None) -> None:
    """Start every service not running yet and wait until each answers its protocol."""
    s = Stack(StackConfig.from_env(profile=profile)) if profile else _stack()
    s.record_profile()
    timings = s.up(progress=lambda m: click.echo(m, err=True))
    click.echo(f"stack ready in {timings['total']:.1f}s (home {s.config.root})")


@stack.command()
@click.option("--purge", is_flag=True, help="Also delete all state (topics, tables, metastore).")
def down(purge: bool) -> None:
    """Stop the stack's processes (gracefully, then forcibly). Committed data is kept unless --purge."""
    s = _stack()
    t0 = time.monotonic()
    s.down(purge=purge, progress=click.echo)
    click.echo(f"stack down in {time.monotonic() - t0:.1f}s")


@stack.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def status(as_json: bool) -> None:
    """Each service's state, pid, address and resident memory. Exit 1 unless all are running."""
    rows = _stack().status()
    if as_json:
        click.echo(
            json.dumps(
                {"services": [r.as_dict() for r in rows], "healthy": all(r.state == "running" for r in rows)}, indent=2
            )
        )
    else:
        click.echo(f"{'service':<13} {'state':<10} {'pid':>7} {'address':<18} {'rss MiB':>8}  log")
        for r in rows:
            rss = f"{r.rss_mb:.0f}" if r.rss_mb is not None else "-"
            click.echo(f"{r.name:<13} {r.state:<10} {r.pid or '-':>7} {r.address:<18} {rss:>8}  {r.log}")
    sys.exit(0 if all(r.state == "running" for r in rows) else 1)


@stack.command()
@click.argument("service")
@click.option("-n", "--lines", default=50, show_default=True, help="How many lines from the end.")
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines.")
def logs(service: str, lines: int, follow: bool) -> None:
    """Show a service's log (metastore, hbase, kafka, hbase-thrift, hbase-thrift2)."""
    svc = _stack().service(service)
    if not svc.log.exists():
        click.echo(f"no log yet: {svc.log}", err=True)
        sys.exit(1)
    with svc.log.open(errors="replace") as fh:
        for line in fh.readlines()[-lines:]:
            click.echo(line, nl=False)
        while follow:
            line = fh.readline()
            if line:
                click.echo(line, nl=False)
            else:
                time.sleep(0.5)


@stack.command()
def fetch() -> None:
    """Fetch the JVM jars with mvn into the cache folder (nothing is downloaded when they are current)."""
    from headwater.stack import jars

    cfg = StackConfig.from_env()
    for component in jars.COMPONENTS:
        fresh = jars.is_fetched(cfg, component)
        lib = jars.fetch(cfg, component)
        n = len(list(lib.glob("*.jar")))
        click.echo(f"{component:<12} {n:>4} jars  {'cached' if fresh else 'fetched'}  {lib}")
