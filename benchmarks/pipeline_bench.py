"""Benchmarks of the pipeline stages against plain baselines, on the same machine, data and run.

Prints figures and ratios; asserts nothing (speed is measured here, never in tests).

1. ingest: the ingest stage (Hive -> Kafka through Spark) vs Kafka's own ProducerPerformance tool
   at the same record count and size, twice: the first poll of a fresh process (cold JVM, the table's
   initial read) and the next polls (new partitions with as many rows each, warm JVM: a running stage; median).
2. process: the process stage (Kafka -> decode -> HBase through Spark) vs a plain loop: one
   confluent-kafka consumer, json.loads, happybase batches of 1000 into an identical table.
3. sink write path: the sink's executor writer on Arrow batches vs raw happybase batch writes of the
   same rows from memory, plus batch-size variants.
4. peers (``peers_bench.py``): the process stage beside a competent and a naive hand-written PySpark
   job, a Quix Streams application and a plain loop, each writing the same rows, cells and versions
   into its own table from two backlogs of --rows records (cold start, then warm), checked against
   headwater's table (--no-peers skips it).

Usage: .venv/bin/python benchmarks/pipeline_bench.py [--rows 200000] [--warm-polls 3]
(HEADWATER_CDS=0: Spark JVMs without the class-data archive, to see what it saves.)
Uses the local stack (started if needed) and its own database/topics/tables (`bench*`).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SPEC = """
name: bench
source: {{type: hive, table: bench.orders_raw, mode: incremental, partitions: true}}
topic: {{name: bench.orders, partitions: 2, key: [order_id]}}
schema: {{order_id: bigint, customer_id: string, amount: string, quantity: int, status: string,
          updated_at: timestamp, items: "array<struct<sku:string,qty:int>>", attrs: "map<string,string>", dt: string}}
sink:
  type: hbase
  table: bench:orders
  row_key: "{{customer_id}}|{{order_id:long}}"
  version: updated_at
  columns: {{d: [amount, quantity, status, updated_at, dt], x: {{items: json, attrs: json}}}}
dead_letter: {{topic: bench.orders.dlq}}
process: {{trigger: 1 second, max_offsets_per_trigger: {max_offsets}}}
"""


def env_report() -> dict[str, Any]:
    import pyspark

    java = subprocess.run(["java", "-version"], capture_output=True, text=True).stderr.splitlines()[0]
    from headwater.stack import StackConfig, cds

    return {"cores": os.cpu_count(), "python": platform.python_version(), "java": java,
            "pyspark": pyspark.__version__, "kernel": platform.release(),
            "class_data_archive": bool(cds.java_options(StackConfig.from_env()))}  # fmt: skip


def cpu_seconds(pid: int) -> float:
    import psutil

    p = psutil.Process(pid)
    total = sum(p.cpu_times()[:2])
    for c in p.children(recursive=True):
        with contextlib.suppress(psutil.NoSuchProcess):
            total += sum(c.cpu_times()[:2])
    return total


def producer_perf(cfg: Any, topic: str, records: int, size: int) -> float:
    """Kafka's own ProducerPerformance, same acks/idempotence as the ingest stage; records/s."""
    from headwater import kafka
    from headwater.spec.connections import KafkaConnection

    kafka.ensure_topic(KafkaConnection(bootstrap_servers=cfg.kafka_bootstrap), topic, 2)
    cmd = [
        "java", "-Xmx512m", "-cp", str(cfg.jars("kafka") / "*"), "org.apache.kafka.tools.ProducerPerformance",
        "--topic", topic, "--num-records", str(records), "--record-size", str(size), "--throughput", "-1",
        "--producer-props", f"bootstrap.servers={cfg.kafka_bootstrap}", "acks=all", "enable.idempotence=true",
        "linger.ms=20", "batch.size=262144", "compression.type=lz4",
    ]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
    return float(out.split("records/sec")[0].split(",")[-1].strip().split(" ")[0])


