"""Serving commands: ``serve`` (HTTP API), ``query`` (rows on the terminal), ``hbase plan`` (table layout)."""

from __future__ import annotations

import ipaddress
import json
import os
import sys
from collections.abc import Iterable
from typing import Any

import click
from pydantic import SecretStr

from headwater import redact
from headwater.errors import ConfigError
from headwater.redact import Secret

TOKEN_ENV = "HEADWATER_API_TOKEN"

_WIDTH = 40


def _pairs(values: Iterable[str], option: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in values:
        name, eq, value = item.partition("=")
        if not eq or not name.strip():
            raise click.BadParameter(f"expected FIELD=VALUE, got {item!r}", param_hint=option)
        out[name.strip()] = value
    return out


def _types(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> dict[str, str]:
    from headwater.sinks.codec import TYPE_NAMES

    types = _pairs(values, "--type")
    for col, typ in types.items():
        if typ not in TYPE_NAMES:
            raise click.BadParameter(f"{col}: unknown type {typ!r}; valid: {', '.join(TYPE_NAMES)}", param=param)
    return types


_type_option = click.option(
    "--type", "types", multiple=True, callback=_types, metavar="COL=TYPE",
    help="Codec type of a column the spec's schema does not declare (e.g. one a transform adds): "
    "--type total=decimal. Repeatable.",
)  # fmt: skip


def _load(spec: str) -> Any:
    from headwater.spec import load_spec

    return load_spec(spec)


def is_loopback(host: str) -> bool:
    """Whether ``host`` (as given to ``--host``) only listens on this machine: ``localhost``, 127.0.0.0/8, ::1."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:  # a host name: it may resolve to any interface
        return False


def check_bind(host: str, token: SecretStr | None, insecure: bool) -> None:
    """Refuse to listen on a non-loopback ``host`` without a bearer token, unless ``insecure``.

    Raises:
        ConfigError: naming the address and the two ways out.
    """
    if token is None and not insecure and not is_loopback(host):
        raise ConfigError(
            f"--host {host}: refusing to serve on a non-loopback address without a bearer token (anyone who "
            f"reaches {host} could read the table); set one with --token-env VAR or {TOKEN_ENV}, or pass "
            "--insecure to serve without authentication"
        )


def _token(token_env: str | None) -> SecretStr | None:
    """The bearer token: from ``$token_env`` if given (it must be set), else ``$HEADWATER_API_TOKEN``, else None."""
    if token_env:
        value = os.environ.get(token_env)
        if not value:
            raise ConfigError(f"--token-env {token_env}: the environment variable is not set or empty")
    else:
        value = os.environ.get(TOKEN_ENV) or None
    if value is None:
        return None
    redact.register([value])
    return Secret(value)


@click.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; a non-loopback one needs a token (or --insecure).")  # fmt: skip
@click.option("--port", default=8080, show_default=True, type=click.IntRange(1, 65535))
@click.option("--token-env", metavar="VAR", help="Require `Authorization: Bearer $VAR` on /v1 routes "
              f"(default: {TOKEN_ENV} if set, else no auth).")  # fmt: skip
@click.option("--insecure", is_flag=True, help="Allow a non-loopback --host without a token.")
@_type_option
def serve(spec: str, host: str, port: int, token_env: str | None, insecure: bool, types: dict[str, str]) -> None:
    """Serve a pipeline's HBase table over HTTP (docs at /docs)."""
    from headwater.extras import require

    require("serve", "headwater serve")
    token = _token(token_env)
    check_bind(host, token, insecure)  # before loading anything: a refusal costs nothing
    import uvicorn

    from headwater.serving.api import create_app

    s = _load(spec)
    app = create_app(s, types=types, token=token or "")
    auth = "bearer token required" if token else "no auth"
    click.echo(f"serving '{s.name}' on http://{host}:{port}/v1/{s.name}/ ({auth}); docs: /docs", err=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")


def _cell(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False) if isinstance(value, dict | list) else str(value)
    text = "" if value is None else text.replace("\n", " ")
    return text if len(text) <= _WIDTH else text[: _WIDTH - 1] + "…"


def _print_rows(rows: list[dict[str, Any]], key_fields: list[str], as_json: bool) -> None:
    if as_json:
        for row in rows:
            click.echo(json.dumps(row, ensure_ascii=False))
        return
    if not rows:
        click.echo("(no rows)", err=True)
        return
    columns = list(rows[0]["columns"])
    header = [*key_fields, *(f"{c} (column)" if c in key_fields else c for c in columns), "timestamp"]
    table = [[_cell(r["key"].get(f)) for f in key_fields] + [_cell(r["columns"].get(c)) for c in columns]
             + [_cell(r["timestamp"])] for r in rows]  # fmt: skip
    widths = [max(len(h), *(len(line[i]) for line in table)) for i, h in enumerate(header)]
    for line in [header, ["-" * w for w in widths], *table]:
        click.echo("  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip())


@click.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("--key", "keys", multiple=True, metavar="FIELD=VALUE", help="Get one row: every key field.")
@click.option("--prefix", "prefix", multiple=True, metavar="FIELD=VALUE", help="Scan under leading key fields.")
@click.option("--latest", "latest", multiple=True, metavar="FIELD=VALUE", help="First N rows of an entity.")
@click.option("-n", "n", default=10, show_default=True, type=click.IntRange(1), help="Rows for --latest.")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1), help="Rows for --prefix.")
@click.option("--page-token", help="Continue a --prefix scan (printed on stderr when more rows exist).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per row.")
@_type_option
def query(spec: str, keys: tuple[str, ...], prefix: tuple[str, ...], latest: tuple[str, ...], n: int,
          limit: int, page_token: str | None, as_json: bool, types: dict[str, str]) -> None:  # fmt: skip
    """Read rows of a pipeline's HBase table: by key, by key prefix, or an entity's latest."""
    from headwater.serving.reader import TableReader, hbase_sink, types_from_schema

    modes = [name for name, given in (("--key", keys), ("--prefix", prefix), ("--latest", latest)) if given]
    if len(modes) != 1:
        raise click.UsageError("give exactly one of --key, --prefix or --latest (each repeatable FIELD=VALUE)")
    s = _load(spec)
    reader = TableReader(hbase_sink(s), s.connections.hbase, {**types_from_schema(s), **types})
    try:
        if keys:
            row = reader.get(_pairs(keys, "--key"))
            if row is None:
                click.echo(f"no row with key {_pairs(keys, '--key')}", err=True)
                sys.exit(1)
            rows = [row]
        elif latest:
            rows = reader.latest(_pairs(latest, "--latest"), n)
        else:
            rows, token = reader.scan(_pairs(prefix, "--prefix"), limit=limit, page_token=page_token)
            if token:
                click.echo(f"more rows: --page-token {token}", err=True)
    finally:
        reader.close()
    _print_rows([r.to_dict() for r in rows], reader.key_fields, as_json)


@click.group()
def hbase() -> None:
    """HBase table tools."""


@hbase.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("--offline", is_flag=True, help="Only the planned layout; do not contact HBase.")
def plan(spec: str, offline: bool) -> None:
    """The sink table's layout (families, split points), whether it exists and how it differs."""
    from headwater.serving.reader import hbase_sink
    from headwater.sinks.hbase_admin import describe_plan
    from headwater.sinks.hbase_admin import plan as offline_plan

    s = _load(spec)
    sink = hbase_sink(s)
    p = offline_plan(sink) if offline else describe_plan(sink, s.connections.hbase)
    click.echo(p.render() if not offline else p.render().replace(" (to be created)", " (not checked)"))
    click.echo(f"  row key: {sink.row_key}")


COMMANDS = [serve, query, hbase]
