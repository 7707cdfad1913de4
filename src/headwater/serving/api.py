"""The HTTP query API over a pipeline's HBase table (FastAPI; ``headwater serve`` runs it with uvicorn).

Routes (``{pipeline}`` is the spec's ``name``; docs at ``/docs``, schema at ``/openapi.json``)::

    GET /healthz                                    liveness, no HBase call
    GET /v1/{pipeline}/rows/get?<field>=<v>...      one row by its full key; 404 if absent
    GET /v1/{pipeline}/rows/scan?prefix.<field>=<v>...&start.<field>=<v>...&stop.<field>=<v>...
                                &limit=100&page_token=...   rows in key order, paginated
    GET /v1/{pipeline}/rows/latest?<field>=<v>...&n=10       first n rows under an entity prefix
    GET /v1/{pipeline}/freshness                    newest event time written to the table

Key fields are given by name (``key.<field>`` is accepted too, for a field named like a reserved
parameter such as ``n``). Prefix, start and stop take *leading* key fields; ``start`` is
inclusive, ``stop`` exclusive. ``next_page_token`` of a scan response is passed back as
``page_token`` (with the same other parameters) for the next page.

Errors are ``{"error": "..."}``: 400 for a bad field or value, 401 for a missing or wrong bearer
token (when a token is configured), 404 for a missing row, table or pipeline, 422 for a malformed
``limit``/``n``, 503 when HBase cannot be reached. No client input is answered with a 5xx: a value
that cannot be part of a row key (an integer of thousands of digits, an instant outside the years
1-9999 in UTC, a key longer than HBase's 32767 bytes) is a 400 naming the field (the test suite
fuzzes every route from this document).

``headwater serve`` listens on 127.0.0.1 by default; a non-loopback ``--host`` needs a token
(``--token-env VAR`` or ``$HEADWATER_API_TOKEN``) or an explicit ``--insecure``.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, SecretStr
from starlette.exceptions import HTTPException

from headwater import redact
from headwater.errors import HeadwaterError, NotFoundError, ServiceUnavailable
from headwater.serving.reader import InvalidRequest, TableReader, hbase_sink, types_from_schema
from headwater.spec.models import PipelineSpec

TOKEN_ENV = "HEADWATER_API_TOKEN"
MAX_LIMIT = 1000
_GROUPS = ("prefix", "start", "stop")
_KIND_HELP = {
    "int": "integer", "long": "integer", "double": "number", "date": "ISO date (YYYY-MM-DD)",
    "timestamp": "ISO-8601 timestamp or epoch ms", "reverse_ts": "ISO-8601 timestamp or epoch ms",
}  # fmt: skip
_KIND_SCHEMA: dict[str, dict[str, Any]] = {
    "int": {"type": "integer", "minimum": -(2**31), "maximum": 2**31 - 1},
    "long": {"type": "integer", "minimum": -(2**63), "maximum": 2**63 - 1},
    "double": {"type": "number"},
    "date": {"type": "string", "format": "date"},
    "timestamp": {"anyOf": [{"type": "string", "format": "date-time"}, {"type": "integer"}]},
    "reverse_ts": {"anyOf": [{"type": "string", "format": "date-time"}, {"type": "integer"}]},
}  # fmt: skip


class RowOut(BaseModel):
    """One row: decoded key fields, columns, hex row key and newest cell timestamp (ISO, or null)."""

    key: dict[str, Any]
    row_key_hex: str
    columns: dict[str, Any]
    timestamp: str | None


class ScanOut(BaseModel):
    """One page of a scan."""

    rows: list[RowOut]
    next_page_token: str | None


class LatestOut(BaseModel):
    """The first rows under an entity prefix."""

    rows: list[RowOut]


class FreshnessOut(BaseModel):
    """The newest event time (cell timestamp) over at most 100k rows; ``complete`` if all were read."""

    pipeline: str
    table: str
    newest_event_time: str | None
    rows_examined: int
    complete: bool
    version_field: str | None


class ErrorOut(BaseModel):
    """An error, as one message."""

    error: str


def key_params(items: Iterable[tuple[str, str]], reserved: Iterable[str] = ()) -> dict[str, str]:
    """Key fields from query parameters ``<field>=v`` or ``key.<field>=v``, leaving ``reserved`` names out.

    Raises:
        InvalidRequest: for a field given twice.
    """
    skip, out = set(reserved), {}
    for name, value in items:
        if name in skip:
            continue
        field = name.removeprefix("key.")
        if field in out:
            raise InvalidRequest(f"key field {field!r} given more than once")
        out[field] = value
    return out


def scan_params(items: Iterable[tuple[str, str]], reserved: Iterable[str] = ()) -> dict[str, dict[str, str]]:
    """``prefix.<f>``, ``start.<f>`` and ``stop.<f>`` parameters, grouped: ``{"prefix": {f: v}, ...}``.

    Raises:
        InvalidRequest: for any other parameter not in ``reserved``, or one given twice.
    """
    skip = set(reserved)
    groups: dict[str, dict[str, str]] = {g: {} for g in _GROUPS}
    for name, value in items:
        if name in skip:
            continue
        group, dot, field = name.partition(".")
        if group not in groups or not dot or not field:
            raise InvalidRequest(
                f"unknown parameter {name!r}; use prefix.<field>, start.<field>, stop.<field>, "
                f"{', '.join(sorted(skip))}"
            )
        if field in groups[group]:
            raise InvalidRequest(f"parameter {name!r} given more than once")
        groups[group][field] = value
    return groups


def _error(status: int, message: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=dict(headers or {}))


def _install_error_handlers(app: FastAPI) -> None:
    statuses: list[tuple[type[Exception], int]] = [
        (InvalidRequest, 400), (NotFoundError, 404), (ServiceUnavailable, 503), (HeadwaterError, 500),
    ]  # fmt: skip
    for cls, status in statuses:

        def handler(request: Request, exc: Exception, status: int = status) -> JSONResponse:
            return _error(status, str(exc))

        app.add_exception_handler(cls, handler)

    def validation(request: Request, exc: Exception) -> JSONResponse:
        errors = exc.errors() if isinstance(exc, RequestValidationError) else []
        text = "; ".join(f"{'.'.join(str(p) for p in e['loc'][1:])}: {e['msg']}" for e in errors)
        return _error(422, text or str(exc))

    def http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        return _error(exc.status_code, str(exc.detail), exc.headers)

    app.add_exception_handler(RequestValidationError, validation)
    app.add_exception_handler(HTTPException, http)


def _auth_dependency(token: SecretStr) -> Any:
    bearer = HTTPBearer(auto_error=False, description=f"Bearer token (set with --token-env or {TOKEN_ENV}).")
    expected = token.get_secret_value().encode()

    def check(credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:  # noqa: B008
        given = credentials.credentials if credentials else ""
        if not secrets.compare_digest(given.encode(), expected):
            raise HTTPException(401, "missing or invalid bearer token", headers={"WWW-Authenticate": "Bearer"})

    return Depends(check)


def _doc_params(reader: Any, prefix: str, required: bool) -> list[dict[str, Any]]:
    """OpenAPI query parameters for the key fields (the handlers read them from the raw query)."""
    out = []
    for field in reader.key_fields:
        kind = reader.field_kind(field)
        help_ = f"row-key field ({_KIND_HELP.get(kind, 'text')})"
        out.append({"name": f"{prefix}{field}", "in": "query", "required": required,
                    "schema": _KIND_SCHEMA.get(kind, {"type": "string"}), "description": help_})  # fmt: skip
    return out


def create_app(spec: PipelineSpec, types: Mapping[str, str] | None = None, token: str | SecretStr | None = None,
               *, reader: Any = None) -> FastAPI:  # fmt: skip
    """The query API for one pipeline.

    Args:
        spec: the pipeline (its sink must be ``hbase``).
        types: codec types of columns the spec's ``schema`` does not give (e.g. ``{"total": "decimal"}``);
            they override the schema's.
        token: bearer token every ``/v1`` route requires; ``None``: ``$HEADWATER_API_TOKEN`` if set,
            else no authentication; ``""``: no authentication. Kept as a secret (``***`` in any output).
        reader: a ready :class:`TableReader` (or a stand-in with the same methods, for tests).
    """
    sink = hbase_sink(spec)
    if reader is None:
        reader = TableReader(sink, spec.connections.hbase, {**types_from_schema(spec), **(types or {})})
    given = token.get_secret_value() if isinstance(token, SecretStr) else token
    given = given if given is not None else os.environ.get(TOKEN_ENV) or None
    if given:
        redact.register([given])
    secret = redact.Secret(given) if given else None

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        close = getattr(reader, "close", None)
        if close is not None:
            close()

    app = FastAPI(title=f"headwater: {spec.name}", version="1",
                  description=f"Rows of HBase table `{sink.full_table}`, row key `{sink.row_key}`.\n\n"
                  + (__doc__ or "").split("\n\n", 1)[1], lifespan=lifespan)  # fmt: skip
    _install_error_handlers(app)
    router = APIRouter(prefix="/v1/{pipeline}", dependencies=[_auth_dependency(secret)] if secret else [])
    errors: dict[int | str, dict[str, Any]] = {
        code: {"model": ErrorOut} for code in (400, 401, 404, 422, 503) if secret or code != 401
    }

    def check_pipeline(pipeline: str) -> None:
        if pipeline != spec.name:
            raise NotFoundError(f"unknown pipeline {pipeline!r}; this server serves '{spec.name}'")

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, str]:
        """Liveness: the server is up (no HBase call)."""
        return {"status": "ok", "pipeline": spec.name, "table": sink.full_table}

    @router.get("/rows/get", response_model=RowOut, responses=errors, tags=["rows"],
                openapi_extra={"parameters": _doc_params(reader, "", True)})  # fmt: skip
    def get_row(pipeline: str, request: Request) -> JSONResponse:
        """One row by its full key: every key field as a query parameter."""
        check_pipeline(pipeline)
        fields = key_params(request.query_params.multi_items())
        row = reader.get(fields)
        if row is None:
            raise NotFoundError(f"no row with key {fields} in '{sink.full_table}'")
        return JSONResponse(row.to_dict())

    scan_doc = [p for g in _GROUPS for p in _doc_params(reader, f"{g}.", False)]

    @router.get("/rows/scan", response_model=ScanOut, responses=errors, tags=["rows"],
                openapi_extra={"parameters": scan_doc})  # fmt: skip
    def scan_rows(pipeline: str, request: Request, limit: int = Query(100, ge=1, le=MAX_LIMIT),
                  page_token: str | None = Query(None, description="next_page_token of the previous page.")
                  ) -> JSONResponse:  # fmt: skip
        """Rows in key order: under ``prefix.<field>`` values, from ``start.*`` (inclusive) to ``stop.*``
        (exclusive); each takes leading key fields. Paginate with ``page_token``."""
        check_pipeline(pipeline)
        g = scan_params(request.query_params.multi_items(), reserved=("limit", "page_token"))
        rows, next_token = reader.scan(g["prefix"], g["start"], g["stop"], limit, page_token)
        return JSONResponse({"rows": [r.to_dict() for r in rows], "next_page_token": next_token})

    @router.get("/rows/latest", response_model=LatestOut, responses=errors, tags=["rows"],
                openapi_extra={"parameters": _doc_params(reader, "", False)})  # fmt: skip
    def latest_rows(pipeline: str, request: Request, n: int = Query(10, ge=1, le=MAX_LIMIT)) -> JSONResponse:
        """The first ``n`` rows under an entity's leading key fields: the newest first when the key has a
        ``reverse_ts`` part after them, else in key order."""
        check_pipeline(pipeline)
        rows = reader.latest(key_params(request.query_params.multi_items(), reserved=("n",)), n)
        return JSONResponse({"rows": [r.to_dict() for r in rows]})

    @router.get("/freshness", response_model=FreshnessOut, responses=errors, tags=["table"])
    def freshness(pipeline: str) -> JSONResponse:
        """The newest event time (cell timestamp of the sink's ``version`` field) over at most 100k rows."""
        check_pipeline(pipeline)
        return JSONResponse({"pipeline": spec.name, "table": sink.full_table, **reader.freshness()})

    app.include_router(router)
    return app
