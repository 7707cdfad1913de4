"""The executor side of the HBase sink: Arrow batches in, ``putMultiple`` calls out.

Runs inside ``mapInArrow``: the description is pickled to the executor, the Thrift2 connection
is opened there (one per partition) and never pickled. Values are encoded column by column
(:mod:`headwater.sinks.hbase.arrow_codec`), rows are assembled straight into Thrift's binary form
(:mod:`headwater.sinks.hbase.thrift2`), and calls go out on one background thread in order, so the next
batch is encoded while HBase writes the previous one. Each call is bounded by rows and bytes and
retried whole with exponential backoff.

Versions: every record is one put at its own cell timestamp (the ``version`` field), so when
several versions of a row key meet in one call they are all written and HBase serves the newest
timestamp whatever the arrival order; a family with ``max_versions > 1`` keeps the history. Only
the same row key at the same timestamp is deduplicated, the later Kafka position winning.

A record that cannot be encoded (null row-key field, bad version value) or is over HBase's size
limits (row key, cell, request) is returned as rejected, never retried; an infrastructure error
that outlasts the retries fails the task loudly.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from headwater.sinks.hbase.arrow_codec import CONSTANT_TS, encode_column, encode_keys, version_millis
from headwater.sinks.hbase.codec import CodecError
from headwater.sinks.hbase.rowkey import RowKeyError, RowKeyTemplate

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["RESULT_SCHEMA", "CellSpec", "WriterDescription", "make_writer"]

log = logging.getLogger("headwater.sinks.hbase")

RESULT_SCHEMA = (
    "kind string, rows long, written long, deduped long, bytes long, retries long, calls long, "
    "reason string, message string, partition int, offset long, payload string"
)
_DURABILITY = {"sync_wal": 3, "fsync_wal": 4, "async_wal": 2, "skip_wal": 1}  # TDurability values


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
    batch_rows: int = 2000
    batch_bytes: int = 2_000_000
    max_cell_bytes: int = 10_485_760
    max_request_bytes: int = 64 * 1024 * 1024
    retries: int = 8
    backoff_ms: int = 200
    dry: bool = False  # encode every put, send none and open no connection (the stage's idle rehearsal)
    extra: dict[str, Any] = field(default_factory=dict)


def _is_transient(exc: BaseException) -> bool:
    from headwater.faults import classify

    return classify(exc).transient


class _Connection:
    """A Thrift2 connection that reconnects after a transport failure."""

    def __init__(self, desc: WriterDescription) -> None:
        self.desc = desc
        self.client: Any = None

    def get(self) -> Any:
        if self.client is None:
            from headwater.sinks.hbase.thrift2 import Thrift2Client

            d = self.desc
            self.client = Thrift2Client(d.host, d.port, d.timeout_ms, d.transport, d.protocol)
        return self.client

    def reset(self) -> None:
        if self.client is not None:
            with contextlib.suppress(Exception):
                self.client.close()
        self.client = None


def send_with_retry(call: Callable[[], None], desc: WriterDescription, conn: _Connection,
                    position: str = "") -> int:  # fmt: skip
    """Run ``call``; on transient errors reconnect and retry with exponential backoff. Returns retries.

    A permanent error (:func:`headwater.faults.classify`), or a table found missing or disabled after a
    transient one, raises PermanentError at once; a transient one that outlasts ``desc.retries`` raises
    TransientError. Both are one line naming the table and ``position`` (the first record of the call).
    """
    from headwater.errors import PermanentError, TransientError
    from headwater.faults import classify

    attempt = 0
    while True:
        try:
            call()
            return attempt
        except Exception as exc:
            fault = classify(exc)
            where = f"; first record of the failing call: {position}" if position else ""
            named = (
                fault.message if "table" in (fault.subject or "") else f"HBase table '{desc.table}': {fault.message}"
            )
            if fault.reason == "family_not_found" and "family" not in (fault.subject or ""):
                missing = _missing_families(conn, desc)  # the server's text did not name it: ask the table
                if missing:
                    named = f"HBase table '{desc.table}': column family {', '.join(repr(f) for f in missing)} does not exist"
            if not fault.transient:
                raise PermanentError(f"{named}{where}") from exc
            gone = _table_unusable(conn, desc.table)  # a disabled table looks like a region that never opens
            if gone:
                raise PermanentError(f"HBase table '{desc.table}' {gone}{where}") from exc
            if attempt >= desc.retries:
                raise TransientError(f"{named} after {attempt} retries{where}") from exc
            delay = min(desc.backoff_ms * 2**attempt, 30_000) / 1000
            log.warning("HBase %s: %s; retry %d/%d in %.1fs", desc.table, exc, attempt + 1, desc.retries, delay)
            conn.reset()
            time.sleep(delay)
            attempt += 1


def _missing_families(conn: _Connection, desc: WriterDescription) -> list[str]:
    """The families the writer writes that ``desc.table`` lacks ([] if it cannot tell)."""
    conn.reset()
    try:
        have = {c.name.decode() if isinstance(c.name, bytes) else str(c.name)
                for c in (conn.get().describe(desc.table).columns or [])}  # fmt: skip
    except Exception:  # the server is away: the message stays as the error gave it
        conn.reset()
        return []
    return sorted({c.family for c in desc.cells} - have)


def _table_unusable(conn: _Connection, table: str) -> str | None:
    """'does not exist' or 'is disabled' if the server says so; None if fine or if it does not answer."""
    conn.reset()
    try:
        client = conn.get()
        if not client.table_exists(table):
            return "does not exist"
        if not client.table_enabled(table):
            return "is disabled"
    except Exception:  # the server is away: the retry finds out
        conn.reset()
    return None


class _Sender:
    """Sends calls on one background thread, in submission order, one in flight and one waiting.

    Encoding (Python, holds the GIL) overlaps with HBase writing the previous call (socket I/O,
    releases it). An error that outlasts the retries is re-raised in the caller by the next
    :meth:`submit` or by :meth:`close`.
    """

    def __init__(self, desc: WriterDescription, conn: _Connection, stats: dict[str, int]) -> None:
        self.desc, self.conn, self.stats = desc, conn, stats
        self.queue: queue.Queue[tuple[list[Any], int, str] | None] = queue.Queue(maxsize=1)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="headwater-hbase-sender", daemon=True)
        self.thread.start()

    def _send(self, puts: list[Any]) -> None:
        if self.desc.dry:
            return
        client = self.conn.get()
        if client.binary:
            client.put_multiple_encoded(self.desc.table, puts)
        else:
            client.put_multiple(self.desc.table, puts)

    def _run(self) -> None:
        while (item := self.queue.get()) is not None:
            if self.error is not None:
                continue  # drain until close()
            puts, size, position = item
            try:
                self.stats["retries"] += send_with_retry(functools.partial(self._send, puts), self.desc, self.conn,
                                                         position)  # fmt: skip
            except BaseException as exc:  # handed to the caller thread
                self.error = exc
                continue
            self.stats["written"] += len(puts)
            self.stats["bytes"] += size
            self.stats["calls"] += 1

    def submit(self, puts: list[Any], size: int, position: str = "") -> None:
        """Queue one call; ``position`` names its first record for an error message."""
        if self.error is not None:
            raise self.error
        self.queue.put((puts, size, position))

    def close(self) -> None:
        """Wait for every submitted call; raise the first error."""
        self.queue.put(None)
        self.thread.join()
        if self.error is not None:
            raise self.error


def make_writer(desc: WriterDescription) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """The function given to ``mapInArrow``."""

    def write(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        import numpy as np
        import pyarrow as pa

        from headwater.sinks.hbase import thrift2

        template = RowKeyTemplate.parse(desc.row_key)
        durability = _DURABILITY[desc.durability]
        conn = _Connection(desc)
        binary = desc.protocol != "compact"
        prefixes = [thrift2.cell_prefix(c.family.encode(), c.qualifier.encode()) for c in desc.cells]
        names = [(c.family.encode(), c.qualifier.encode()) for c in desc.cells]
        stats = {"rows": 0, "written": 0, "deduped": 0, "bytes": 0, "retries": 0, "calls": 0}
        rejected: list[dict[str, Any]] = []
        # One put per (row key, cell timestamp): versions of a key with different timestamps are all
        # written (HBase serves the newest, families keep the history); the same key and timestamp
        # twice keeps the later Kafka position.
        pending: dict[tuple[bytes, int], tuple[Any, int, int]] = {}
        pending_bytes = 0
        limits = _Limits.of(desc)
        first = ""  # the position of the first record of the pending call
        sender = _Sender(desc, conn, stats)

        try:
            for batch in batches:
                n = batch.num_rows
                stats["rows"] += n
                columns, versions, errors = _encode_cells(desc, batch)
                keys = _row_keys(template, batch, errors)
                cells_per_row = sum(
                    (c.is_valid().to_numpy(zero_copy_only=False) for c in columns), np.zeros(n, "int32")
                )
                offsets = _offsets(batch)
                largest = limits.largest_cells(columns, n)
                puts = None
                if binary:
                    stamps = [0 if v is None else v for v in versions]
                    puts = thrift2.encode_puts([k or b"" for k in keys], list(zip(prefixes, columns, strict=True)),
                                               stamps, durability)  # fmt: skip
                for i in range(n):
                    if i in errors:
                        rejected.append(_rejection(batch, i, "encode_error", errors[i]))
                        continue
                    if not cells_per_row[i]:
                        rejected.append(_rejection(batch, i, "empty_row", "no non-null column to write"))
                        continue
                    key = keys[i]
                    assert key is not None  # rows without a key are in `errors`
                    if puts is not None:
                        put, size = puts[i], len(puts[i])
                    else:
                        triples = [(f, q, v) for (f, q), c in zip(names, columns, strict=True)
                                   if (v := c[i].as_py()) is not None]  # fmt: skip
                        put = thrift2.put_object(key, triples, versions[i], durability)
                        size = len(key) + sum(len(v) + 40 for *_, v in triples)
                    too_large = limits.check(key, int(largest[i]), size, columns, i)
                    if too_large:
                        rejected.append(_rejection(batch, i, "too_large", too_large))
                        continue
                    slot = (key, versions[i])
                    if slot in pending:
                        stats["deduped"] += 1
                        if pending[slot][2] > offsets[i]:  # the one already kept is the later position
                            continue
                        pending_bytes -= pending[slot][1]
                    if pending and pending_bytes + size > limits.request_bytes:
                        sender.submit([p for p, _, _ in pending.values()], pending_bytes, first)
                        pending, pending_bytes = {}, 0
                    if not pending:
                        first = _position(batch, i)
                    pending[slot] = (put, size, offsets[i])
                    pending_bytes += size
                    if len(pending) >= desc.batch_rows or pending_bytes >= limits.request_bytes:
                        sender.submit([p for p, _, _ in pending.values()], pending_bytes, first)
                        pending, pending_bytes = {}, 0
            if pending:
                sender.submit([p for p, _, _ in pending.values()], pending_bytes, first)
            sender.close()
        finally:
            if sender.thread.is_alive():
                with contextlib.suppress(BaseException):
                    sender.close()
            conn.reset()
        cols = RESULT_SCHEMA.split(", ")
        result_names = [c.split(" ")[0] for c in cols]
        out = [{"kind": "stats", **stats}, *rejected]
        yield pa.RecordBatch.from_pylist([{k: r.get(k) for k in result_names} for r in out], schema=_arrow_schema())

    return write


MAX_ROW_KEY_BYTES = 32767  # HConstants.MAX_ROW_LENGTH: HBase refuses longer row keys
_CELL_OVERHEAD = 24  # KeyValue framing: lengths, timestamp, type


@dataclass(frozen=True)
class _Limits:
    """HBase's and the Thrift server's size limits, checked before a record is sent."""

    cell_bytes: int
    request_bytes: int
    message_bytes: int
    labels: tuple[str, ...]
    name_bytes: tuple[int, ...]

    @classmethod
    def of(cls, desc: WriterDescription) -> _Limits:
        return cls(
            desc.max_cell_bytes, min(desc.batch_bytes, desc.max_request_bytes), desc.max_request_bytes,
            tuple(f"{c.family}:{c.qualifier}" for c in desc.cells),
            tuple(len(c.family.encode()) + len(c.qualifier.encode()) for c in desc.cells),
        )  # fmt: skip

    def largest_cells(self, columns: list[pa.Array], n: int) -> Any:
        """Per row, the bytes of its largest cell without the row key (numpy array)."""
        import numpy as np
        import pyarrow.compute as pc

        largest = np.zeros(n, "int64")
        for values, names in zip(columns, self.name_bytes, strict=True):
            lengths = pc.binary_length(values).fill_null(0).to_numpy(zero_copy_only=False)
            np.maximum(largest, lengths + names + _CELL_OVERHEAD, out=largest)
        return largest

    def check(self, key: bytes, largest_cell: int, put_bytes: int, columns: list[pa.Array], index: int) -> str | None:
        """Why the record at ``index`` is too large for HBase (key, size, limit), or None."""
        shown = key[:60] + (b"..." if len(key) > 60 else b"")
        if len(key) > MAX_ROW_KEY_BYTES:
            return f"row key {shown!r} is {len(key)} bytes; HBase's row key limit is {MAX_ROW_KEY_BYTES}"
        if largest_cell + len(key) > self.cell_bytes:
            for label, values, names in zip(self.labels, columns, self.name_bytes, strict=True):
                value = values[index]
                size = len(key) + names + _CELL_OVERHEAD + (len(value.as_py()) if value.is_valid else 0)
                if size > self.cell_bytes:
                    return (f"row key {shown!r}: cell {label} is {size} bytes; "
                            f"the cell limit (max_cell_bytes) is {self.cell_bytes}")  # fmt: skip
        if put_bytes > self.message_bytes:
            return (f"row key {shown!r}: the row is {put_bytes} bytes in one put; "
                    f"the Thrift request limit (max_request_bytes) is {self.message_bytes}")  # fmt: skip
        return None


def _offsets(batch: pa.RecordBatch) -> list[int]:
    """Kafka offsets of the rows (the later wins a tie), or the row order when the batch has none."""
    if "_hw_offset" in batch.schema.names:
        return [-1 if o is None else o for o in batch.column("_hw_offset").to_pylist()]
    return list(range(batch.num_rows))


def _encode_cells(desc: WriterDescription, batch: pa.RecordBatch) -> tuple[list[pa.Array], list[Any], dict[int, str]]:
    """Cell values per column (binary Arrow arrays, null = no cell), cell timestamps, errors by row."""
    import pyarrow as pa

    errors: dict[int, str] = {}
    columns = []
    for c in desc.cells:
        encoded = encode_column(batch.column(c.column), c.type)
        columns.append(pa.array(encoded.values, pa.binary()))
        for i, msg in encoded.errors.items():
            errors.setdefault(i, f"column {c.column!r}: {msg}")
    versions: list[Any]
    if desc.version and desc.version_type:
        versions, verrors = version_millis(batch.column(desc.version), desc.version_type)
        for i, msg in verrors.items():
            errors.setdefault(i, f"version field {desc.version!r}: {msg}")
    else:
        versions = [CONSTANT_TS] * batch.num_rows
    return columns, versions, errors


def _row_keys(template: RowKeyTemplate, batch: pa.RecordBatch, errors: dict[int, str]) -> list[bytes | None]:
    """Row keys, column-wise when possible, else row by row; a row whose key fails joins ``errors``."""
    fast = encode_keys(template, batch)
    if fast is not None:
        return list(fast)
    fields = template.fields
    keys: list[bytes | None] = []
    for i, values in enumerate(zip(*[batch.column(f).to_pylist() for f in fields], strict=True)):
        if i in errors:
            keys.append(None)
            continue
        try:
            keys.append(template.encode(dict(zip(fields, values, strict=True))))
        except (RowKeyError, CodecError, ValueError, TypeError) as exc:
            errors[i] = str(exc)
            keys.append(None)
    return keys


def _position(batch: pa.RecordBatch, index: int) -> str:
    """``partition 1, offset 40`` of record ``index`` (its Kafka position), or '' without position columns."""
    names = batch.schema.names
    if "_hw_partition" not in names or "_hw_offset" not in names:
        return ""
    return f"partition {batch.column('_hw_partition')[index]}, offset {batch.column('_hw_offset')[index]}"


def _rejection(batch: pa.RecordBatch, index: int, reason: str, message: str) -> dict[str, Any]:
    rec = batch.slice(index, 1).to_pylist()[0]
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
