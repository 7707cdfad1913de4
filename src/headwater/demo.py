"""Deterministic sample data for the demo and the tests: a raw orders table in Hive.

``demo.orders_raw`` is partitioned by day (``dt``) and keeps ``amount`` as text, as landing tables
often do. Generated in Spark SQL from ``range()`` with hash-based values, so any row range is
reproducible and cheap. A few rows are malformed on purpose, at known ids:

- ``amount`` is ``'N/A'`` where ``id % 40000 == 123`` and ``'12,50'`` where ``id % 40000 == 321``;
- ``customer_id`` is null where ``id % 50000 == 777``;
- ``status`` is ``'test'`` for about 5% of rows (filtered out by the example pipeline).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

EPOCH_MS = 1_735_689_600_000  # 2025-01-01T00:00:00Z
ROWS_PER_DAY = 50_000


def orders_sql(start: int, end: int) -> str:
    """A SELECT producing raw order rows for ids in [start, end)."""
    return f"""
    SELECT
      id AS order_id,
      CASE WHEN id % 50000 = 777 THEN NULL
           ELSE concat('c', lpad(CAST(pmod(hash(id, 1), 5000) AS STRING), 5, '0')) END AS customer_id,
      CASE WHEN id % 40000 = 123 THEN 'N/A'
           WHEN id % 40000 = 321 THEN '12,50'
           ELSE CAST(CAST(pmod(hash(id, 2), 100000) / 100.0 AS DECIMAL(12, 2)) AS STRING) END AS amount,
      CAST(pmod(hash(id, 3), 9) + 1 AS INT) AS quantity,
      CASE WHEN pmod(hash(id, 4), 20) = 0 THEN 'test'
           ELSE element_at(array('new', 'paid', 'shipped'), CAST(pmod(hash(id, 4), 3) + 1 AS INT)) END AS status,
      timestamp_micros({EPOCH_MS} * 1000 + id * {86_400_000_000 // ROWS_PER_DAY} + pmod(hash(id, 7), 1000)) AS updated_at,
      array(named_struct('sku', concat('sku-', CAST(pmod(hash(id, 5), 100) AS STRING)), 'qty', CAST(1 AS INT)),
            named_struct('sku', concat('sku-', CAST(pmod(hash(id, 6), 100) AS STRING)),
                         'qty', CAST(pmod(id, 3) + 1 AS INT))) AS items,
      map('channel', element_at(array('web', 'app', 'store'), CAST(pmod(hash(id, 8), 3) + 1 AS INT)),
          'coupon', CASE WHEN id % 7 = 0 THEN 'SPRING' ELSE NULL END) AS attrs,
      date_format(timestamp_micros({EPOCH_MS} * 1000 + id * {86_400_000_000 // ROWS_PER_DAY}), 'yyyy-MM-dd') AS dt
    FROM range({start}, {end})
    """


def create_orders(spark: SparkSession, table: str, rows: int, start: int = 0) -> None:
    """(Re)create ``table`` with ``rows`` orders starting at id ``start``."""
    db = table.split(".")[0]
    spark.sql(f"CREATE DATABASE IF NOT EXISTS {db}")
    spark.sql(f"DROP TABLE IF EXISTS {table}")
    spark.sql(
        f"""CREATE TABLE {table} (order_id BIGINT, customer_id STRING, amount STRING, quantity INT,
        status STRING, updated_at TIMESTAMP, items ARRAY<STRUCT<sku:STRING,qty:INT>>,
        attrs MAP<STRING,STRING>) PARTITIONED BY (dt STRING) STORED AS PARQUET"""
    )
    append_orders(spark, table, start, start + rows)


def append_orders(spark: SparkSession, table: str, start: int, end: int) -> None:
    """Insert orders with ids in [start, end) (dynamic partitions by day)."""
    spark.sql("SET hive.exec.dynamic.partition.mode=nonstrict")
    spark.sql(f"INSERT INTO {table} PARTITION (dt) {orders_sql(start, end)}")


def malformed_ids(start: int, end: int) -> dict[int, str]:
    """Ids in [start, end) that the example pipeline must dead-letter, with the reason code."""
    out = {}
    for i in range(start, end):
        if i % 40000 in (123, 321):
            out[i] = "type_mismatch"
        elif i % 50000 == 777:
            out[i] = "missing_field"
    return out
