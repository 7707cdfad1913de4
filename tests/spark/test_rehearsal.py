"""The idle rehearsal's synthetic records fit the schema, and the HBase sink rehearses without a server."""

from __future__ import annotations

from typing import Any

import pytest

from headwater.sinks.hbase.sink import HBaseSink, HBaseSinkConfig
from headwater.spec.connections import HBaseConnection
from headwater.streaming import decode as dec
from headwater.streaming.warm import synthetic_batch

pytestmark = pytest.mark.spark

SCHEMA = (
    "order_id bigint, customer_id string, amount decimal(12,2), tiny decimal(3,3), quantity int, small smallint, "
    "b tinyint, ratio float, score double, paid boolean, day date, updated_at timestamp, local timestamp_ntz, "
    "blob binary, items array<struct<sku:string,qty:int>>, attrs map<string,string>, "
    "address struct<city:string,zip:int>"
)


def _decoded(spark: Any, n: int, key: list[str], kafka_fields: dict[str, str] | None = None) -> Any:
    from pyspark.sql.types import StructType

    schema = dec.with_kafka_fields(StructType.fromDDL(SCHEMA), kafka_fields or {})
    decoder = dec.RecordDecoder(schema, ["order_id", "customer_id"], bool(key), kafka_fields or {})
    return decoder, decoder.decode(synthetic_batch(spark, decoder, "orders", key, n))


def test_every_synthetic_record_decodes_with_every_field_set(spark: Any) -> None:
    decoder, decoded = _decoded(spark, 500, ["customer_id", "order_id"])
    rows = decoded.collect()
    assert len(rows) == 500
    assert [r[dec.ERROR_DETAIL] for r in rows if r[dec.ERROR] is not None] == []
    for name in decoder.schema.fieldNames():
        assert all(r[name] is not None for r in rows), f"{name} is null in a synthetic record"
    assert len({r["order_id"] for r in rows}) == 500  # distinct records, not one repeated
    assert {r["_hw_partition"] for r in rows} == set(range(spark.sparkContext.defaultParallelism))


def test_fields_from_the_kafka_record_are_filled_from_it(spark: Any) -> None:
    _, decoded = _decoded(spark, 10, [], {"produced_at": "timestamp"})
    rows = decoded.collect()
    assert all(r[dec.ERROR] is None and r["produced_at"] is not None for r in rows)


def test_the_hbase_sink_rehearses_without_a_server(spark: Any) -> None:
    # Port 1 on this host: nothing listens; a write would fail after its retries, a rehearsal never connects.
    conn = type("Conns", (), {"hbase": HBaseConnection(host="127.0.0.1", port=1, timeout_ms=500)})()
    sink = HBaseSink(HBaseSinkConfig(table="t:orders", row_key="{salt(customer_id, 4)}|{order_id:long}",
                                     columns={"d": ["amount", "updated_at", "items"]}, version="updated_at",
                                     retries=0), conn)  # fmt: skip
    decoder, decoded = _decoded(spark, 2000, ["order_id"])
    good = decoder.good(decoded)
    sink.check(good.schema)
    sink.rehearse(good)
    with pytest.raises(Exception, match="service not reachable"):
        sink.write(good.limit(5))
