"""headwater's process stage beside its peers, on the same backlog, HBase layout and run (issue 15, section 3).

Runners, each its own process tree (psutil sums the CPU of every process in it, JVMs and Python
workers included):

- headwater: ``headwater run SPEC --stage process`` on the bench spec (``pipeline_bench.SPEC``);
- spark competent / spark naive: ``peers/spark_job.py`` (foreachBatch + mapInArrow with batched
  puts / a put per row);
- quix: ``peers/quix_app.py`` (Quix Streams, batching sink), in its own virtualenv ``.venv-quix``;
- plain loop: ``peers/plain_loop.py`` (confluent-kafka + json + batched puts);
- spark floor read / spark floor parse: ``peers/spark_job.py`` writing nothing (it reads every record,
  and parses it, in the JVM): no Spark job on the machine can be cheaper. Their CPU per record plus the
  HBase process's (the least any writer measured) bounds the rate any Spark-based stage that puts its
  rows through the region server can reach here, printed beside each target.

Each runner gets its own topic and its own identical table. Backlog 1 (the first half of the records)
is in its topic before it starts: **cold** = from the launch of the process to the last record
written (JVM start and first micro-batch included). Then backlog 2 (the other half, new keys) is
produced into the running runner's topic: **warm** = from the start of that produce to the last
record written. Afterwards each peer's table is compared with headwater's: row count and a sample of
rows, every cell and its timestamp.

Usage: called from ``pipeline_bench.py`` (``make bench``) after its ingest phase, or alone on a topic
that already holds a backlog: ``python benchmarks/peers_bench.py --source bench.orders --rows 50000``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from peers_report import FLOORS, TARGETS, WARM_TARGETS, cpu_table

ROOT = Path(__file__).resolve().parent.parent
PEERS = Path(__file__).resolve().parent / "peers"
QUIX_PYTHON = ROOT / ".venv-quix" / "bin" / "python"
SAMPLE = 300
TIMEOUT = 1800.0


@dataclass
class Phase:
    """One timed phase of a runner."""

    records: int
    seconds: float
    cpu: float
    stack_cpu: float = 0.0  # CPU of the services the runner writes through (HBase, its Thrift servers, Kafka)
    by_process: dict[str, float] = field(default_factory=dict)  # the two above split: runner JVM/Python, each service
    first: float | None = None  # seconds from the phase's start to the first records handled

    @property
    def rate(self) -> float:
        return self.records / self.seconds if self.seconds else 0.0

    @property
    def cpu_per_1k(self) -> float:
        return 1000 * self.cpu / self.records if self.records else 0.0

    @property
    def stack_cpu_per_1k(self) -> float:
        return 1000 * self.stack_cpu / self.records if self.records else 0.0

    @property
    def busy(self) -> float:
        """Cores the runner and the stack kept busy on average during the phase."""
        return (self.cpu + self.stack_cpu) / self.seconds if self.seconds else 0.0

    def add_stack(self, by_service: dict[str, float]) -> None:
        """Record the stack's CPU during the phase, by service."""
        self.stack_cpu = sum(by_service.values())
        self.by_process.update(by_service)

    def per_1k(self, part: str) -> float:
        """CPU-s per 1,000 records of one part of :attr:`by_process`."""
        return 1000 * self.by_process.get(part, 0.0) / self.records if self.records else 0.0

    def ceiling(self, cores: int) -> float:
        """Records/s at which the runner and the stack, at this phase's CPU per record, would use every core."""
        per_1k = self.cpu_per_1k + self.stack_cpu_per_1k
        return 1000 * cores / per_1k if per_1k else 0.0


@dataclass
class Result:
    name: str
    table: str
    cold: Phase | None = None
    warm: Phase | None = None
    check: str = ""
    notes: list[str] = field(default_factory=list)


def tree_cpu(pid: int) -> float:
    """User + system CPU seconds of a process and all its descendants (reaped children included)."""
    return sum(tree_cpu_by_kind(pid).values())


