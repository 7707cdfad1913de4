"""The executor side of the HBase sink: Arrow batches in, ``putMultiple`` calls out.

Runs inside ``mapInArrow``: the description is pickled to the executor, the Thrift2 connection
is opened there (one per partition) and never pickled. Each call is bounded by rows and bytes,
deduplicated by row key (later record wins) and retried whole with exponential backoff.
A record that cannot be encoded (null row-key field, bad version value) is returned as rejected,
never retried; an infrastructure error that outlasts the retries fails the task loudly.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from headwater.sinks.codec import CodecError, encode_value, to_int, to_timestamp
from headwater.sinks.rowkey import RowKeyError, RowKeyTemplate

if TYPE_CHECKING:
    import pyarrow as pa

log = logging.getLogger("headwater.sinks.hbase")

RESULT_SCHEMA = (
    "kind string, rows long, written long, deduped long, bytes long, retries long, calls long, "
    "reason string, message string, partition int, offset long, payload string"
)
_DURABILITY = {"sync_wal": 3, "fsync_wal": 4, "async_wal": 2, "skip_wal": 1}  # TDurability values
CONSTANT_TS = 1  # cell timestamp when no `version` field is configured: deterministic, never the clock


@dataclass(frozen=True)
class CellSpec:
    """One HBase cell per record: ``family:qualifier`` <- ``column`` encoded as ``type``."""

    family: str
    qualifier: str
    column: str
    type: str


@dataclass(frozen=True)
class WriterDescription:
    """Everything an executor needs to write; plain data, safe to pickle."""

    host: str
    port: int
    timeout_ms: int
    transport: str
    protocol: str
    table: str
    row_key: str
    cells: list[CellSpec]
    version: str | None
    version_type: str | None
    durability: str = "sync_wal"
    batch_rows: int = 1000
    batch_bytes: int = 2_000_000
    retries: int = 8
    backoff_ms: int = 200
    extra: dict[str, Any] = field(default_factory=dict)


def cell_timestamp(value: Any, type_name: str | None) -> int:
    """Milliseconds for HBase from the record's version value."""
    if type_name is None:
        return CONSTANT_TS
    if value is None:
        raise CodecError("version field is null")
    if type_name == "timestamp":
        ts = to_timestamp(value)
        return int(ts.timestamp() * 1000)
    if type_name == "date":
        d = value if isinstance(value, date) else date.fromisoformat(str(value))
        return (d - date(1970, 1, 1)).days * 86_400_000
    ms = to_int(value)
    if ms < 0:
        raise CodecError(f"version {ms} is negative")
    return ms


def _plain(value: Any) -> Any:
    """Arrow maps arrive as lists of (key, value) tuples; make them dicts, recursively."""
    if isinstance(value, list):
        if value and all(isinstance(v, tuple) and len(v) == 2 for v in value):
            return {str(k): _plain(v) for k, v in value}
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _is_transient(exc: BaseException) -> bool:
    from thriftpy2.transport import TTransportException

    if isinstance(exc, TTransportException | socket.timeout | ConnectionError | OSError | EOFError):
        return True
    return type(exc).__name__ == "TIOError"  # region moving, server not ready: retry


class _Connection:
    """A Thrift2 connection that reconnects after a transport failure."""

    def __init__(self, desc: WriterDescription) -> None:
        self.desc = desc
        self.client: Any = None

    def get(self) -> Any:
        if self.client is None:
            from headwater.sinks.thrift2 import Thrift2Client

            d = self.desc
            self.client = Thrift2Client(d.host, d.port, d.timeout_ms, d.transport, d.protocol)
        return self.client

    def reset(self) -> None:
        if self.client is not None:
            with contextlib.suppress(Exception):
                self.client.close()
        self.client = None


