"""A small client for HBase's Thrift2 interface (``THBaseService``), over thriftpy2.

Why not happybase: it speaks Thrift1, where a write call carries one timestamp for all its rows.
The sink needs a deterministic timestamp per record in one batched call (``putMultiple``), and
table creation with split keys; Thrift2 has both. The IDL is HBase's own ``hbase.thrift``.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import cache
from importlib import resources
from types import TracebackType
from typing import Any

DEFAULT_PORT = 9091


@cache
def idl() -> Any:
    """The loaded Thrift2 IDL module (parsed once per process)."""
    import thriftpy2

    path = resources.files("headwater.sinks") / "hbase2.thrift"
    return thriftpy2.load(str(path), module_name="hbase2_thrift")


class Thrift2Client:
    """One connection to a Thrift2 server. Not thread-safe; open one per partition/task."""

    def __init__(self, host: str, port: int = DEFAULT_PORT, timeout_ms: int = 60000,
                 transport: str = "buffered", protocol: str = "binary") -> None:  # fmt: skip
        from thriftpy2.protocol import TBinaryProtocolFactory, TCompactProtocolFactory
        from thriftpy2.rpc import make_client
        from thriftpy2.transport import TBufferedTransportFactory, TFramedTransportFactory

        self.address = f"{host}:{port}"
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

    def describe(self, name: str) -> Any:
        return self._client.getTableDescriptor(self.table_name(name))

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