def tree_cpu_by_kind(pid: int) -> dict[str, float]:
    """:func:`tree_cpu` split by the kind of process: ``JVM``, ``Python`` or ``other`` (children a process
    reaped count as its own kind: the Python workers a pyspark daemon forked count as Python)."""
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return {}
    out: dict[str, float] = {}
    for p in procs:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            t = p.cpu_times()
            name = p.name()
            kind = "JVM" if name == "java" else "Python" if name.startswith("python") else "other"
            out[kind] = out.get(kind, 0.0) + t.user + t.system + t.children_user + t.children_system
    return out


def stack_cpu(pids: dict[str, int]) -> dict[str, float]:
    """User + system CPU seconds of each of the stack's service processes (their threads included)."""
    import psutil

    out: dict[str, float] = {}
    for name, pid in pids.items():
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            t = psutil.Process(pid).cpu_times()
            out[name] = t.user + t.system
    return out


def stack_pids(cfg: Any) -> dict[str, int]:
    """The pids of the services every runner writes through, by name: HBase (master, region server and
    ZooKeeper in one JVM), its Thrift servers and Kafka."""
    from headwater.stack import Stack

    wanted = ("hbase", "hbase-thrift", "hbase-thrift2", "kafka")
    return {s.name: s.pid for s in Stack(cfg).status(probe=False) if s.name in wanted and s.pid}


def _delta(after: dict[str, float], before: dict[str, float]) -> dict[str, float]:
    return {k: v - before.get(k, 0.0) for k, v in after.items()}


def stop_tree(proc: subprocess.Popen[Any]) -> None:
    """SIGTERM the runner, then SIGKILL whatever of its tree is left after 30 s."""
    import psutil

    try:
        kids = psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        kids = []
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    for k in kids:
        with contextlib.suppress(psutil.NoSuchProcess):
            k.kill()


# --- the backlogs ---------------------------------------------------------------------------------
def read_backlogs(bootstrap: str, source: str, rows: int) -> tuple[list[Any], list[Any]]:
    """Two backlogs of about ``rows`` records each from ``source``: per partition, the first and second
    share of its records (so each holds new keys), as (partition, key, value) tuples."""
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"peers-read-{time.time_ns()}",
                  "enable.auto.commit": False})  # fmt: skip
    parts = sorted(c.list_topics(source, timeout=30).topics[source].partitions)
    marks = {p: c.get_watermark_offsets(TopicPartition(source, p), timeout=30) for p in parts}
    total = sum(hi - lo for lo, hi in marks.values())
    if total < 2 * rows:
        raise SystemExit(f"topic {source} holds {total:,} records; two backlogs of {rows:,} need {2 * rows:,}")
    share = {p: (hi - lo) * rows // total for p, (lo, hi) in marks.items()}
    ends = {p: marks[p][0] + 2 * share[p] for p in parts}
    c.assign([TopicPartition(source, p, marks[p][0]) for p in parts])
    first: list[Any] = []
    second: list[Any] = []
    left = sum(2 * s for s in share.values())
    while left > 0:
        for m in c.consume(10_000, timeout=5):
            if m.error() or m.offset() >= ends[m.partition()]:
                continue
            lo = marks[m.partition()][0]
            (first if m.offset() < lo + share[m.partition()] else second).append((m.partition(), m.key(), m.value()))
            left -= 1
    c.close()
    return first, second


def produce(bootstrap: str, topic: str, records: list[Any]) -> float:
    """Produce ``records`` to their partitions of ``topic``; the seconds it took."""
    from confluent_kafka import Producer

    t0 = time.monotonic()
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "batch.size": 1_000_000,
                  "compression.type": "lz4", "queue.buffering.max.messages": 1_000_000})  # fmt: skip
    for part, key, value in records:
        while True:
            try:
                p.produce(topic, value, key, partition=part)
                break
            except BufferError:
                p.poll(0.1)
    if p.flush(120) != 0:
        raise RuntimeError(f"could not produce every record to {topic}")
    return time.monotonic() - t0


# --- runners --------------------------------------------------------------------------------------
class Runner:
    """A process that consumes its topic into its table; ``done()`` says how many records it has handled."""

    def __init__(self, name: str, cmd: list[str], env: dict[str, str], log: Path) -> None:
        self.name, self.cmd, self.env, self.log = name, cmd, env, log
        self.count = 0
        self.proc: subprocess.Popen[Any] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(self.cmd, env=self.env, stdout=subprocess.PIPE, stderr=self.log.open("w"),
                                     text=True, cwd=ROOT)  # fmt: skip
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            m = re.match(r"progress (\d+) (\d+)", line)
            if m:
                self.count = int(m[1]) + int(m[2])

    def done(self) -> int:
        return self.count