def send_with_retry(call: Callable[[], None], desc: WriterDescription, conn: _Connection) -> int:
    """Run ``call``; on transient errors reconnect and retry with exponential backoff. Returns retries."""
    attempt = 0
    while True:
        try:
            call()
            return attempt
        except Exception as exc:
            if not _is_transient(exc) or attempt >= desc.retries:
                raise
            delay = min(desc.backoff_ms * 2**attempt, 30_000) / 1000
            log.warning("HBase %s: %s; retry %d/%d in %.1fs", desc.table, exc, attempt + 1, desc.retries, delay)
            conn.reset()
            time.sleep(delay)
            attempt += 1


def make_writer(desc: WriterDescription) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """The function given to ``mapInArrow``."""

    def write(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        import pyarrow as pa

        from headwater.sinks.thrift2 import idl

        t = idl()
        template = RowKeyTemplate.parse(desc.row_key)
        durability = _DURABILITY[desc.durability]
        encoded_cells = [(c.family.encode(), c.qualifier.encode(), c.column, c.type) for c in desc.cells]
        conn = _Connection(desc)
        stats = {"rows": 0, "written": 0, "deduped": 0, "bytes": 0, "retries": 0, "calls": 0}
        rejected: list[dict[str, Any]] = []
        pending: dict[bytes, Any] = {}
        pending_bytes = 0

        def flush() -> None:
            nonlocal pending, pending_bytes
            if not pending:
                return
            puts = list(pending.values())
            stats["retries"] += send_with_retry(lambda: conn.get().put_multiple(desc.table, puts), desc, conn)
            stats["written"] += len(puts)
            stats["bytes"] += pending_bytes
            stats["calls"] += 1
            pending, pending_bytes = {}, 0

        try:
            for batch in batches:
                for rec in batch.to_pylist():
                    stats["rows"] += 1
                    try:
                        key = template.encode(rec)
                        ts = cell_timestamp(rec.get(desc.version) if desc.version else None, desc.version_type)
                        values = []
                        size = len(key)
                        for fam, qual, col, typ in encoded_cells:
                            raw = rec.get(col)
                            data = encode_value(_plain(raw) if typ == "json" else raw, typ)
                            if data is None:
                                continue
                            size += len(fam) + len(qual) + len(data) + 24
                            values.append(t.TColumnValue(family=fam, qualifier=qual, value=data, timestamp=ts))
                    except (RowKeyError, CodecError, ValueError, TypeError) as exc:
                        rejected.append(_rejection(rec, "encode_error", str(exc)))
                        continue
                    if not values:
                        rejected.append(_rejection(rec, "empty_row", "no non-null column to write"))
                        continue
                    if key in pending:
                        stats["deduped"] += 1
                    pending[key] = t.TPut(row=key, columnValues=values, durability=durability)
                    pending_bytes += size
                    if len(pending) >= desc.batch_rows or pending_bytes >= desc.batch_bytes:
                        flush()
            flush()
        finally:
            conn.reset()
        cols = RESULT_SCHEMA.split(", ")
        names = [c.split(" ")[0] for c in cols]
        rows = [{"kind": "stats", **stats}, *rejected]
        yield pa.RecordBatch.from_pylist([{n: r.get(n) for n in names} for r in rows], schema=_arrow_schema())

    return write


def _rejection(rec: dict[str, Any], reason: str, message: str) -> dict[str, Any]:
    return {
        "kind": "rejected", "reason": reason, "message": message,
        "partition": rec.get("_hw_partition"), "offset": rec.get("_hw_offset"),
        "payload": json.dumps({k: v for k, v in rec.items() if not k.startswith("_hw_")}, default=_json_default),
    }  # fmt: skip


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


def _arrow_schema() -> pa.Schema:
    import pyarrow as pa

    return pa.schema([
        ("kind", pa.string()), ("rows", pa.int64()), ("written", pa.int64()), ("deduped", pa.int64()),
        ("bytes", pa.int64()), ("retries", pa.int64()), ("calls", pa.int64()), ("reason", pa.string()),
        ("message", pa.string()), ("partition", pa.int32()), ("offset", pa.int64()), ("payload", pa.string()),
    ])  # fmt: skip
