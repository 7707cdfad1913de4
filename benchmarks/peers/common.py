"""What every peer shares: the bench spec's HBase layout written by hand, a Thrift2 client, progress lines.

The peers write exactly what headwater's HBase sink writes for the bench spec (``pipeline_bench.SPEC``):

- row key ``{customer_id}|{order_id:long}``: the customer id in UTF-8, ``|``, then the order id as
  8 bytes big-endian with the sign bit flipped (``headwater.sinks.hbase.rowkey``);
- family ``d``: amount, quantity, status, updated_at, dt as text (numbers in decimal, the timestamp as
  ISO-8601 in UTC with microseconds and ``+00:00``); family ``x``: items, attrs as compact JSON with
  sorted keys (``headwater.sinks.hbase.codec``); a null value writes no cell;
- every cell at the record's version, ``updated_at`` in epoch milliseconds.

A record without ``customer_id`` (a row-key field) is skipped and counted: headwater dead-letters it.

Per-cell timestamps need HBase's Thrift2 API (``putMultiple`` of ``TPut``s with their own
timestamps): happybase speaks Thrift1, whose batch calls carry one timestamp for the whole batch. So
the peers call Thrift2 with thriftpy2 (happybase's own Thrift library) and HBase's published IDL, in
batches of ``BATCH`` puts, as an engineer would.

Each peer prints ``progress <written> <skipped> <monotonic seconds>`` on stdout after every flushed
batch, for the orchestrator (``benchmarks/peers_bench.py``) to time it from outside.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

BATCH = 1000
IDL = Path(__file__).resolve().parents[2] / "src" / "headwater" / "sinks" / "hbase" / "hbase2.thrift"
_SIGN = 1 << 63
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = datetime.resolution * 1000  # one millisecond


def args(description: str) -> argparse.Namespace:
    """The command line every peer takes."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--bootstrap", required=True, help="Kafka bootstrap servers")
    ap.add_argument("--topic", required=True)
    ap.add_argument("--group", default=f"peer-{time.time_ns()}")
    ap.add_argument("--host", default="127.0.0.1", help="HBase Thrift2 host")
    ap.add_argument("--port", type=int, required=True, help="HBase Thrift2 port")
    ap.add_argument("--table", required=True, help="HBase table (namespace:name), created beforehand")
    return ap.parse_args()


def row_key(customer_id: str, order_id: int) -> bytes:
    """``{customer_id}|{order_id:long}`` as headwater encodes it."""
    return customer_id.encode() + b"|" + (order_id + _SIGN).to_bytes(8, "big")


def cells(r: dict[str, Any]) -> tuple[list[tuple[bytes, bytes, bytes]], int]:
    """The cells of one parsed JSON record and their timestamp (epoch ms of updated_at)."""
    ts = datetime.fromisoformat(r["updated_at"]).astimezone(UTC)
    out = []
    for qualifier, value in (
        (b"amount", r.get("amount")),
        (b"quantity", None if r.get("quantity") is None else str(r["quantity"])),
        (b"status", r.get("status")),
        (b"updated_at", ts.isoformat(timespec="microseconds")),
        (b"dt", r.get("dt")),
    ):
        if value is not None:
            out.append((b"d", qualifier, value.encode()))
    for qualifier, obj in ((b"items", r.get("items")), (b"attrs", r.get("attrs"))):
        if obj is not None:
            text = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
            out.append((b"x", qualifier, text.encode()))
    return out, (ts - _EPOCH) // _MS


@cache
def idl() -> Any:
    """HBase's Thrift2 IDL, loaded with thriftpy2."""
    import thriftpy2

    return thriftpy2.load(str(IDL), module_name="peer_hbase2_thrift")


def put(row: bytes, row_cells: list[tuple[bytes, bytes, bytes]], ts: int) -> Any:
    """One Thrift2 TPut with every cell at ``ts``."""
    t = idl()
    return t.TPut(row=row, columnValues=[t.TColumnValue(family=f, qualifier=q, value=v, timestamp=ts)
                                         for f, q, v in row_cells])  # fmt: skip


def put_of(r: dict[str, Any]) -> Any | None:
    """The TPut of one parsed record, None when its row key cannot be built."""
    if r.get("customer_id") is None or r.get("order_id") is None:
        return None
    row_cells, ts = cells(r)
    return put(row_key(r["customer_id"], r["order_id"]), row_cells, ts)


def client(host: str, port: int) -> Any:
    """A Thrift2 client (buffered transport, binary protocol: the stack's Thrift2 server settings)."""
    from thriftpy2.rpc import make_client

    return make_client(idl().THBaseService, host, port, timeout=120_000)


def put_all(hbase: Any, table: str, puts: list[Any]) -> None:
    """``putMultiple`` in calls of at most BATCH puts."""
    name = table.encode()
    for i in range(0, len(puts), BATCH):
        hbase.putMultiple(name, puts[i : i + BATCH])


def progress(written: int, skipped: int) -> None:
    """One progress line for the orchestrator."""
    sys.stdout.write(f"progress {written} {skipped} {time.monotonic():.3f}\n")
    sys.stdout.flush()
