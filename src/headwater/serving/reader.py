"""Read the HBase table a pipeline writes: point gets, prefix scans, latest-N and freshness.

:class:`TableReader` inverts :mod:`headwater.sinks.hbase.writer` without Spark: row keys are
decoded with the sink's :class:`~headwater.sinks.hbase.rowkey.RowKeyTemplate`, cells with
:func:`~headwater.sinks.hbase.codec.decode_value`. Column types come, in this order, from the sink
config's ``{column: type}`` form, from the ``types`` mapping given to the reader (see
:func:`types_from_schema`, and ``--type col=type`` on the command line), then from the types the
process stage stored with the table when it wrote it (:mod:`headwater.sinks.hbase.mapping`: a column a
transform computed, such as ``total``, reads back as the decimal it was written as), else ``string``.

Key field values may be given as strings (from a URL or the command line): they are converted to
the type of their row-key part (``int``/``long`` -> integer, ``double`` -> float, ``timestamp``
and ``reverse_ts`` -> ISO-8601 or epoch milliseconds, ``date`` -> ISO date).

Example:
    >>> reader = TableReader(spec.sink, spec.connections.hbase, types_from_schema(spec))  # doctest: +SKIP
    >>> reader.get({"customer_id": "c1", "order_id": "42"}).to_dict()  # doctest: +SKIP
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import itertools
import logging
import math
import re
import socket
import threading
from collections.abc import Callable, Generator, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeVar, cast

from headwater.errors import ConfigError, HeadwaterError, NotFoundError, ServiceUnavailable
from headwater.sinks.hbase.codec import EPOCH, TYPE_NAMES, CodecError, decode_value
from headwater.sinks.hbase.rowkey import RowKeyError, RowKeyTemplate

if TYPE_CHECKING:
    from headwater.sinks.hbase import HBaseSinkConfig
    from headwater.sinks.hbase.thrift2 import Thrift2Client
    from headwater.spec.connections import HBaseConnection
    from headwater.spec.models import PipelineSpec

log = logging.getLogger("headwater.serving")

__all__ = [
    "CellDecodeError", "InvalidRequest", "Row", "TableReader", "decode_page_token", "encode_page_token",
    "hbase_sink", "jsonable", "type_of_ddl", "types_from_schema",
]  # fmt: skip

T = TypeVar("T")
FRESHNESS_MAX_ROWS = 100_000
_SIMPLE_DDL = {
    "string": "string", "varchar": "string", "char": "string", "int": "int", "integer": "int",
    "smallint": "int", "short": "int", "tinyint": "int", "byte": "int", "bigint": "long", "long": "long",
    "double": "double", "float": "double", "real": "double", "boolean": "boolean", "bool": "boolean",
    "decimal": "decimal", "dec": "decimal", "numeric": "decimal", "date": "date", "timestamp": "timestamp",
    "timestamp_ntz": "timestamp", "timestamp_ltz": "timestamp", "binary": "bytes",
}  # fmt: skip
_INT_RE = re.compile(r"[+-]?\d+")
MAX_ROW_KEY_BYTES = 32767  # HBase refuses longer row keys (Short.MAX_VALUE)
_MAX_SHOWN = 80  # characters of a client's value quoted in an error message
_MAX_MESSAGE = 500


class InvalidRequest(HeadwaterError, ValueError):
    """A request the table cannot answer: unknown field, value that does not fit its key part, bad token."""

    exit_code = 2


def _show(value: Any) -> str:
    """``repr`` of a client's value, shortened so that an error message stays readable."""
    text = repr(value)
    return text if len(text) <= _MAX_SHOWN else f"{text[: _MAX_SHOWN - 3]}... ({len(str(value))} characters)"


def _invalid(what: str, exc: Exception) -> InvalidRequest:
    """An :class:`InvalidRequest` from an encoding error, its message bounded in length."""
    message = f"{what}: {exc}"
    return InvalidRequest(message if len(message) <= _MAX_MESSAGE else message[: _MAX_MESSAGE - 3] + "...")


class CellDecodeError(HeadwaterError):
    """A stored cell does not decode as the type the reader assumes (give the right ``--type``)."""