class HeadwaterRunner(Runner):
    """The process stage; its count is ``rows_in`` from the stage's progress file."""

    def __init__(self, name: str, cmd: list[str], env: dict[str, str], log: Path, progress: Path) -> None:
        super().__init__(name, cmd, env, log)
        self.progress = progress

    def start(self) -> None:
        self.proc = subprocess.Popen(self.cmd, env=self.env, stdout=subprocess.DEVNULL, stderr=self.log.open("w"),
                                     cwd=ROOT)  # fmt: skip

    def done(self) -> int:
        try:
            return int(json.loads(self.progress.read_text())["counters"].get("rows_in", 0))
        except (OSError, ValueError, KeyError):
            return 0


def wait_for(runner: Runner, target: int, since: float, cpu0: dict[str, float]) -> Phase:
    """Poll until ``runner`` has handled ``target`` records; the phase since ``since`` (``cpu0``: the runner's
    CPU by kind of process at ``since``)."""
    assert runner.proc is not None
    cpu = dict(cpu0)
    base, first = runner.done(), None

    def read() -> None:  # a process that ended takes its CPU along: keep the highest reading of each kind
        for kind, value in tree_cpu_by_kind(runner.proc.pid).items():  # type: ignore[union-attr]
            cpu[kind] = max(cpu.get(kind, 0.0), value)

    while runner.done() < target:
        if runner.proc.poll() is not None:
            raise RuntimeError(f"{runner.name} exited ({runner.proc.returncode}) at {runner.done():,} of "
                               f"{target:,} records; log: {runner.log}")  # fmt: skip
        if time.monotonic() - since > TIMEOUT:
            raise RuntimeError(f"{runner.name}: {runner.done():,} of {target:,} records after {TIMEOUT:.0f}s")
        read()
        if first is None and runner.done() > base:
            first = time.monotonic() - since
        time.sleep(0.1)
    end = time.monotonic()
    read()
    used = _delta(cpu, cpu0)
    return Phase(0, end - since, sum(used.values()), by_process=used, first=end - since if first is None else first)


def measure(cfg: Any, runner: Runner, topic: str, backlogs: tuple[list[Any], list[Any]]) -> tuple[Phase, Phase]:
    """Backlog 1 before the start (cold), backlog 2 into the running runner (warm)."""
    from pipeline_bench import wait_until_idle

    first, second = backlogs
    services = stack_pids(cfg)
    produce(cfg.kafka_bootstrap, topic, first)
    wait_until_idle(cfg)
    s0, t0 = stack_cpu(services), time.monotonic()
    runner.start()
    assert runner.proc is not None
    try:
        cold = wait_for(runner, len(first), t0, {})
        cold.records = len(first)
        cold.add_stack(_delta(stack_cpu(services), s0))
        wait_until_idle(cfg)
        cpu1, s1, t1 = tree_cpu_by_kind(runner.proc.pid), stack_cpu(services), time.monotonic()
        produce(cfg.kafka_bootstrap, topic, second)
        warm = wait_for(runner, len(first) + len(second), t1, cpu1)
        warm.records = len(second)
        warm.add_stack(_delta(stack_cpu(services), s1))
    finally:
        stop_tree(runner.proc)
    return cold, warm


def delete_topic(conn: Any, topic: str) -> None:
    """Delete a runner's topic once measured."""
    from headwater import kafka

    client = kafka.admin(conn)
    for fut in client.delete_topics([topic]).values():
        fut.result(timeout=30)


# --- tables ---------------------------------------------------------------------------------------
def make_table(client: Any, plan: Any, table: str) -> None:
    """(Re)create ``table`` with the families of headwater's plan for the bench spec."""
    from headwater.sinks.hbase.admin import _family_descriptor

    if client.table_exists(table):
        client.delete_table(table)
    client.create_table(table, [_family_descriptor(client, n, f) for n, f in plan.families.items()], plan.split_points)


