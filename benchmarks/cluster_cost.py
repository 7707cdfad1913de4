"""How cost grows: the orders pipeline at several volumes, in local mode and on the Spark standalone cluster.

Prints figures; asserts nothing. For each size (default 10^4, 10^5, 10^6 records) and mode (``local``:
master ``local[2]``; ``cluster``: the cluster profile's standalone master, two workers, code shipped to
the executors), it runs the bench pipeline of pipeline_bench.py (Hive -> ingest -> Kafka -> process ->
HBase) on fresh names (topic, table, checkpoint), the ingest stage then the process stage, each as
``headwater run SPEC --stage S --until-drained``, and measures:

- wall time of each stage (process start to exit: JVM start, shipping and draining included), records/s;
- CPU-seconds of every process involved (benchmarks/cpu_ledger.py: kernel accounting of whole process
  trees, including processes that start and end during the run): the driver (Python and its JVM), the
  executors and their Python workers (children of the workers), the Spark master and workers' own CPU,
  and separately the shared services (Kafka, HBase, the Thrift servers, the metastore);
- HBase's row count against the oracle (the Hive rows with a customer id; the others are dead-lettered
  by design): a run that lost or duplicated rows reports no figure.

Then a table: mode x size -> records/s, CPU-s per 1,000 records (stage: drivers + executors + Spark
daemons; total: + shared services), each size's cost per record over the 10^5 one (the target: flat
within 20 %), and cluster/local ratios. On one machine the workers add no cores: the cluster figures are
its overhead, not a speed-up.

Usage: .venv/bin/python benchmarks/cluster_cost.py [--sizes 10000,100000,1000000] [--modes local,cluster]
Uses the cluster-profile stack of HEADWATER_HOME (starts it if needed, and then stops it at the end
unless --keep-stack) and its own Hive database ``hwcost`` and per-run topics and tables (dropped after
each run unless --keep-data). Linux only (process accounting).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from cpu_ledger import CpuLedger, Root, become_subreaper

SPEC = """
name: {name}
source: {{type: hive, table: {table}, mode: incremental, partitions: true}}
topic: {{name: {name}.orders, partitions: 2, key: [order_id]}}
schema: {{order_id: bigint, customer_id: string, amount: string, quantity: int, status: string,
          updated_at: timestamp, items: "array<struct<sku:string,qty:int>>", attrs: "map<string,string>", dt: string}}
sink:
  type: hbase
  table: hwcost:{name}
  row_key: "{{customer_id}}|{{order_id:long}}"
  version: updated_at
  columns: {{d: [amount, quantity, status, updated_at, dt], x: {{items: json, attrs: json}}}}
