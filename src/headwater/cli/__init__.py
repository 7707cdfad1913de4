"""The ``headwater`` command line. One module per command group."""

from __future__ import annotations

import sys

import click

from headwater import __version__, redact
from headwater.errors import HeadwaterError


class _Group(click.Group):
    """Prints a HeadwaterError as one clear line (no traceback, secrets masked) and exits with its code."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except HeadwaterError as exc:
            click.echo(f"error: {redact.redact(str(exc))}", err=True)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:  # Ctrl-C: a quiet stop, no traceback and no "Aborted!"
            click.echo("interrupted", err=True)
            sys.exit(130)


@click.group(cls=_Group)
@click.version_option(__version__, "--version", prog_name="headwater", message="%(prog)s %(version)s")
def cli() -> None:
    """headwater: declarative real-time pipelines on Hive, Kafka, Spark and HBase."""


def _register() -> None:
    from headwater.cli import stack

    cli.add_command(stack.stack)
    try:
        from headwater.cli import pipeline

        for cmd in pipeline.COMMANDS:
            cli.add_command(cmd)
    except ImportError:  # pragma: no cover - during development of the pipeline commands
        pass
    from headwater.cli import serve

    for cmd in serve.COMMANDS:
        cli.add_command(cmd)
    from headwater.cli import dlq, ops

    for cmd in [*dlq.COMMANDS, *ops.COMMANDS]:
        cli.add_command(cmd)


_register()


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="headwater")