def plain_loop(cfg: Any, topic: str, table: str, expected: int) -> tuple[float, float]:
    """confluent-kafka consumer + json.loads + happybase batches; (rows/s, cpu-seconds)."""
    import happybase
    from confluent_kafka import Consumer

    conn = happybase.Connection(cfg.host, cfg.thrift_port, timeout=60000)
    if table.encode() in conn.tables():
        conn.delete_table(table, disable=True)
    conn.create_table(table, {"d": {"max_versions": 1}, "x": {"max_versions": 1}})
    t = conn.table(table)
    consumer = Consumer({"bootstrap.servers": cfg.kafka_bootstrap, "group.id": f"plain-{time.time()}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})  # fmt: skip
    consumer.subscribe([topic])
    n = 0
    cpu0 = time.process_time()
    start = None
    batch = t.batch(batch_size=1000)
    while n < expected:
        msgs = consumer.consume(1000, timeout=5)
        if not msgs:
            continue
        if start is None:
            start = time.perf_counter()
        for m in msgs:
            if m.error():
                continue
            r = json.loads(m.value())
            key = f"{r['customer_id']}|{r['order_id']:020d}".encode()
            batch.put(key, {
                b"d:amount": str(r["amount"]).encode(), b"d:quantity": str(r["quantity"]).encode(),
                b"d:status": r["status"].encode(), b"d:updated_at": r["updated_at"].encode(),
                b"d:dt": r["dt"].encode(), b"x:items": json.dumps(r["items"]).encode(),
                b"x:attrs": json.dumps(r["attrs"]).encode(),
            })  # fmt: skip
            n += 1
    batch.send()
    elapsed = time.perf_counter() - (start or time.perf_counter())
    consumer.close()
    conn.close()
    return n / elapsed, time.process_time() - cpu0


def wait_until_idle(cfg: Any, timeout: float = 90.0) -> float:
    """Wait until HBase has finished the background work (flushes, compactions) of the previous phase.

    The next phase would otherwise pay for it. Returns the seconds waited (HBase below 15% of a core
    for 2 s running, or ``timeout``).
    """
    import psutil

    from headwater.stack import Stack

    pid = next(s.pid for s in Stack(cfg).status(probe=False) if s.name == "hbase")
    proc = psutil.Process(pid)
    t0 = time.monotonic()
    quiet = 0
    while quiet < 2 and time.monotonic() - t0 < timeout:
        quiet = quiet + 1 if proc.cpu_percent(interval=1.0) < 15 else 0
    return time.monotonic() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--warm-polls", type=int, default=3, help="ingest polls after the first, each of --rows new rows")
    ap.add_argument("--no-peers", action="store_true", help="skip section 4 (the peers side by side)")
    args = ap.parse_args()

    from headwater.context import PipelineContext, reset_pipeline
    from headwater.demo import append_orders, create_orders
    from headwater.ingest.runner import IngestStage
    from headwater.observability.progress import read_progress
    from headwater.spec import load_spec
    from headwater.stack import Stack, StackConfig

    cfg = StackConfig.from_env()
    Stack(cfg).up()
    tmp = Path(tempfile.mkdtemp())
    spec_path = tmp / "bench.yaml"
    spec_path.write_text(SPEC.format(max_offsets=100_000))
    spec = load_spec(spec_path)
    reset_pipeline(spec, topics=True, table=True)
    ctx = PipelineContext(spec)
    print("environment:", json.dumps(env_report()))

    # --- 1. ingest --------------------------------------------------------------------------------
    spark = ctx.spark("bench", {"spark.driver.memory": "1g"})
    create_orders(spark, "bench.orders_raw", args.rows)
    stage = IngestStage(ctx, spark=spark)
    stage.prepare()
    cold = stage.poll_once()
    assert cold is not None and cold.produced == cold.rows == args.rows, cold
    warm_polls = []
    for i in range(args.warm_polls):  # each reads new partitions (days after the earlier ones) of as many rows
        start = 10_000_000 * (i + 1)
        append_orders(spark, "bench.orders_raw", start, start + args.rows)
        res = stage.poll_once()
        assert res is not None and res.produced == res.rows == args.rows, res
        warm_polls.append(res)
    warm = sorted(warm_polls, key=lambda r: r.seconds)[len(warm_polls) // 2]
    stage.positions.close()
    sizes = [len(r[0]) for r in spark.sql(
        "SELECT to_json(struct(*)) FROM bench.orders_raw LIMIT 2000").collect()]  # fmt: skip
    record_size = int(statistics.mean(sizes))
    spark.stop()
    perf_runs = [producer_perf(cfg, "bench.perf", args.rows, record_size) for _ in range(3)]
    perf_rate = statistics.median(perf_runs)
    print(
        f"\nProducerPerformance: {perf_rate:,.0f} records/s, median of {', '.join(f'{r:,.0f}' for r in perf_runs)} "
        f"({args.rows:,} records of {record_size} B each run)"
    )
    warm_name = f"next polls, warm JVM (median of {', '.join(f'{r.seconds:.2f}s' for r in warm_polls)})"
    for name, res in (("first poll, cold JVM", cold), (warm_name, warm)):
        rate = res.rows / res.seconds
        print(
            f"ingest {name}: {rate:,.0f} rows/s ({res.rows:,} rows in {res.seconds:.2f}s: Hive read + JSON + "
            f"produce + commit)  RATIO ingest / ProducerPerformance = {rate / perf_rate:.2f} (target >= 0.5)"
        )

    # --- 2. process ---------------------------------------------------------------------------------
    # The plain loop runs before and after the stage (the same topic, a fresh table each time), each
    # phase on an idle HBase: one sample of either side swings by 20% on this machine.
    total = (1 + args.warm_polls) * args.rows  # every record the ingest polls produced
    wait_until_idle(cfg)
    loop_before = plain_loop(cfg, "bench.orders", "bench_plain", total)
    wait_until_idle(cfg)
    t0 = time.perf_counter()
    log_path = tmp / "process.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "headwater.cli", "run", str(spec_path), "--stage", "process",
                                 "--until-drained"], stdout=subprocess.DEVNULL, stderr=log)  # fmt: skip
    peak_cpu = 0.0
    while proc.poll() is None:
        with contextlib.suppress(Exception):
            peak_cpu = cpu_seconds(proc.pid)
        time.sleep(0.5)
    wall = time.perf_counter() - t0
    batches = [
        (int(m[1]), float(m[2])) for m in re.finditer(r"batch \d+: (\d+) in, .* in ([\d.]+)s", log_path.read_text())
    ]
    prog = read_progress(ctx.progress_path("process")) or {}
    c = prog.get("counters", {})
    busy = c.get("busy_seconds", 0)
    stage_rate = c.get("rows_in", 0) / busy if busy else 0.0
    later = batches[1:]
    steady = sum(n for n, _ in later) / sum(s for _, s in later) if later else 0.0
    wait_until_idle(cfg)
    loop_after = plain_loop(cfg, "bench.orders", "bench_plain", total)
    plain_rate = statistics.mean([loop_before[0], loop_after[0]])
    plain_cpu = statistics.mean([loop_before[1], loop_after[1]])
    print(f"\nprocess stage, {c.get('rows_in', 0):,} records in {len(batches)} batches: {stage_rate:,.0f} rows/s "
          f"(sum of batch times {busy:.1f}s; wall incl. JVM start {wall:.1f}s; CPU {peak_cpu:.0f}s)")  # fmt: skip
    print(f"  batches (rows, seconds): {', '.join(f'{n:,}/{s:.1f}s' for n, s in batches)}")
    print(f"  without the first batch (JIT warm-up): {steady:,.0f} rows/s")
    print(f"plain loop (confluent-kafka + happybase batches): {plain_rate:,.0f} rows/s, mean of "
          f"{loop_before[0]:,.0f} before and {loop_after[0]:,.0f} after the stage (CPU {plain_cpu:.0f}s)")  # fmt: skip
    print(f"RATIO process / plain loop = {stage_rate / plain_rate:.2f}, without the first batch "
          f"{steady / plain_rate:.2f} (target >= 1.0)")  # fmt: skip
    print(f"  process stage latency p50/p99: {prog.get('p50_ms')} / {prog.get('p99_ms')} ms")

    # --- 3. sink write path -------------------------------------------------------------------------
    from write_path import run as write_path

    write_path(cfg, min(args.rows, 100_000))

    # --- 4. peers side by side ------------------------------------------------------------------------
    if not args.no_peers and args.warm_polls >= 1:  # two backlogs of --rows records from the ingested topic
        import peers_bench

        peers_bench.run(cfg, "bench.orders", args.rows, SPEC)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    main()
