"""Dead-letter commands: ``dlq show`` and ``dlq replay``."""

from __future__ import annotations

import json

import click


@click.group()
def dlq() -> None:
    """Inspect a pipeline's dead letters and replay them once the pipeline is fixed."""


@dlq.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("--reason", help="Only dead letters with this reason code (type_mismatch, ...).")
@click.option("--limit", type=click.IntRange(min=0), default=20, show_default=True, help="Envelopes listed.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (every listed envelope in full).")
def show(spec: str, reason: str | None, limit: int, as_json: bool) -> None:
    """List dead letters (one per source position), with counts per reason at the top."""
    from headwater import kafka
    from headwater.spec import load_spec
    from headwater.streaming import replay

    s = load_spec(spec)
    kafka.check_reachable(s.connections.kafka)
    letters = replay.read_envelopes(s.connections.kafka, s.dead_letter.topic)
    counts = replay.reason_counts(letters)
    if reason is not None:
        letters = [letter for letter in letters if letter.reason == reason]
    replayed = replay.load_replayed(s)
    if as_json:
        out = {
            "topic": s.dead_letter.topic, "total": sum(counts.values()), "reasons": counts,
            "selected": len(letters),
            "envelopes": [{**letter.as_dict(), "replayed": letter.position in replayed} for letter in letters[:limit]],
        }  # fmt: skip
        click.echo(json.dumps(out, indent=2, default=str))
        return
    click.echo(f"{s.dead_letter.topic}: {sum(counts.values())} dead letter(s)")
    for name, n in counts.items():
        click.echo(f"  {name:<22} {n:>8,}")
    if not letters:
        return
    click.echo("")
    width = max(len(letter.position) for letter in letters[:limit]) if limit else 0
    for letter in letters[:limit]:
        mark = " (replayed)" if letter.position in replayed else ""
        click.echo(f"{letter.position:<{width}}  {letter.reason:<18} {letter.message}{mark}")
    if len(letters) > limit:
        click.echo(f"... {len(letters) - limit} more (--limit)")


@dlq.command(name="replay")
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("--reason", help="Only dead letters with this reason code.")
@click.option("--dry-run", is_flag=True, help="Count what would be replayed; produce and record nothing.")
def replay_cmd(spec: str, reason: str | None, dry_run: bool) -> None:
    """Re-produce dead letters to the pipeline's topic (each position once), header hw.replay_of."""
    from headwater import kafka
    from headwater.spec import load_spec
    from headwater.streaming import replay

    s = load_spec(spec)
    kafka.check_reachable(s.connections.kafka)
    summary = replay.replay(s, reason=reason, dry_run=dry_run, echo=lambda m: click.echo(m, err=True))
    click.echo(summary.render())
    if summary.replayed and not dry_run:
        click.echo(f"run the process stage to push them through the pipeline: headwater run {spec} --stage process")


COMMANDS = [dlq]
