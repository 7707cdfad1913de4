"""Throughput of each transform relative to a pass-through, same data, same Spark engine, one run.

Two modes, both ending in Spark's `noop` sink, so the figure is the transform's cost without HBase:

* ``batch`` (default): the decoded demo orders, cached in memory; medians of 3 interleaved
  repetitions. Stateful transforms (dedupe, window) run their batch equivalent (the watermark is a
  no-op in batch mode).
* ``stream``: a streaming query per transform, as the process stage plans it: Kafka source (the
  orders as JSON records, produced once), headwater's decode, the transform, then the sink
  (``update`` mode for the window), read from the earliest offset with a fresh checkpoint and an
  available-now trigger in micro-batches of ``--batch`` records. Dedupe and window keep real state.
  Pass-through = Kafka + decode alone.

Prints figures and ratios; asserts nothing.

Usage: .venv/bin/python benchmarks/transforms_bench.py [--rows 300000] [--mode batch|stream] [--batch 100000]
(needs the local stack: the metastore, and Kafka for ``stream``)
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

TRANSFORMS = {
    "sql": {"type": "sql", "query": "SELECT *, amount * quantity AS total FROM input"},
    "select": {"type": "select", "columns": ["order_id", "customer_id", "amount", "updated_at"], "cast": {"order_id": "string"}},
    "filter": {"type": "filter", "where": "status <> 'test'"},
    "dedupe": {"type": "dedupe", "keys": ["customer_id"], "event_time": "updated_at", "within": "1 hour"},
    "window": {"type": "window", "event_time": "updated_at", "size": "1 hour", "watermark": "1 hour",
               "group_by": ["customer_id"], "aggregates": {"total": "sum(amount)", "n": "count(*)"}},
    "enrich": {"type": "enrich", "table": "bench.customers", "on": ["customer_id"], "columns": ["segment"]},
    "python": {"type": "python", "function": "udfs:identity"},
}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=300_000)
    ap.add_argument("--mode", choices=["batch", "stream"], default="batch")
    ap.add_argument("--batch", type=int, default=100_000, help="records per micro-batch (stream mode)")
    args = ap.parse_args()

    from headwater import plugins
    from headwater.demo import orders_sql
    from headwater.stack import Stack, StackConfig
    from headwater.stack.spark import build_session

    cfg = StackConfig.from_env()
    Stack(cfg).up()
    from headwater.stack.jars import spark_kafka_jars

    spark = build_session("bench-transforms", master="local[2]", metastore_uri=cfg.metastore_uri,
                          warehouse_dir=f"file://{cfg.warehouse_dir}", jars=spark_kafka_jars(cfg),
                          conf={"spark.executorEnv.PYTHONPATH": str(Path(__file__).resolve().parent)})  # fmt: skip
    spark.sql("CREATE DATABASE IF NOT EXISTS bench")
    spark.sql("DROP TABLE IF EXISTS bench.customers")
    spark.sql("CREATE TABLE bench.customers STORED AS PARQUET AS SELECT concat('c', lpad(CAST(id AS STRING), 5, '0')) "
              "AS customer_id, element_at(array('gold','silver','bronze'), CAST(id % 3 + 1 AS INT)) AS segment "
              "FROM range(5000)")  # fmt: skip
    df = spark.sql(orders_sql(0, args.rows)).withColumn("amount", __import__("pyspark.sql.functions").sql.functions
                                                         .expr("try_cast(amount AS decimal(12,2))")).cache()  # fmt: skip
    df.count()
    built = {}
    for name, conf in TRANSFORMS.items():
        cls = plugins.get("transform", conf["type"])
        built[name] = cls(cls.Config.model_validate(conf))
    if args.mode == "stream":
        streaming(spark, cfg, df, built, args.rows, args.batch)
        spark.stop()
        return

    def timed(frame) -> float:  # type: ignore[no-untyped-def]
        t0 = time.perf_counter()
        frame.write.format("noop").mode("overwrite").save()
        return time.perf_counter() - t0

    times: dict[str, list[float]] = {"pass-through": [], **{n: [] for n in built}}
    timed(df)  # warm-up
    for _ in range(3):
        times["pass-through"].append(timed(df))
        for name, t in built.items():
            # dropDuplicatesWithinWatermark exists only for streams; its batch equivalent is dropDuplicates.
            out = df.dropDuplicates(t.config.keys) if name == "dedupe" else t.apply(df)
            times[name].append(timed(out))
    base = statistics.median(times["pass-through"])
    print(f"\n{args.rows:,} rows, batch mode, noop sink, median of 3 (2 cores):")
    print(f"  {'transform':<14}{'rows/s':>12}{'ratio to pass-through':>24}")
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"  {name:<14}{args.rows / med:>12,.0f}{base / med:>24.2f}")
    spark.stop()


def streaming(spark, cfg, df, built, rows: int, batch: int) -> None:  # type: ignore[no-untyped-def]
    """One streaming query per transform over the same Kafka topic; prints rows/s and ratios."""
    import tempfile

    from pyspark.sql import functions as F

    from headwater import kafka
    from headwater.spec.connections import KafkaConnection
    from headwater.streaming import decode as dec
    from headwater.streaming import observe

    conn = KafkaConnection(bootstrap_servers=cfg.kafka_bootstrap)
    topic = f"bench.transforms.{uuid.uuid4().hex[:8]}"
    kafka.ensure_topic(conn, topic, partitions=2)
    records = df.select(F.col("order_id").cast("string").alias("key"), F.to_json(F.struct(*df.columns)).alias("value"))
    records.write.format("kafka").option("kafka.bootstrap.servers", cfg.kafka_bootstrap).option("topic", topic).save()
    schema = df.schema

    def run(name: str, transform) -> float:  # type: ignore[no-untyped-def]
        source = (spark.readStream.format("kafka").option("kafka.bootstrap.servers", cfg.kafka_bootstrap)
                  .option("subscribe", topic).option("startingOffsets", "earliest")
                  .option("maxOffsetsPerTrigger", batch).load())  # fmt: skip
        # As the stage does: the fence keeps the good-records filter above the decode.
        out = dec.good_records(observe.fenced(dec.decode(source, schema, ["order_id"])), schema)
        if transform is not None:
            out = transform.apply(out)
        mode = "update" if name == "window" else "append"
        with tempfile.TemporaryDirectory() as checkpoint:
            t0 = time.perf_counter()
            q = (out.writeStream.format("noop").outputMode(mode).option("checkpointLocation", checkpoint)
                 .trigger(availableNow=True).start())  # fmt: skip
            q.awaitTermination()
            elapsed = time.perf_counter() - t0
        print(f"  {name:<14}{rows / elapsed:>12,.0f} rows/s  ({elapsed:.1f} s)", flush=True)
        return elapsed

    run("warm-up", None)
    times = {"pass-through": run("pass-through", None), **{n: run(n, t) for n, t in built.items()}}
    base = times["pass-through"]
    print(f"\n{rows:,} records, stream mode (Kafka -> decode -> transform -> noop), {batch:,} per micro-batch:")
    print(f"  {'transform':<14}{'rows/s':>12}{'ratio to pass-through':>24}")
    for name, elapsed in times.items():
        print(f"  {name:<14}{rows / elapsed:>12,.0f}{base / elapsed:>24.2f}")
    client = kafka.admin(conn)  # keep a reference: the futures die with their client
    client.delete_topics([topic])[topic].result(timeout=30)


if __name__ == "__main__":
    main()
