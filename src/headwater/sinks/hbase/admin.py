"""Table management for the HBase sink: plan the layout from the spec, create it, report differences.

An existing table whose layout differs from the spec is reported, never altered: changing a live
table's families or compression is an operator's decision.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from headwater.errors import NotFoundError, ServiceUnavailable
from headwater.sinks.hbase.layout import salt_split_points
from headwater.sinks.hbase.rowkey import RowKeyTemplate

if TYPE_CHECKING:
    from headwater.sinks.hbase import HBaseSinkConfig
    from headwater.sinks.hbase.thrift2 import Thrift2Client
    from headwater.spec.connections import HBaseConnection

log = logging.getLogger("headwater.sinks.hbase")

_COMPRESSION = {"none": "NONE", "snappy": "SNAPPY", "lz4": "LZ4", "gz": "GZ", "zstd": "ZSTD"}
_BLOOM = {"none": "NONE", "row": "ROW", "rowcol": "ROWCOL"}


@dataclass
class TablePlan:
    """The layout the spec asks for."""

    table: str
    families: dict[str, dict[str, Any]]
    split_points: list[bytes]
    differences: list[str] = field(default_factory=list)
    exists: bool = False

    def render(self) -> str:
        lines = [f"table {self.table} ({'exists' if self.exists else 'to be created'})"]
        for name, fam in self.families.items():
            lines.append(f"  family {name}: " + ", ".join(f"{k}={v}" for k, v in fam.items()))
        if self.split_points:
            lines.append(f"  regions: {len(self.split_points) + 1}, split points: "
                         + " ".join(p.decode("latin-1") for p in self.split_points))  # fmt: skip
        else:
            lines.append("  regions: 1 (no pre-split)")
        lines += [f"  DIFFERS: {d}" for d in self.differences]
        return "\n".join(lines)


def plan(config: HBaseSinkConfig) -> TablePlan:
    """The layout for ``config`` (no I/O)."""
    families = {}
    for name in config.columns:
        f = config.family(name)
        families[name] = {"max_versions": f.max_versions, "ttl": f.ttl, "compression": f.compression,
                          "bloom": f.bloom, "in_memory": f.in_memory}  # fmt: skip
    buckets = RowKeyTemplate.parse(config.row_key).salt_buckets
    splits = salt_split_points(buckets) if buckets and config.pre_split else []
    return TablePlan(config.full_table, families, splits)


def connect(conn: HBaseConnection) -> Thrift2Client:
    from headwater.sinks.hbase.thrift2 import Thrift2Client

    try:
        client = Thrift2Client(conn.host, conn.port, conn.timeout_ms, conn.transport, conn.protocol)
        client.namespaces()
        return client
    except Exception as exc:
        raise ServiceUnavailable(
            f"HBase Thrift2 server not reachable at {conn.host}:{conn.port}: {type(exc).__name__}: {exc}"
        ) from None


def _family_descriptor(client: Thrift2Client, name: str, fam: dict[str, Any]) -> Any:
    t = client.t
    return t.TColumnFamilyDescriptor(
        name=name.encode(), maxVersions=fam["max_versions"], timeToLive=fam["ttl"] or 2147483647,
        compressionType=getattr(t.TCompressionAlgorithm, _COMPRESSION[fam["compression"]]),
        bloomnFilterType=getattr(t.TBloomFilterType, _BLOOM[fam["bloom"]]), inMemory=fam["in_memory"],
    )  # fmt: skip


def compare(client: Thrift2Client, p: TablePlan) -> list[str]:
    """Differences between the live table and the plan."""
    desc = client.describe(p.table)
    live = {c.name.decode(): c for c in desc.columns or []}
    out = []
    for name, fam in p.families.items():
        col = live.get(name)
        if col is None:
            out.append(f"family '{name}' missing (live families: {', '.join(sorted(live))})")
            continue
        if col.maxVersions != fam["max_versions"]:
            out.append(f"family '{name}': max_versions live {col.maxVersions}, spec {fam['max_versions']}")
        want_ttl = fam["ttl"] or 2147483647
        if col.timeToLive != want_ttl:
            out.append(f"family '{name}': ttl live {col.timeToLive}, spec {fam['ttl']}")
    return out


def describe_plan(config: HBaseSinkConfig, conn: HBaseConnection) -> TablePlan:
    """The plan, with whether the table exists and how it differs."""
    p = plan(config)
    with connect(conn) as client:
        p.exists = client.table_exists(p.table)
        if p.exists:
            p.differences = compare(client, p)
    return p


def ensure_table(config: HBaseSinkConfig, conn: HBaseConnection) -> TablePlan:
    """Create namespace and table if missing (when ``create``); report a differing layout."""
    p = plan(config)
    ns = p.table.split(":", 1)[0]
    with connect(conn) as client:
        if ns != "default" and ns not in client.namespaces():
            if not config.create:
                raise NotFoundError(f"sink.table: HBase namespace '{ns}' not found at {conn.host}:{conn.port}")
            client.create_namespace(ns)
            log.info("created HBase namespace %s", ns)
        if client.table_exists(p.table):
            p.exists = True
            p.differences = compare(client, p)
            for d in p.differences:
                log.warning("HBase table %s differs from the spec (left as is): %s", p.table, d)
            return p
        if not config.create:
            raise NotFoundError(f"sink.table: HBase table '{p.table}' not found at {conn.host}:{conn.port}")
        fams = [_family_descriptor(client, n, f) for n, f in p.families.items()]
        client.create_table(p.table, fams, p.split_points)
        log.info("created HBase table %s with %d region(s)", p.table, len(p.split_points) + 1)
    return p
