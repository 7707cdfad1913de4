"""The HBase sink: everything headwater knows about HBase lives in this package.

- :mod:`.sink`: the config model and the driver side (:class:`HBaseSink`);
- :mod:`.rowkey`: declarative row keys (salt, hash, fixed-width binary parts);
- :mod:`.codec`, :mod:`.arrow_codec`, :mod:`.arrow_json`: cell values, row by row and column-wise;
- :mod:`.writer`: the executor side (Arrow batches in, ``putMultiple`` calls out);
- :mod:`.admin`, :mod:`.layout`: tables, families and split points;
- :mod:`.thrift2` and ``hbase2.thrift``: the Thrift2 client.
"""

from headwater.sinks.hbase.sink import FamilySpec, HBaseSink, HBaseSinkConfig, codec_type

__all__ = ["FamilySpec", "HBaseSink", "HBaseSinkConfig", "codec_type"]