def type_of_ddl(ddl: str) -> str:
    """The cell codec of a Spark SQL DDL type, as the sink's ``codec_type`` picks it (no Spark needed).

    Example:
        >>> type_of_ddl("decimal(12,2)"), type_of_ddl("BIGINT"), type_of_ddl("array<struct<a:int>>")
        ('decimal', 'long', 'json')
    """
    base = re.split(r"[\s(<]", ddl.strip().lower(), maxsplit=1)[0]
    return _SIMPLE_DDL.get(base, "json")  # array, map, struct and anything else: json, like the sink


def types_from_schema(spec: PipelineSpec) -> dict[str, str]:
    """Column -> codec type from the spec's declared ``schema`` ({} when the schema comes from the source).

    Columns a transform adds (e.g. ``total`` computed in SQL) are not in it: pass them as ``types``.
    """
    return {name: type_of_ddl(ddl) for name, ddl in (spec.schema_ or {}).items()}


def encode_page_token(row_key: bytes) -> str:
    """An opaque page token: base64url (no padding) of the row key the next page starts at."""
    return base64.urlsafe_b64encode(row_key).rstrip(b"=").decode("ascii")


def decode_page_token(token: str) -> bytes:
    """Invert :func:`encode_page_token`; raises :class:`InvalidRequest` for a malformed token."""
    bad = InvalidRequest(f"page_token {_show(token)} is not a page token returned by a scan")
    if not token or not re.fullmatch(r"[A-Za-z0-9_-]+", token):
        raise bad
    try:
        key = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError):
        raise bad from None
    if len(key) > MAX_ROW_KEY_BYTES:  # no row key is that long
        raise bad
    return key


def jsonable(value: Any) -> Any:
    """``value`` made JSON-able: Decimal -> str, dates -> ISO-8601, bytes -> base64, inf/nan -> str."""
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime):
        return (value.replace(tzinfo=UTC) if value.tzinfo is None else value).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


@dataclass(frozen=True)
class Row:
    """Decoded key fields and columns, and the newest cell timestamp (``None`` without ``version``)."""

    key: dict[str, Any]
    row_key: bytes
    columns: dict[str, Any]
    timestamp: datetime | None

    @property
    def row_key_hex(self) -> str:
        return self.row_key.hex()

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form: ``{"key", "row_key_hex", "columns", "timestamp"}``."""
        return {"key": jsonable(self.key), "row_key_hex": self.row_key_hex,
                "columns": jsonable(self.columns), "timestamp": jsonable(self.timestamp)}  # fmt: skip


def hbase_sink(spec: PipelineSpec) -> HBaseSinkConfig:
    """The spec's sink config; :class:`~headwater.errors.ConfigError` unless it is an ``hbase`` sink."""
    from headwater.sinks.hbase import HBaseSinkConfig

    if not isinstance(spec.sink, HBaseSinkConfig):
        raise ConfigError(f"pipeline '{spec.name}': sink type '{spec.sink.type}' is not hbase; nothing to serve")
    return spec.sink


def _millis(ms: int) -> datetime:
    return EPOCH + timedelta(milliseconds=ms)


def _prefix_end(prefix: bytes) -> bytes | None:
    """The first key after every key starting with ``prefix`` (None: no such key)."""
    stripped = prefix.rstrip(b"\xff")
    return stripped[:-1] + bytes([stripped[-1] + 1]) if stripped else None


def _is_transport_error(exc: BaseException) -> bool:
    from thriftpy2.transport import TTransportException

    return isinstance(exc, TTransportException | socket.timeout | ConnectionError | OSError | EOFError)


class _Pool:
    """Thrift2 connections reused across requests (a client is not thread-safe: one user at a time)."""

    def __init__(self, conn: HBaseConnection, size: int) -> None:
        self.conn, self.size = conn, size
        self.address = f"{conn.host}:{conn.port}"
        self._idle: list[Thrift2Client] = []
        self._lock = threading.Lock()

    def _open(self) -> Thrift2Client:
        from headwater.sinks.hbase.thrift2 import Thrift2Client

        c = self.conn
        try:
            return Thrift2Client(c.host, c.port, c.timeout_ms, c.transport, c.protocol)
        except Exception as exc:  # any failure to connect means "not reachable"
            raise ServiceUnavailable(f"HBase Thrift2 server not reachable at {self.address}: {exc}") from None

    @contextlib.contextmanager
    def client(self, fresh: bool = False) -> Iterator[Thrift2Client]:
        """A pooled client (a new one if ``fresh``); closed instead of pooled after an error."""
        with self._lock:
            client = self._idle.pop() if self._idle and not fresh else None
        client = client or self._open()
        try:
            yield client
        except BaseException:
            with contextlib.suppress(Exception):
                client.close()
            raise
        with self._lock:
            if len(self._idle) < self.size:
                self._idle.append(client)
                return
        client.close()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for client in idle:
            with contextlib.suppress(Exception):
                client.close()


