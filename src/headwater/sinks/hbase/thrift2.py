"""A small client for HBase's Thrift2 interface (``THBaseService``), over thriftpy2.

Why not happybase: it speaks Thrift1, where a write call carries one timestamp for all its rows.
The sink needs a deterministic timestamp per record in one batched call (``putMultiple``), and
table creation with split keys; Thrift2 has both. The IDL is HBase's own ``hbase.thrift``.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Sequence
from functools import cache
from importlib import resources
from types import TracebackType
from typing import Any

DEFAULT_PORT = 9091

# Thrift binary protocol, by hand, for the one hot call (putMultiple): building a TPut and a
# TColumnValue object per cell cost more than the rest of the writer. Field ids are those of
# hbase2.thrift (TPut 1 row, 2 columnValues, 6 durability; TColumnValue 1 family, 2 qualifier,
# 3 value, 4 timestamp). tests/unit/test_thrift2_encoding.py checks the bytes against thriftpy2's
# own serialization of the same objects.
_I32 = struct.Struct(">i").pack
_I64 = struct.Struct(">q").pack
_STOP = b"\x00"


def cell_prefix(family: bytes, qualifier: bytes) -> bytes:
    """The constant head of a binary TColumnValue: family and qualifier fields, then the value's header."""
    return (
        b"\x0b\x00\x01"
        + _I32(len(family))
        + family
        + b"\x0b\x00\x02"
        + _I32(len(qualifier))
        + qualifier
        + b"\x0b\x00\x03"
    )


def cell_suffix(timestamp: int) -> bytes:
    """The tail of a binary TColumnValue after the value: its timestamp field and the struct's stop."""
    return b"\x0a\x00\x04" + _I64(timestamp) + _STOP


def encode_put(row: bytes, cells: Sequence[bytes], durability: int) -> bytes:
    """A binary TPut from encoded cells (``cell_prefix + len + value + cell_suffix`` each)."""
    return b"".join((b"\x0b\x00\x01", _I32(len(row)), row, b"\x0f\x00\x02\x0c", _I32(len(cells)), *cells,
                     b"\x08\x00\x06", _I32(durability), _STOP))  # fmt: skip


def encode_cell(prefix: bytes, value: bytes, suffix: bytes) -> bytes:
    """One binary TColumnValue."""
    return prefix + _I32(len(value)) + value + suffix