dead_letter: {{topic: {name}.orders.dlq}}
process: {{trigger: 1 second, max_offsets_per_trigger: {max_offsets}}}
connections: {{spark: {{master: "{master}"}}}}
"""
SERVICES = ("metastore", "hbase", "kafka", "hbase-thrift", "hbase-thrift2")
STAGE_GROUPS = ("driver", "executors", "spark daemons", "orphans")
REFERENCE = 100_000  # cost per record is compared with this size's


@dataclass
class StageRun:
    """One stage of one run: wall seconds and CPU-seconds per group."""

    wall: float
    cpu: dict[str, float]
    exit_code: int

    @property
    def stage_cpu(self) -> float:
        return sum(v for k, v in self.cpu.items() if k in STAGE_GROUPS)

    @property
    def services_cpu(self) -> float:
        return sum(v for k, v in self.cpu.items() if k in SERVICES)


@dataclass
class Run:
    mode: str
    size: int
    stages: dict[str, StageRun] = field(default_factory=dict)
    expected_rows: int = 0
    hbase_rows: int = -1
    batches: list[tuple[int, float]] = field(default_factory=list)  # (records, seconds) per micro-batch

    def steady_halves(self) -> tuple[float, float] | None:
        """Seconds per 1,000 records of the full micro-batches after the first: first half, second half.

        Whether a record costs more as the volume processed grows, with the fixed costs (JVM start,
        first batch) left out; None with fewer than 4 such batches.
        """
        full = [b for b in self.batches[1:] if b[0] >= 0.5 * max(n for n, _ in self.batches)]
        if len(full) < 4:
            return None
        half = len(full) // 2
        rate = [1000 * sum(t for _, t in part) / sum(n for n, _ in part) for part in (full[:half], full[half:])]
        return rate[0], rate[1]

    @property
    def ok(self) -> bool:
        return (
            self.hbase_rows == self.expected_rows
            and len(self.stages) == 2
            and all(s.exit_code == 0 for s in self.stages.values())
        )

    @property
    def wall(self) -> float:
        return sum(s.wall for s in self.stages.values())

    def per_1k(self, what: str) -> float:
        """CPU-seconds per 1,000 records: ``stage`` (drivers, executors, Spark daemons) or ``total``."""
        stage = sum(s.stage_cpu for s in self.stages.values())
        services = sum(s.services_cpu for s in self.stages.values())
        return 1000 * (stage if what == "stage" else stage + services) / self.size


def watched_roots(cfg: Any, mode: str) -> tuple[list[Root], set[int]]:
    """The stack's processes to watch (Spark daemons only in cluster mode) and every running service's pid."""
    from headwater.stack import Stack

    roots, pids = [], set()
    for s in Stack(cfg).status(probe=False):
        if s.pid is None:
            raise SystemExit(f"stack service {s.name} is not running: headwater stack up --profile cluster")
        pids.add(s.pid)
        if s.name in SERVICES:
            roots.append(Root(s.pid, s.name))
        elif s.name.startswith("spark-worker") and mode == "cluster":
            roots.append(Root(s.pid, "spark daemons", "executors"))
        elif s.name == "spark-master" and mode == "cluster":
            roots.append(Root(s.pid, "spark daemons"))
    return roots, pids


def run_stage(cfg: Any, mode: str, spec_path: Path, stage: str, log: Path) -> StageRun:
    """``headwater run SPEC --stage STAGE --until-drained`` with every involved process's CPU accounted."""
    roots, service_pids = watched_roots(cfg, mode)
    exclude = service_pids | {c.pid for c in psutil.Process().children()}  # services, this process's JVM
    ledger = CpuLedger(roots, exclude=exclude)
    ledger.start()
    t0 = time.perf_counter()
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "headwater.cli", "run", str(spec_path), "--stage", stage,
                                 "--until-drained"], stdout=out, stderr=subprocess.STDOUT)  # fmt: skip
    ledger.add_root(Root(proc.pid, "driver"))
    code = ledger.wait_exit(proc.pid)
    proc.returncode = code  # reaped by the ledger (wait4), not by Popen
    wall = time.perf_counter() - t0
    ledger.settle(busy=["driver", "executors"])  # executors end after their application; orphans are reaped
    ledger.sample()
    return StageRun(wall, ledger.totals(), code)


def hbase_rows(cfg: Any, table: str) -> int:
    """Rows of ``table``, counted by a key-only scan over Thrift."""
    import happybase

    conn = happybase.Connection(cfg.host, cfg.thrift_port, timeout=300_000)
    try:
        return sum(1 for _ in conn.table(table).scan(filter=b"FirstKeyOnlyFilter() AND KeyOnlyFilter()",
                                                     batch_size=10_000))  # fmt: skip
    finally:
        conn.close()