def rows_of(client: Any, table: str) -> dict[bytes, dict[bytes, tuple[bytes, int]]]:
    """Every row of ``table``: key -> {family:qualifier -> (value, timestamp)}."""
    t = client.t
    out = {}
    for r in client.scan(table, t.TScan(caching=5000), batch=5000):
        out[r.row] = {c.family + b":" + c.qualifier: (c.value, c.timestamp) for c in r.columnValues}
    return out


def compare(reference: dict[bytes, Any], other: dict[bytes, Any]) -> str:
    """The check line: row count, and a sample of rows equal cell by cell (values and timestamps)."""
    keys = sorted(reference)
    sample = keys[:: max(1, len(keys) // SAMPLE)]
    bad = [k for k in sample if other.get(k) != reference[k]]
    missing = len(set(reference) - set(other))
    extra = len(set(other) - set(reference))
    verdict = "EQUAL" if not bad and not missing and not extra else "DIFFERENT"
    line = (f"{verdict}: {len(other):,} rows vs headwater's {len(reference):,} ({missing} missing, {extra} extra); "
            f"{len(sample) - len(bad)}/{len(sample)} sampled rows equal in every cell and timestamp")  # fmt: skip
    if bad:
        k = bad[0]
        line += f"; first difference at {k!r}: headwater {reference[k]!r}, peer {other.get(k)!r}"
    return line


# --- the run --------------------------------------------------------------------------------------
def run(cfg: Any, source: str, rows: int, spec_template: str, only: list[str] | None = None) -> list[Result]:
    """Measure every runner on two backlogs of ``rows`` records from ``source``; print the table."""
    from headwater.kafka import ensure_topic
    from headwater.sinks.hbase.admin import connect, plan
    from headwater.spec import load_spec
    from headwater.spec.connections import KafkaConnection
    from headwater.stack import cds
    from headwater.stack.jars import spark_kafka_jars

    backlogs = read_backlogs(cfg.kafka_bootstrap, source, rows)
    tmp = Path(tempfile.mkdtemp(prefix="peers-bench-"))
    spec_path = tmp / "peers.yaml"
    run_id = time.strftime("%H%M%S")  # fresh topics each run: a deleted topic lingers a while in Kafka
    spec_path.write_text(spec_template.format(max_offsets=100_000).replace("name: bench\n", "name: bench_peers\n", 1)
                         .replace("name: bench.orders,", f"name: bench.peers.headwater.{run_id},", 1)
                         .replace("table: bench:orders", "table: bench:peers_headwater", 1))  # fmt: skip
    spec = load_spec(spec_path)
    layout = plan(spec.sinks[0])
    kconn = KafkaConnection(bootstrap_servers=cfg.kafka_bootstrap)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(PEERS), os.environ.get("PYTHONPATH")) if p)}
    jars = ",".join(str(j) for j in spark_kafka_jars(cfg))
    peer_args = ["--bootstrap", cfg.kafka_bootstrap, "--host", cfg.host, "--port", str(cfg.thrift2_port)]
    names = only or ["headwater", "spark competent", "spark naive", "quix", "plain loop", *FLOORS]
    print(f"\npeers: two backlogs of {len(backlogs[0]):,} and {len(backlogs[1]):,} records from {source}, "
          f"each runner its own topic (2 partitions) and table; logs in {tmp}")  # fmt: skip
    results = []
    for name in names:
        slug = name.replace(" ", "_")
        topic, table = f"bench.peers.{slug}.{run_id}", f"bench:peers_{slug}"
        with connect(spec.connections.hbase) as client:
            make_table(client, layout, table)
        ensure_topic(kconn, topic, 2)
        log = tmp / f"{slug}.log"
        runner: Runner
        if name == "headwater":
            from headwater.context import PipelineContext, reset_pipeline

            reset_pipeline(spec)
            progress = PipelineContext(spec).progress_path("process")
            runner = HeadwaterRunner(name, [sys.executable, "-m", "headwater.cli", "run", str(spec_path), "--stage",
                                            "process"], dict(os.environ), log, progress)  # fmt: skip
        elif name.startswith("spark"):
            floor = [f"--java-options={cds.java_options(cfg)}"] if name in FLOORS else []
            runner = Runner(name, [sys.executable, str(PEERS / "spark_job.py"), "--mode", "-".join(name.split()[1:]),
                                   "--jars", jars, *floor, *peer_args, "--topic", topic, "--table", table], env, log)  # fmt: skip
        elif name == "quix":
            if not QUIX_PYTHON.exists():
                print(f"  quix: SKIPPED, no {QUIX_PYTHON} (make bench builds it from benchmarks/peers/quix.lock)")
                continue
            runner = Runner(name, [str(QUIX_PYTHON), str(PEERS / "quix_app.py"), *peer_args, "--topic", topic,
                                   "--table", table], env, log)  # fmt: skip
        else:
            runner = Runner(name, [sys.executable, str(PEERS / "plain_loop.py"), *peer_args, "--topic", topic,
                                   "--table", table], env, log)  # fmt: skip
        res = Result(name, table)
        res.cold, res.warm = measure(cfg, runner, topic, backlogs)
        delete_topic(kconn, topic)
        print(f"  {name}: cold {res.cold.rate:,.0f} records/s, {res.cold.cpu_per_1k:.2f} CPU-s/1k; "
              f"warm {res.warm.rate:,.0f} records/s, {res.warm.cpu_per_1k:.2f} CPU-s/1k", flush=True)  # fmt: skip
        results.append(res)
    report(cfg, spec, results)
    return results


