"""Real-time serving over the HBase table a pipeline writes.

:class:`~headwater.serving.reader.TableReader` reads rows back (point get, prefix scan with
pagination, latest-N per entity, freshness) without Spark; :mod:`headwater.serving.api` exposes it
over HTTP (``headwater serve``) and :mod:`headwater.cli.serve` on the command line (``headwater query``).
"""

from headwater.serving.reader import (
    CellDecodeError,
    InvalidRequest,
    Row,
    TableReader,
    decode_page_token,
    encode_page_token,
    hbase_sink,
    jsonable,
    type_of_ddl,
    types_from_schema,
)

__all__ = [
    "CellDecodeError",
    "InvalidRequest",
    "Row",
    "TableReader",
    "decode_page_token",
    "encode_page_token",
    "hbase_sink",
    "jsonable",
    "type_of_ddl",
    "types_from_schema",
]