def one_run(cfg: Any, mode: str, size: int, table: str, expected: int, tmp: Path, args: Any) -> Run:
    from headwater.context import reset_pipeline
    from headwater.spec import load_spec

    name = f"cost_{mode}_{size}_{int(time.time()) % 1_000_000}"
    master = "local[2]" if mode == "local" else cfg.spark_master_url
    spec_path = tmp / f"{name}.yaml"
    spec_path.write_text(SPEC.format(name=name, table=table, max_offsets=args.max_offsets, master=master))
    spec = load_spec(spec_path)
    run = Run(mode, size, expected_rows=expected)
    for stage in ("ingest", "process"):
        wait_until_idle(cfg)  # HBase's flushes and compactions of the previous phase are not this one's cost
        res = run_stage(cfg, mode, spec_path, stage, tmp / f"{name}.{stage}.log")
        run.stages[stage] = res
        parts = ", ".join(f"{k} {v:.1f}" for k, v in sorted(res.cpu.items(), key=lambda kv: -kv[1]))
        print(f"  {mode:7} {size:>9,} {stage:7}: exit {res.exit_code}, wall {res.wall:6.1f}s, "
              f"{size / res.wall:8,.0f} rec/s, CPU-s stage {res.stage_cpu:.1f} services {res.services_cpu:.1f} "
              f"({parts})", flush=True)  # fmt: skip
        if res.exit_code != 0:
            print(f"    stage failed; log: {tmp / f'{name}.{stage}.log'}")
            print("    " + "\n    ".join((tmp / f"{name}.{stage}.log").read_text().splitlines()[-15:]))
            break
    if run.stages.get("process") and run.stages["process"].exit_code == 0:
        run.hbase_rows = hbase_rows(cfg, f"hwcost:{name}")
        log_text = (tmp / f"{name}.process.log").read_text()
        run.batches = [(int(m[1]), float(m[2])) for m in re.finditer(r"batch \d+: (\d+) in, .* in ([\d.]+)s", log_text)]
    verdict = "OK" if run.ok else "LOST/EXTRA DATA OR FAILED: no figures for this run"
    print(f"  {mode:7} {size:>9,} check: HBase rows {run.hbase_rows:,} / expected {expected:,}: {verdict}", flush=True)
    if not args.keep_data:
        reset_pipeline(spec, topics=True, table=True)
    return run


def wait_until_idle(cfg: Any, timeout: float = 90.0) -> None:
    """Wait (at most ``timeout``) until HBase stays below 15 % of a core for 2 s (see pipeline_bench.py)."""
    from pipeline_bench import wait_until_idle as idle

    idle(cfg, timeout)


