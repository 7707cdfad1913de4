"""Throughput of each transform relative to a pass-through, same data, same Spark engine, one run.

Batch mode over the decoded demo orders (cached in memory), written to Spark's `noop` sink, so the
figure is the transform's own cost, without Kafka or HBase. Medians of 3 interleaved repetitions.
Stateful transforms (dedupe, window) run their batch equivalent here (the watermark is a no-op in
batch mode). Prints figures and ratios; asserts nothing.

Usage: .venv/bin/python benchmarks/transforms_bench.py [--rows 300000]   (needs the local stack: the metastore)
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
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
    args = ap.parse_args()

    from headwater import plugins
    from headwater.demo import orders_sql
    from headwater.stack import Stack, StackConfig
    from headwater.stack.spark import build_session

    cfg = StackConfig.from_env()
    Stack(cfg).up()
    spark = build_session("bench-transforms", master="local[2]", metastore_uri=cfg.metastore_uri,
                          warehouse_dir=f"file://{cfg.warehouse_dir}", jars=[],
                          conf={"spark.executorEnv.PYTHONPATH": str(Path(__file__).resolve().parent)})  # fmt: skip
    spark.sql("CREATE DATABASE IF NOT EXISTS bench")
    spark.sql("DROP TABLE IF EXISTS bench.customers")
    spark.sql("CREATE TABLE bench.customers STORED AS PARQUET AS SELECT concat('c', lpad(CAST(id AS STRING), 5, '0')) "
              "AS customer_id, element_at(array('gold','silver','bronze'), CAST(id % 3 + 1 AS INT)) AS segment "
              "FROM range(5000)")  # fmt: skip
    df = spark.sql(orders_sql(0, args.rows)).withColumn("amount", __import__("pyspark.sql.functions").sql.functions
                                                         .expr("try_cast(amount AS decimal(12,2))")).cache()  # fmt: skip
    df.count()

    def timed(frame) -> float:  # type: ignore[no-untyped-def]
        t0 = time.perf_counter()
        frame.write.format("noop").mode("overwrite").save()
        return time.perf_counter() - t0

    built = {}
    for name, conf in TRANSFORMS.items():
        cls = plugins.get("transform", conf["type"])
        built[name] = cls(cls.Config.model_validate(conf))
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


if __name__ == "__main__":
    main()
