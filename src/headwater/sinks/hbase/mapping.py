"""The column mapping of an HBase sink, resolved once and kept with the table.

The process stage resolves, at start, which record column goes to which ``family:qualifier`` and with
which value codec (from the spec's ``columns`` and the types the records have *after* the transforms:
a ``total`` computed in SQL is a decimal). The writer encodes with it, and the stage stores it on the
HBase table itself as the table attribute ``headwater.columns`` (JSON), so the query side (``headwater
query``, ``headwater serve``) decodes every cell with the type it was written with, without Spark and
without being told types by hand.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from headwater.sinks.hbase.thrift2 import Thrift2Client
    from headwater.sinks.hbase.writer import CellSpec

log = logging.getLogger("headwater.sinks.hbase")

ATTRIBUTE = b"headwater.columns"


def column_types(cells: list[CellSpec]) -> dict[str, str]:
    """Record column -> value codec, as the writer encodes them."""
    return {c.column: c.type for c in cells}


def store(client: Thrift2Client, table: str, types: dict[str, str]) -> bool:
    """Keep ``types`` on ``table`` (a table attribute); returns whether it changed.

    Unchanged: nothing is sent (altering a table reopens its regions, so a restart does not).
    """
    desc = client.describe(table)
    attributes = dict(desc.attributes or {})
    value = json.dumps(dict(sorted(types.items())), separators=(",", ":")).encode()
    if attributes.get(ATTRIBUTE) == value:
        return False
    attributes[ATTRIBUTE] = value
    desc.attributes = attributes
    client.modify_table(desc)
    log.info("HBase table %s: column types stored for the query side (%d columns)", table, len(types))
    return True


def load(client: Thrift2Client, table: str) -> dict[str, str]:
    """The column types the pipeline stored on ``table``; {} when none (a table headwater did not write yet)."""
    raw: Any = (client.describe(table).attributes or {}).get(ATTRIBUTE)
    if not raw:
        return {}
    try:
        types = json.loads(raw)
    except ValueError:
        log.warning("HBase table %s: attribute %s is not JSON; ignored", table, ATTRIBUTE.decode())
        return {}
    return {str(k): str(v) for k, v in types.items()} if isinstance(types, dict) else {}