def print_table(runs: list[Run]) -> None:
    good = {(r.mode, r.size): r for r in runs if r.ok}
    sizes = sorted({r.size for r in runs})
    print("\nmode     records    ingest s  process s   rec/s (end to end)  CPU-s/1k stage  total   "
          f"vs {REFERENCE:,}: stage  total")  # fmt: skip
    for r in runs:
        if not r.ok:
            print(f"{r.mode:7} {r.size:>9,}   (no figures: the run failed or HBase does not hold every record)")
            continue
        ref = good.get((r.mode, REFERENCE))
        rs = f"{r.per_1k('stage') / ref.per_1k('stage'):5.2f}" if ref else "  n/a"
        rt = f"{r.per_1k('total') / ref.per_1k('total'):5.2f}" if ref else "  n/a"
        print(f"{r.mode:7} {r.size:>9,}  {r.stages['ingest'].wall:8.1f}  {r.stages['process'].wall:9.1f}   "
              f"{r.size / r.wall:18,.0f}  {r.per_1k('stage'):14.3f}  {r.per_1k('total'):6.3f}   "
              f"{rs:>15}  {rt}")  # fmt: skip
    print("\nmarginal CPU-s per 1,000 records from the next smaller size (fixed costs such as JVM starts cancel out):")
    for mode in dict.fromkeys(r.mode for r in runs):
        done = [good[(mode, s)] for s in sizes if (mode, s) in good]
        for prev, cur in itertools.pairwise(done):
            n = (cur.size - prev.size) / 1000
            stage = (cur.per_1k("stage") * cur.size - prev.per_1k("stage") * prev.size) / 1000 / n
            total = (cur.per_1k("total") * cur.size - prev.per_1k("total") * prev.size) / 1000 / n
            print(f"  {mode:7} {prev.size:>9,} -> {cur.size:>9,}: stage {stage:.3f}, total {total:.3f}")
    print("\nsteady micro-batches (after the first; full ones only): seconds per 1,000 records, first half -> "
          "second half of the run")  # fmt: skip
    for r in good.values():
        halves = r.steady_halves()
        if halves:
            print(f"  {r.mode:7} {r.size:>9,}: {halves[0]:.3f} -> {halves[1]:.3f} s  (ratio {halves[1] / halves[0]:.2f}; "
                  f"{len(r.batches)} batches)")  # fmt: skip
    print("\ncluster / local     wall   CPU stage   CPU total")
    for size in sizes:
        c, loc = good.get(("cluster", size)), good.get(("local", size))
        if c and loc:
            print(f"  {size:>9,}      {c.wall / loc.wall:5.2f}      {c.per_1k('stage') / loc.per_1k('stage'):5.2f}"
                  f"       {c.per_1k('total') / loc.per_1k('total'):5.2f}")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10000,100000,1000000", help="record counts, comma-separated")
    ap.add_argument("--modes", default="local,cluster", help="local and/or cluster, comma-separated")
    ap.add_argument("--max-offsets", type=int, default=100_000, help="process.max_offsets_per_trigger")
    ap.add_argument("--keep-stack", action="store_true", help="leave the stack running at the end")
    ap.add_argument("--keep-data", action="store_true", help="keep each run's topics, table and checkpoint")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    modes = args.modes.split(",")
    if not set(modes) <= {"local", "cluster"}:
        raise SystemExit(f"--modes: {args.modes!r}: use local and/or cluster")

    os.environ["HEADWATER_PROFILE"] = "cluster"  # this process, the stages and the stack agree on the profile
    from headwater.demo import create_orders
    from headwater.ship import shipping_conf
    from headwater.spec import load_spec
    from headwater.stack import Stack, StackConfig
    from headwater.stack.jars import spark_kafka_jars
    from headwater.stack.spark import build_session

    subreaper = become_subreaper()
    cfg = StackConfig.from_env(profile="cluster")
    stack = Stack(cfg)
    started_here = not stack.healthy()
    if started_here:
        print("starting the cluster-profile stack ...", flush=True)
        stack.up()
        stack.record_profile()
    elif subreaper:
        print("NOTE: the stack was started elsewhere: CPU of processes orphaned inside the Spark workers "
              "(not reaped by them) is counted only up to their last sample (every 0.5 s)")  # fmt: skip
    if not subreaper:
        print("NOTE: no PR_SET_CHILD_SUBREAPER here: CPU of orphaned processes is counted up to their last sample")
    tmp = Path(tempfile.mkdtemp(prefix="cluster_cost-"))
    try:
        import pyspark

        cores = os.cpu_count()
        print("environment:", json.dumps({"cores": cores, "pyspark": pyspark.__version__, "load_avg":
                                          [round(x, 1) for x in os.getloadavg()], "workers": cfg.spark_workers}))  # fmt: skip
        probe = tmp / "probe.yaml"  # pack the shipped environment now, so no run pays for building it
        probe.write_text(SPEC.format(name="probe", table="hwcost.x", max_offsets=1, master=cfg.spark_master_url))
        shipping_conf(load_spec(probe), cfg.cache_dir)
        spark = build_session("headwater-cluster-cost-data", master="local[2]", metastore_uri=cfg.metastore_uri,
                              warehouse_dir=f"file://{cfg.warehouse_dir}", jars=spark_kafka_jars(cfg))  # fmt: skip
        runs: list[Run] = []
        for size in sizes:
            table = f"hwcost.orders_{size}"
            t0 = time.perf_counter()
            create_orders(spark, table, size)
            # The oracle: every source row with a customer id is stored once; the others are dead-lettered.
            expected = spark.sql(f"SELECT count(*) FROM {table} WHERE customer_id IS NOT NULL").collect()[0][0]
            print(f"\n{size:,} records generated in {time.perf_counter() - t0:.1f}s "
                  f"({expected:,} with a customer id)", flush=True)  # fmt: skip
            for mode in modes:
                runs.append(one_run(cfg, mode, size, table, expected, tmp, args))
        spark.stop()
        print_table(runs)
        print(f"\nload average at the end: {[round(x, 1) for x in os.getloadavg()]} on {cores} cores; logs in {tmp}")
    finally:
        if started_here and not args.keep_stack:
            stack.down(purge=True)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    main()
