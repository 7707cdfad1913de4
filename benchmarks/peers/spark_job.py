"""Peer: a hand-written PySpark Structured Streaming job, Kafka -> parse JSON -> HBase.

``--mode competent``: what a good engineer writes in a day. Spark parses the JSON with the schema
(``from_json``) and formats the cells in SQL; ``foreachBatch`` hands each micro-batch to
``mapInArrow``, where every task opens one Thrift2 connection and writes ``putMultiple`` calls of
1,000 puts. ``--mode naive``: the same parse, then ``foreachPartition`` over Rows with one ``put``
call per row.

Two floors write nothing; they bound what any Spark job can do on the machine. ``--mode floor-read``
reads every record from Kafka and hashes its key and value; ``--mode floor-parse`` also parses the JSON
and formats the cells in SQL, as the competent job does, and hashes every cell. Each micro-batch is one
aggregate (row count, sum of the hashes) collected to the driver, all in the JVM. peers_bench starts
the floors with headwater's driver options (its class-data archive), so they start no slower than it.

Runnable alone (the Kafka connector jars as a comma-separated list):
    python benchmarks/peers/spark_job.py --mode competent --jars A.jar,B.jar --bootstrap HOST:PORT \
        --topic T --port THRIFT2_PORT --table ns:t
It runs until killed, printing a progress line after every micro-batch (see common.py).
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import common

SCHEMA = ("order_id BIGINT, customer_id STRING, amount STRING, quantity INT, status STRING, updated_at TIMESTAMP, "
          "items ARRAY<STRUCT<sku:STRING,qty:INT>>, attrs MAP<STRING,STRING>, dt STRING")  # fmt: skip
# The cells in SQL: JSON with sorted keys (qty before sku), the timestamp as ISO-8601 with microseconds.
CELLS = [
    "r.customer_id AS customer_id", "r.order_id AS order_id", "r.amount AS amount",
    "CAST(r.quantity AS STRING) AS quantity", "r.status AS status",
    "date_format(r.updated_at, \"yyyy-MM-dd'T'HH:mm:ss.SSSSSSxxx\") AS updated_at", "r.dt AS dt",
    "to_json(transform(r.items, i -> named_struct('qty', i.qty, 'sku', i.sku))) AS items",
    "to_json(r.attrs) AS attrs", "unix_millis(r.updated_at) AS ts",
]  # fmt: skip
_D = (b"amount", b"quantity", b"status", b"updated_at", b"dt")


def _put(row: tuple[Any, ...]) -> Any:
    cust, oid, amount, qty, status, upd, dt, items, attrs, ts = row
    cells = [(b"d", q, v.encode()) for q, v in zip(_D, (amount, qty, status, upd, dt), strict=True) if v is not None]
    cells += [(b"x", q, v.encode()) for q, v in ((b"items", items), (b"attrs", attrs)) if v is not None]
    return common.put(common.row_key(cust, oid), cells, ts)


def competent_writer(host: str, port: int, table: str) -> Any:
    """The mapInArrow function: batched putMultiple per task; yields (written, skipped)."""

    def write(batches: Iterator[Any]) -> Iterator[Any]:
        import pyarrow as pa

        hbase = common.client(host, port)
        written = skipped = 0
        for batch in batches:
            columns = [batch.column(i).to_pylist() for i in range(batch.num_columns)]
            puts = []
            for row in zip(*columns, strict=True):
                if row[0] is None:
                    skipped += 1
                else:
                    puts.append(_put(row))
            common.put_all(hbase, table, puts)
            written += len(puts)
        hbase.close()
        yield pa.RecordBatch.from_pydict({"written": [written], "skipped": [skipped]})

    return write


def naive_writer(host: str, port: int, table: str, written: Any, skipped: Any) -> Any:
    """The foreachPartition function: one put call per row."""

    def write(rows: Iterator[Any]) -> None:
        hbase = common.client(host, port)
        name = table.encode()
        for row in rows:
            if row.customer_id is None:
                skipped.add(1)
                continue
            hbase.put(name, _put(tuple(row)))
            written.add(1)
        hbase.close()

    return write


def main() -> None:
    import argparse

    from pyspark.sql import SparkSession

    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--mode", choices=["competent", "naive", "floor-read", "floor-parse"], required=True)
    pre.add_argument("--jars", required=True)
    pre.add_argument("--max-offsets", type=int, default=100_000)
    pre.add_argument("--java-options", default="", help="the driver JVM's extra options (the floors: headwater's)")
    own, rest = pre.parse_known_args()
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # the Python workers: this interpreter and its packages
    here = str(Path(common.__file__).parent)  # and this folder, for `common` (its IDL path is relative to it)
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (here, os.environ.get("PYTHONPATH")) if p)
    sys.argv = [sys.argv[0], *rest]
    a = common.args(__doc__ or "")
    spark = (
        SparkSession.builder.master("local[2]").appName(f"peer-spark-{own.mode}")
        .config("spark.jars", own.jars).config("spark.driver.memory", "1g")
        .config("spark.sql.shuffle.partitions", "2").config("spark.ui.enabled", "false")
        .config("spark.sql.session.timeZone", "UTC").config("spark.sql.jsonGenerator.ignoreNullFields", "false")
        .config("spark.driver.bindAddress", "127.0.0.1").config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.extraJavaOptions", own.java_options)
        .getOrCreate()
    )  # fmt: skip
    spark.sparkContext.setLogLevel("WARN")
    raw = (
        spark.readStream.format("kafka").option("kafka.bootstrap.servers", a.bootstrap).option("subscribe", a.topic)
        .option("startingOffsets", "earliest").option("maxOffsetsPerTrigger", own.max_offsets).load()
    )  # fmt: skip
    rows = raw.selectExpr(f"from_json(CAST(value AS STRING), '{SCHEMA}') AS r").selectExpr(*CELLS)
    totals = [0, 0]
    if own.mode.startswith("floor"):
        if own.mode == "floor-read":
            rows = raw.select("key", "value")

        def each(df: Any, _batch_id: int) -> None:
            totals[0] += df.selectExpr("count(*)", "sum(hash(*))").collect()[0][0]
            common.progress(*totals)
    elif own.mode == "competent":
        write = competent_writer(a.host, a.port, a.table)

        def each(df: Any, _batch_id: int) -> None:
            out = df.mapInArrow(write, "written long, skipped long").groupBy().sum().collect()[0]
            totals[0] += out[0] or 0
            totals[1] += out[1] or 0
            common.progress(*totals)
    else:
        written, skipped = spark.sparkContext.accumulator(0), spark.sparkContext.accumulator(0)
        write = naive_writer(a.host, a.port, a.table, written, skipped)

        def each(df: Any, _batch_id: int) -> None:
            df.foreachPartition(write)
            common.progress(written.value, skipped.value)

    checkpoint = tempfile.mkdtemp(prefix=f"peer-spark-{own.mode}-")
    query = (rows.writeStream.foreachBatch(each).option("checkpointLocation", checkpoint)
             .trigger(processingTime="1 second").start())  # fmt: skip
    query.awaitTermination()


if __name__ == "__main__":
    main()