class TableReader:
    """Reads the table of an ``hbase`` sink. Thread-safe; connections are pooled and opened lazily.

    Args:
        sink_config: the pipeline's ``sink`` (an ``HBaseSinkConfig``).
        hbase_connection: where the Thrift2 server is (``spec.connections.hbase``).
        types: codec types of list-form columns (e.g. ``types_from_schema(spec)`` plus overrides).
        pool_size: idle connections kept for reuse.
    """

    def __init__(self, sink_config: HBaseSinkConfig, hbase_connection: HBaseConnection,
                 types: Mapping[str, str] | None = None, pool_size: int = 8) -> None:  # fmt: skip
        from headwater.sinks.hbase.thrift2 import idl

        self.config = sink_config
        self.table = sink_config.full_table
        self.template = RowKeyTemplate.parse(sink_config.row_key)
        self._t = idl()
        self._pool = _Pool(hbase_connection, pool_size)
        given, valid = dict(types or {}), ", ".join(TYPE_NAMES)
        stored = self._stored_types()
        self.cells: dict[tuple[bytes, bytes], tuple[str, str]] = {}  # (family, qualifier) -> (name, type)
        names = [c for cols in sink_config.columns.values() for c in cols]
        for family, cols in sink_config.columns.items():
            declared = cols if isinstance(cols, dict) else dict.fromkeys(cols)
            for col, typ in declared.items():
                name = col if names.count(col) == 1 else f"{family}:{col}"
                resolved = typ or given.get(col) or stored.get(col) or "string"
                if resolved not in TYPE_NAMES:
                    raise ConfigError(f"type of column {col!r}: unknown type {resolved!r}; valid: {valid}")
                self.cells[(family.encode(), col.encode())] = (name, resolved)
        self._columns = [self._t.TColumn(family=f, qualifier=q) for f, q in self.cells]
        self._field_kind: dict[str, str] = {}
        for part in self.template.parts:
            if part.kind not in ("literal", "salt", "hash"):
                self._field_kind.setdefault(part.field, part.kind)

    def _stored_types(self) -> dict[str, str]:
        """The column types the process stage kept with the table (:mod:`headwater.sinks.hbase.mapping`)."""
        from headwater.sinks.hbase import mapping

        try:
            with self._pool.client() as client:
                return mapping.load(client, self.table)
        except Exception as exc:  # no table yet, HBase away: types from the spec; the reads will say what is wrong
            log.warning("column types of %s not read from HBase (%s); using the spec's", self.table, exc)
            return {}

    @property
    def key_fields(self) -> list[str]:
        """The row-key fields, in template order."""
        return self.template.fields

    def field_kind(self, name: str) -> str:
        """The encoding of a key field's part (``string``, ``long``, ``reverse_ts``...)."""
        return self._field_kind.get(name, "string")

    def close(self) -> None:
        """Close pooled connections."""
        self._pool.close()

    # --- key fields -----------------------------------------------------------------------------
    def _coerce(self, fields: Mapping[str, Any], what: str) -> dict[str, Any]:
        unknown = [f for f in fields if f not in self.key_fields]
        if unknown:
            raise InvalidRequest(
                f"{what}: unknown key field {_show(unknown[0])}; key fields: {', '.join(self.key_fields)}"
            )
        return {name: self._convert(name, value, what) for name, value in fields.items()}

    def _convert(self, name: str, value: Any, what: str) -> Any:
        """A key value given as text, converted for its part; other values pass unchanged."""
        if not isinstance(value, str):
            return value
        kind, text = self.field_kind(name), value.strip()
        if kind in ("int", "long"):
            if not _INT_RE.fullmatch(text):
                raise InvalidRequest(f"{what}: key field {name!r}: {_show(value)} is not an integer")
            return self._int(name, text, what)
        if kind == "double":
            try:
                return float(text)
            except ValueError:
                raise InvalidRequest(f"{what}: key field {name!r}: {_show(value)} is not a number") from None
        if kind in ("timestamp", "reverse_ts") and _INT_RE.fullmatch(text):
            return self._int(name, text, what)  # epoch milliseconds; ISO strings are parsed by the template
        return value

    @staticmethod
    def _int(name: str, text: str, what: str) -> int:
        try:
            return int(text)
        except ValueError:  # more digits than Python converts (sys.get_int_max_str_digits)
            raise InvalidRequest(
                f"{what}: key field {name!r}: {_show(text)} is out of range for a 64-bit integer"
            ) from None

    def _encode(self, values: Mapping[str, Any], what: str, *, full: bool) -> bytes:
        """The row key (``full``) or key prefix of client-given values; :class:`InvalidRequest` if they do not fit."""
        try:
            key = self.template.encode(values) if full else self.template.prefix(values)
        except (RowKeyError, CodecError, ValueError, OverflowError) as exc:
            raise _invalid(what, exc) from None
        if len(key) > MAX_ROW_KEY_BYTES:
            raise InvalidRequest(f"{what}: the key is {len(key)} bytes; HBase row keys are at most {MAX_ROW_KEY_BYTES}")
        return key

    def _leading(self, fields: Mapping[str, Any] | None, what: str) -> tuple[bytes, bool]:
        """Encoded prefix of leading key fields, and whether it is a complete key."""
        values = self._coerce(fields or {}, what)
        if not values:
            return b"", False
        order = self.key_fields
        given = [f for f in order if f in values]
        if given != order[: len(given)]:
            missing = next(f for f in order if f not in values)
            raise InvalidRequest(
                f"{what}: key field {missing!r} is missing; a prefix needs the leading key fields in order "
                f"({', '.join(order)}), got {', '.join(given)}"
            )
        complete = len(given) == len(order)
        return self._encode(values, what, full=complete), complete

    # --- calls ----------------------------------------------------------------------------------
    def _call(self, fn: Callable[[Thrift2Client], T]) -> T:
        """Run ``fn`` with a pooled client; retry once on a fresh connection after a transport error."""
        for attempt in (0, 1):
            try:
                with self._pool.client(fresh=attempt > 0) as client:
                    return fn(client)
            except HeadwaterError:
                raise
            except Exception as exc:
                if _is_transport_error(exc):
                    if attempt == 0:
                        continue
                    raise ServiceUnavailable(
                        f"HBase Thrift2 server not reachable at {self._pool.address}: {exc}"
                    ) from None
                if type(exc).__name__ == "TIOError":
                    self._raise_io_error(exc)
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _raise_io_error(self, exc: Any) -> None:
        with self._pool.client() as client:
            exists = client.table_exists(self.table)
        if not exists:
            raise NotFoundError(f"HBase table '{self.table}' not found at {self._pool.address}") from None
        raise HeadwaterError(f"HBase error reading '{self.table}': {getattr(exc, 'message', exc)}") from None

    def _scan(self, start: bytes, stop: bytes | None, limit: int) -> list[Any]:
        scan = self._t.TScan(startRow=start or None, stopRow=stop or None, columns=self._columns,
                             maxVersions=1, limit=limit, caching=min(limit, 1000))  # fmt: skip

        def run(client: Thrift2Client) -> list[Any]:
            results = cast("Generator[Any, None, None]", client.scan(self.table, scan, min(limit, 1000)))
            with contextlib.closing(results):  # closes the scanner when the limit is reached
                return list(itertools.islice(results, limit))

        return self._call(run)

    def _row(self, result: Any) -> Row:
        key = bytes(result.row)
        try:
            fields = self.template.decode(key)
        except RowKeyError:
            fields = {}  # a row another writer put in the table: still shown, by its hex key
        columns: dict[str, Any] = {name: None for name, _ in self.cells.values()}
        newest = None
        for cell in result.columnValues:
            spec = self.cells.get((cell.family, cell.qualifier))
            if spec is None:
                continue
            name, typ = spec
            try:
                columns[name] = decode_value(cell.value, typ)
            except CodecError as exc:
                raise CellDecodeError(
                    f"row {key.hex()} column {name!r}: {exc}; set its type with --type {name}=<type>"
                ) from None
            if cell.timestamp is not None and (newest is None or cell.timestamp > newest):
                newest = cell.timestamp
        ts = _millis(newest) if newest is not None and self.config.version else None
        return Row(fields, key, columns, ts)

    # --- public reads ---------------------------------------------------------------------------
    def get(self, key_fields: Mapping[str, Any]) -> Row | None:
        """The row with this full key, or ``None``; :class:`InvalidRequest` for a bad or partial key."""
        key = self._encode(self._coerce(key_fields, "get"), "get", full=True)
        results = self._call(lambda c: c.get_multiple(self.table, [self._t.TGet(row=key, columns=self._columns)]))
        return self._row(results[0]) if results and results[0].columnValues else None

    def scan(self, prefix_fields: Mapping[str, Any] | None = None, start: Mapping[str, Any] | None = None,
             stop: Mapping[str, Any] | None = None, limit: int = 100,
             page_token: str | None = None) -> tuple[list[Row], str | None]:  # fmt: skip
        """Rows in key order under ``prefix_fields`` (leading key fields), from ``start`` (inclusive,
        leading key fields) to ``stop`` (exclusive), at most ``limit``. Returns the rows and the token
        of the next page (``None`` on the last page)."""
        if limit < 1:
            raise InvalidRequest(f"limit must be >= 1, got {limit}")
        prefix, complete = self._leading(prefix_fields, "prefix")
        low, high = prefix, None
        if prefix:
            high = prefix + b"\x00" if complete else _prefix_end(prefix)
        if start:
            low = max(low, self._leading(start, "start")[0])
        if stop:
            stop_key = self._leading(stop, "stop")[0]
            high = stop_key if high is None else min(high, stop_key)
        if page_token is not None:
            low = max(low, decode_page_token(page_token))
        if high is not None and low >= high:
            return [], None
        results = self._scan(low, high, limit + 1)
        rows = [self._row(r) for r in results[:limit]]
        token = encode_page_token(bytes(results[limit].row)) if len(results) > limit else None
        return rows, token

    def latest(self, entity_fields: Mapping[str, Any], n: int = 10) -> list[Row]:
        """The first ``n`` rows under the entity's key prefix.

        With a ``reverse_ts(...)`` part after the entity fields these are the newest first;
        otherwise they are simply the first rows in key order.
        """
        if not entity_fields:
            raise InvalidRequest(f"latest: give the entity's leading key fields ({', '.join(self.key_fields)})")
        return self.scan(entity_fields, limit=n)[0]

    def freshness(self, max_rows: int = FRESHNESS_MAX_ROWS) -> dict[str, Any]:
        """The newest cell timestamp (the ``version`` field's value) over at most ``max_rows`` rows.

        Returns ``{"newest_event_time": ISO or None, "rows_examined": n, "complete": bool,
        "version_field": name or None}``; ``complete`` is false when the table has more rows than
        were examined. Without a ``version`` field cells carry a constant timestamp: no event time.
        """
        families = [self._t.TColumn(family=f) for f in dict.fromkeys(f for f, _ in self.cells)]
        scan = self._t.TScan(columns=families, maxVersions=1, caching=1000, filterString=b"KeyOnlyFilter()")

        def run(client: Thrift2Client) -> tuple[int, int | None, bool]:
            rows, newest = 0, None
            results = cast("Generator[Any, None, None]", client.scan(self.table, scan, 1000))
            with contextlib.closing(results):
                for result in results:
                    if rows == max_rows:
                        return rows, newest, False
                    rows += 1
                    for cell in result.columnValues:
                        if cell.timestamp is not None and (newest is None or cell.timestamp > newest):
                            newest = cell.timestamp
            return rows, newest, True

        rows, newest, complete = self._call(run)
        event_time = _millis(newest).isoformat() if newest is not None and self.config.version else None
        return {"newest_event_time": event_time, "rows_examined": rows, "complete": complete,
                "version_field": self.config.version}  # fmt: skip