def encode_puts(rows: Sequence[bytes], columns: Sequence[tuple[bytes, Sequence[bytes | None] | Any]],
                timestamps: Sequence[int], durability: int) -> list[bytes]:  # fmt: skip
    """Binary TPuts for many rows at once, with Arrow kernels: ``encode_put`` row by row, column-wise.

    ``columns`` holds (``cell_prefix``, value per row or None for no cell, as a list or a binary Arrow
    array); ``timestamps`` one per row.
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    n = len(rows)
    stamps = _big_endian(np.asarray(timestamps, dtype=np.int64), 8)
    suffix = pc.binary_join_element_wise(b"\x0a\x00\x04", stamps, _STOP, b"")
    cells: list[pa.Array] = []
    counts = np.zeros(n, dtype=np.int32)
    for prefix, values in columns:
        array = values if isinstance(values, pa.Array) else pa.array(values, pa.binary())
        lengths = _big_endian(pc.binary_length(array).fill_null(0).to_numpy().astype(np.int32), 4)
        cells.append(pc.binary_join_element_wise(prefix, lengths, array, suffix, b"").fill_null(b""))
        counts += array.is_valid().to_numpy(zero_copy_only=False)
    keys = pa.array(rows, pa.binary())
    key_lengths = _big_endian(pc.binary_length(keys).to_numpy().astype(np.int32), 4)
    head = pc.binary_join_element_wise(b"\x0b\x00\x01", key_lengths, keys, b"\x0f\x00\x02\x0c",
                                       _big_endian(counts, 4), b"")  # fmt: skip
    tail = b"\x08\x00\x06" + _I32(durability) + _STOP
    puts: list[bytes] = pc.binary_join_element_wise(head, *cells, tail, b"").to_pylist()
    return puts


def _big_endian(numbers: Any, width: int) -> Any:
    """A binary Arrow array of each number as ``width`` big-endian bytes (two's complement)."""
    import pyarrow as pa

    raw = pa.py_buffer(numbers.astype(f">i{width}").tobytes())
    return pa.FixedSizeBinaryArray.from_buffers(pa.binary(width), len(numbers), [None, raw]).cast(pa.binary())


def put_multiple_args(table: str, puts: Sequence[bytes]) -> bytes:
    """The binary ``putMultiple_args`` struct: table name and the list of encoded TPuts."""
    name = table.encode()
    return b"".join((b"\x0b\x00\x01", _I32(len(name)), name, b"\x0f\x00\x02\x0c", _I32(len(puts)), *puts, _STOP))


def put_object(row: bytes, cells: Sequence[tuple[bytes, bytes, bytes]], timestamp: int, durability: int) -> Any:
    """The same TPut as a thriftpy2 object, for protocols other than binary (compact)."""
    t = idl()
    values = [t.TColumnValue(family=f, qualifier=q, value=v, timestamp=timestamp) for f, q, v in cells]
    return t.TPut(row=row, columnValues=values, durability=durability)


@cache
def idl() -> Any:
    """The loaded Thrift2 IDL module (parsed once per process)."""
    import thriftpy2

    path = resources.files("headwater.sinks.hbase") / "hbase2.thrift"
    return thriftpy2.load(str(path), module_name="hbase2_thrift")


class Thrift2Client:
    """One connection to a Thrift2 server. Not thread-safe; open one per partition/task."""

    def __init__(self, host: str, port: int = DEFAULT_PORT, timeout_ms: int = 60000,
                 transport: str = "buffered", protocol: str = "binary") -> None:  # fmt: skip
        from thriftpy2.protocol import TBinaryProtocolFactory, TCompactProtocolFactory
        from thriftpy2.rpc import make_client
        from thriftpy2.transport import TBufferedTransportFactory, TFramedTransportFactory

        self.address = f"{host}:{port}"
        self.binary = protocol != "compact"
        self.t = idl()
        self._client = make_client(
            self.t.THBaseService, host, port, timeout=timeout_ms,
            trans_factory=TFramedTransportFactory() if transport == "framed" else TBufferedTransportFactory(),
            proto_factory=TCompactProtocolFactory() if protocol == "compact" else TBinaryProtocolFactory(),  # type: ignore[no-untyped-call]
        )  # fmt: skip

    def __enter__(self) -> Thrift2Client:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:  # fmt: skip
        self.close()

    def close(self) -> None:
        self._client.close()

    # --- tables -------------------------------------------------------------------------------
    def table_name(self, name: str) -> Any:
        ns, _, qual = name.rpartition(":")
        return self.t.TTableName(ns=(ns or "default").encode(), qualifier=qual.encode())

    def table_names(self, namespace: str = "default") -> list[str]:
        return [t.qualifier.decode() for t in self._client.getTableNamesByNamespace(namespace)]

    def namespaces(self) -> list[str]:
        return [n.name for n in self._client.listNamespaceDescriptors()]

    def create_namespace(self, name: str) -> None:
        self._client.createNamespace(self.t.TNamespaceDescriptor(name=name))

    def table_exists(self, name: str) -> bool:
        return bool(self._client.tableExists(self.table_name(name)))

    def table_enabled(self, name: str) -> bool:
        return bool(self._client.isTableEnabled(self.table_name(name)))

    def describe(self, name: str) -> Any:
        return self._client.getTableDescriptor(self.table_name(name))

    def modify_table(self, desc: Any) -> None:
        self._client.modifyTable(desc)

    def create_table(self, name: str, families: list[Any], split_keys: list[bytes] | None = None) -> None:
        desc = self.t.TTableDescriptor(tableName=self.table_name(name), columns=families)
        self._client.createTable(desc, split_keys or [])

    def delete_table(self, name: str) -> None:
        tn = self.table_name(name)
        if self._client.isTableEnabled(tn):
            self._client.disableTable(tn)
        self._client.deleteTable(tn)

    # --- data ---------------------------------------------------------------------------------
    def put_multiple(self, table: str, puts: list[Any]) -> None:
        self._client.putMultiple(table.encode(), puts)

    def put_multiple_encoded(self, table: str, puts: Sequence[bytes]) -> None:
        """``putMultiple`` with TPuts already in binary form (:func:`encode_put`); binary protocol only."""
        from thriftpy2.thrift import TMessageType

        c = self._client
        if not self.binary:
            raise ValueError("put_multiple_encoded needs the binary protocol")
        c._oprot.write_message_begin("putMultiple", TMessageType.CALL, c._seqid)
        c._oprot.trans.write(put_multiple_args(table, puts))
        c._oprot.write_message_end()
        c._oprot.trans.flush()
        c._recv("putMultiple")

    def get_multiple(self, table: str, gets: list[Any]) -> list[Any]:
        return list(self._client.getMultiple(table.encode(), gets))

    def scan(self, table: str, scan: Any, batch: int = 500) -> Iterator[Any]:
        """Yield TResults of ``scan`` in key order, ``batch`` rows per round trip."""
        scanner = self._client.openScanner(table.encode(), scan)
        try:
            while True:
                rows = self._client.getScannerRows(scanner, batch)
                if not rows:
                    return
                yield from rows
        finally:
            self._client.closeScanner(scanner)