def report(cfg: Any, spec: Any, results: list[Result]) -> None:
    """Check every peer's table against headwater's, then print the table and the ratios."""
    from headwater.sinks.hbase.admin import connect

    with connect(spec.connections.hbase) as client:
        tables = {r.name: rows_of(client, r.table) for r in results}
    hw = next((r for r in results if r.name == "headwater"), None)
    print("\nchecks (each peer's table against headwater's):")
    for r in results:
        if r.name in FLOORS:
            print(f"  {r.name}: writes nothing (a floor)")
        elif hw is not None and r is not hw:
            r.check = compare(tables["headwater"], tables[r.name])
            print(f"  {r.name}: {r.check}")
    print("\n  runner            | cold rec/s | cold CPU-s/1k | warm rec/s | warm CPU-s/1k | hw rate ratio cold / warm "
          "| hw CPU ratio cold / warm | target")  # fmt: skip
    for r in results:
        assert r.cold and r.warm
        ratios = cpu = target = ""
        if hw is not None and hw.cold and hw.warm and r is not hw:
            rc, rw = hw.cold.rate / r.cold.rate, hw.warm.rate / r.warm.rate
            ratios = f"{rc:.2f}x / {rw:.2f}x"
            cpu = f"{r.cold.cpu_per_1k / hw.cold.cpu_per_1k:.2f}x / {r.warm.cpu_per_1k / hw.warm.cpu_per_1k:.2f}x"
            goals = []
            if r.name in TARGETS:
                goals.append(f"cold >= {TARGETS[r.name]}x {'MET' if rc >= TARGETS[r.name] else 'MISSED'}")
            if r.name in WARM_TARGETS:
                goals.append(f"warm >= {WARM_TARGETS[r.name]}x {'MET' if rw >= WARM_TARGETS[r.name] else 'MISSED'}")
            target = ", ".join(goals)
        print(f"  {r.name:<17} | {r.cold.rate:>10,.0f} | {r.cold.cpu_per_1k:>13.2f} | {r.warm.rate:>10,.0f} | "
              f"{r.warm.cpu_per_1k:>13.2f} | {ratios:>25} | {cpu:>24} | {target}")  # fmt: skip
    print("  (rate ratio: headwater's records/s over the peer's; CPU ratio: the peer's CPU-s per 1k over "
          "headwater's, > 1 = headwater cheaper)")  # fmt: skip
    cpu_table(results, hw)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--source", default="bench.orders", help="topic holding at least 2 x --rows records")
    ap.add_argument("--rows", type=int, default=200_000, help="records per backlog")
    ap.add_argument("--only", action="append", help="run only these runners (repeatable)")
    a = ap.parse_args()
    from pipeline_bench import SPEC

    from headwater.stack import Stack, StackConfig

    cfg = StackConfig.from_env()
    Stack(cfg).up()
    run(cfg, a.source, a.rows, SPEC, a.only)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    main()
