"""Latency of running pipelines, measured from outside: Kafka append -> readable in HBase, Hive commit -> readable.

Prints figures; asserts nothing (speed is measured here, never in tests).

1. Kafka -> HBase: a Kafka-source pipeline's process stage (``headwater run --stage process`` as a
   subprocess) is started and warmed until idle. Its sustained maximum rate is found first (a
   backlog drained: records / seconds from the first produce to the last record readable). Then
   records are produced at fixed fractions of it (10 %, 50 %, 90 %) for a fixed time each, each
   record carrying its own send time, into a topic with ``LogAppendTime``; an independent client
   (happybase on Thrift1, not the sink's Thrift2 client) polls 1 in ``--sample`` row keys every
   ``POLL_MS`` and records when each becomes readable. Latency = readable time - Kafka append time
   (from the producer's delivery report). The stage is then restarted and the first
   ``--first-seconds`` at 50 % are reported on their own. Beside each: the stage's own histograms
   (progress file, ``latency.*`` legs), for the same records.
2. Hive -> HBase: a Hive-source pipeline (``headwater run``: ingest + process) runs idle; Hive
   partitions of ``--hive-rows`` rows are inserted (the first right after both stages are idle) and
   each is timed from the Hive commit (the INSERT returned) to all its rows readable in HBase.

Usage: .venv/bin/python benchmarks/latency_bench.py [--quick]   (quick ~3-4 min, full ~10 min)
Uses the local stack (started if needed) and its own database/topics/tables (``lat*``).
The outside client polls every POLL_MS: its figures include up to that much (and one HBase read) of delay.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import queue
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

POLL_MS = 50
TOPIC = "lat.events"
KAFKA_SPEC = """
name: latk
source: {{type: kafka, topic: {topic}, key_fields: [id]}}
schema: {{id: string, n: bigint, sent_ms: bigint, payload: string}}
sink: {{type: hbase, table: "lat:events", row_key: "{{id}}", columns: {{d: [n, sent_ms, payload]}}}}
dead_letter: {{topic: lat.events.dlq}}
process: {{trigger: {trigger}, max_offsets_per_trigger: 200000}}
"""
HIVE_SPEC = """
name: lath
source: {{type: hive, table: lat.rows_raw, mode: incremental, partitions: true{poll}}}
topic: {{name: lat.rows, partitions: 2, key: [id]}}
schema: {{id: string, n: bigint, v: string, dt: string}}
sink: {{type: hbase, table: "lat:rows", row_key: "{{id}}", columns: {{d: [n, v, dt]}}}}
dead_letter: {{topic: lat.rows.dlq}}
process: {{trigger: {trigger}}}
"""
LEGS = ("latency.kafka_to_batch", "latency.batch_to_sink.hbase", "latency.end_to_end", "batch")


# --- helpers --------------------------------------------------------------------------------------
def pct(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``values`` (nearest rank)."""
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q * len(s) + 0.5) - 1))]


def summary(values: list[float]) -> str:
    if not values:
        return "no samples"
    return (f"p50 {pct(values, .5):7.0f}  p90 {pct(values, .9):7.0f}  p99 {pct(values, .99):7.0f}  "
            f"max {max(values):7.0f} ms  (n={len(values)})")  # fmt: skip


def histograms(progress: Path) -> dict[str, list[int]]:
    """The stage's histograms (bucket counts) from its progress file."""
    with contextlib.suppress(FileNotFoundError, json.JSONDecodeError):
        data = json.loads(progress.read_text())
        return {k: list(v["counts"]) for k, v in data.get("histograms", {}).items()}
    return {}


def inside(before: dict[str, list[int]], after: dict[str, list[int]]) -> str:
    """The stage's own latency legs between two snapshots: p50/p99 per leg (bucket upper bounds, ms)."""
    from headwater.observability.progress import LatencyHistogram

    out = []
    for leg in LEGS:
        key = next((k for k in after if k == leg or (leg.endswith(".hbase") and k.startswith("latency.batch_to_sink"))),
                   None)  # fmt: skip
        if key is None:
            continue
        a, b = after[key], before.get(key, [0] * len(after[key]))
        h = LatencyHistogram([x - y for x, y in zip(a, b, strict=True)])
        if h.total:
            out.append(f"{key.removeprefix('latency.')} p50 {h.percentile(0.5):.0f} p99 {h.percentile(0.99):.0f}")
    return "; ".join(out) or "-"


def state(progress: Path) -> dict[str, Any]:
    with contextlib.suppress(FileNotFoundError, json.JSONDecodeError):
        return dict(json.loads(progress.read_text()))
    return {}


def wait_for(what: str, check: Any, timeout: float = 300.0, every: float = 0.2) -> None:
    t0 = time.monotonic()
    while not check():
        if time.monotonic() - t0 > timeout:
            raise SystemExit(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(every)


class Watcher(threading.Thread):
    """An independent client: polls the sampled row keys until readable; records readable - appended."""

    def __init__(self, cfg: Any, table: str) -> None:
        super().__init__(daemon=True)
        self.cfg, self.table = cfg, table
        self.inbox: queue.Queue[tuple[bytes, float, str]] = queue.Queue()
        self.pending: dict[bytes, tuple[float, str]] = {}
        self.results: dict[str, list[float]] = {}
        self.readable_at: dict[bytes, float] = {}
        self.stop = threading.Event()
        self.lock = threading.Lock()

    def expect(self, key: bytes, appended_ms: float, phase: str) -> None:
        self.inbox.put((key, appended_ms, phase))

    def outstanding(self) -> int:
        with self.lock:
            return len(self.pending) + self.inbox.qsize()

    def run(self) -> None:
        import happybase

        conn = happybase.Connection(self.cfg.host, self.cfg.thrift_port, timeout=60000)
        table = conn.table(self.table)
        while not self.stop.is_set():
            tick = time.monotonic()
            with self.lock:
                while True:
                    try:
                        key, ts, phase = self.inbox.get_nowait()
                    except queue.Empty:
                        break
                    self.pending[key] = (ts, phase)
                keys = list(self.pending)[:2000]
            found = [k for k, _ in table.rows(keys, columns=[b"d:n"])] if keys else []
            now = time.time() * 1000
            with self.lock:
                for k in found:
                    ts, phase = self.pending.pop(k)
                    self.readable_at[k] = now
                    if phase:
                        self.results.setdefault(phase, []).append(now - ts)
            self.stop.wait(max(0.0, POLL_MS / 1000 - (time.monotonic() - tick)))
        conn.close()


class Producer:
    """Produces ``{id, n, sent_ms, payload}`` records; sampled ones go to the watcher with their append time."""

    def __init__(self, cfg: Any, watcher: Watcher, sample: int) -> None:
        from confluent_kafka import Producer as KProducer

        self.p = KProducer({"bootstrap.servers": cfg.kafka_bootstrap, "linger.ms": 5, "acks": "all",
                            "enable.idempotence": True, "queue.buffering.max.messages": 1_000_000})  # fmt: skip
        self.watcher, self.sample, self.n = watcher, sample, 0
        self.payload = "x" * 100
        self.phase = ""

    def _report(self, err: Any, msg: Any, key: bytes, phase: str) -> None:
        if err is None:
            self.watcher.expect(key, float(msg.timestamp()[1]), phase)

    def send(self, count: int) -> None:
        for _ in range(count):
            n = self.n
            self.n += 1
            key = f"k{n:012d}".encode()
            value = json.dumps(
                {"id": key.decode(), "n": n, "sent_ms": int(time.time() * 1000), "payload": self.payload}
            )
            if n % self.sample == 0:
                phase = self.phase
                self.p.produce(TOPIC, value, key, on_delivery=lambda e, m, k=key, ph=phase: self._report(e, m, k, ph))
            else:
                self.p.produce(TOPIC, value, key)
            self.p.poll(0)

    def at_rate(self, rate: float, seconds: float) -> None:
        """``rate`` records/s for ``seconds``, paced every 10 ms."""
        t0 = time.monotonic()
        sent = 0
        while (elapsed := time.monotonic() - t0) < seconds:
            due = int(rate * elapsed) - sent
            if due > 0:
                self.send(due)
                sent += due
            self.p.poll(0)
            time.sleep(0.01)
        self.p.flush(30)

    def last_key(self) -> bytes:
        return f"k{self.n - 1:012d}".encode()


def start_stage(spec: Path, log: Path, stage: str | None) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "headwater.cli", "run", str(spec), "--no-ui"] + (["--stage", stage] if stage else [])
    with log.open("a") as out:
        return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=out)


def stop_stage(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# --- 1. Kafka -> HBase ---------------------------------------------------------------------------
def kafka_part(args: argparse.Namespace, cfg: Any, tmp: Path) -> None:
    from headwater import kafka
    from headwater.context import PipelineContext, reset_pipeline
    from headwater.spec import load_spec

    spec_path = tmp / "latk.yaml"
    spec_path.write_text(KAFKA_SPEC.format(topic=TOPIC, trigger=args.trigger))
    spec = load_spec(spec_path)
    reset_pipeline(spec, topics=True, table=True)
    conn = spec.connections.kafka
    with contextlib.suppress(Exception):
        kafka.admin(conn).delete_topics([TOPIC])[TOPIC].result(timeout=30)
    wait_for("the old topic to go", lambda: TOPIC not in kafka.admin(conn).list_topics(timeout=10).topics, 60)
    kafka.ensure_topic(conn, TOPIC, 2, config={"message.timestamp.type": "LogAppendTime"})
    progress = PipelineContext(spec).progress_path("process")
    progress.unlink(missing_ok=True)
    log = tmp / "latk.log"
    t0 = time.monotonic()
    proc = start_stage(spec_path, log, "process")
    wait_for("the process stage to run", lambda: state(progress).get("state") == "running", 300)
    started = time.monotonic() - t0
    watcher = Watcher(cfg, "lat:events")
    wait_for("the sink table", lambda: _table_exists(cfg, "lat:events"), 120)
    watcher.start()
    producer = Producer(cfg, watcher, args.sample)
    print(f"\n== Kafka -> HBase (trigger {args.trigger}; sampling 1 in {args.sample}; outside client polls every "
          f"{POLL_MS} ms) ==\nprocess stage running {started:.1f}s after its launch")  # fmt: skip
    # Warm: small bursts until a burst is readable within 3 s (or 8 bursts).
    for i in range(8):
        producer.phase = f"warm{i}"
        producer.at_rate(1000, 2)
        drain(watcher, 120)
        lat = watcher.results.get(f"warm{i}", [])
        if lat and max(lat) < 3000:
            break
    print(f"warm-up: {i + 1} bursts of 2,000 records; last burst {summary(watcher.results.get(f'warm{i}', []))}")

    # Sustained maximum: a backlog, produced as fast as possible, drained.
    busy0 = state(progress).get("counters", {})
    t0 = time.time()
    producer.phase = ""
    producer.send(args.backlog)
    producer.p.flush(120)
    produced_in = time.time() - t0
    last = producer.last_key()
    watcher.expect(last, t0 * 1000, "")
    wait_for("the backlog to drain", lambda: last in watcher.readable_at, 900, 0.05)
    drained = watcher.readable_at[last] / 1000 - t0
    rows0 = busy0.get("rows_in", 0)
    # The stage flushes its progress just after the write the watcher saw.
    wait_for("the stage's progress", lambda: state(progress).get("counters", {}).get("rows_in", 0) - rows0
             >= args.backlog, 60)  # fmt: skip
    busy1 = state(progress).get("counters", {})
    max_rate = args.backlog / drained
    rows = busy1.get("rows_in", 0) - busy0.get("rows_in", 0)
    busy = busy1.get("busy_seconds", 0) - busy0.get("busy_seconds", 0)
    print(f"sustained maximum: {max_rate:,.0f} records/s ({args.backlog:,} records produced in {produced_in:.1f}s, "
          f"all readable after {drained:.1f}s; stage busy {busy:.1f}s for {rows:,} records = "
          f"{rows / busy if busy else 0:,.0f} records/s of batch time)")  # fmt: skip
    wait_for("the stage to be idle", lambda: _idle(progress), 120)

    print(f"{'rate':>16}  outside (Kafka append -> readable)                      inside (stage histograms, ms)")
    for frac in args.fractions:
        rate = max_rate * frac
        phase = f"{frac:.0%}"
        producer.phase = phase
        h0 = histograms(progress)
        producer.at_rate(rate, args.seconds)
        drain(watcher, 120)
        print(f"{phase:>4} {rate:>7,.0f}/s  {summary(watcher.results.get(phase, []))}  | "
              f"{inside(h0, histograms(progress))}")  # fmt: skip

    # The first minute after a restart, at 50 %.
    stop_stage(proc)
    progress.unlink(missing_ok=True)
    t0 = time.monotonic()
    proc = start_stage(spec_path, log, "process")
    wait_for("the process stage to run again", lambda: state(progress).get("state") == "running", 300)
    restarted = time.monotonic() - t0
    h0 = histograms(progress)
    producer.phase = "first"
    producer.at_rate(max_rate * 0.5, args.first_seconds)
    drain(watcher, 120)
    print(f" 50% after a restart (running {restarted:.1f}s after launch; first {args.first_seconds:.0f}s): "
          f"{summary(watcher.results.get('first', []))}  | {inside(h0, histograms(progress))}")  # fmt: skip
    stop_stage(proc)
    watcher.stop.set()
    watcher.join()


def _idle(progress: Path) -> bool:
    s = state(progress)
    return s.get("state") == "running" and time.time() - float(s.get("last_written_at") or 0) > 2


def _table_exists(cfg: Any, name: str) -> bool:
    import happybase

    conn = happybase.Connection(cfg.host, cfg.thrift_port, timeout=60000)
    try:
        return name.encode() in conn.tables()
    finally:
        conn.close()


def drain(watcher: Watcher, timeout: float) -> None:
    wait_for("the sampled rows to be readable", lambda: watcher.outstanding() == 0, timeout, 0.05)


# --- 2. Hive -> HBase ----------------------------------------------------------------------------
def hive_part(args: argparse.Namespace, cfg: Any, tmp: Path) -> None:
    from headwater.context import PipelineContext, reset_pipeline
    from headwater.spec import load_spec

    spec_path = tmp / "lath.yaml"
    poll = f", poll: {args.hive_poll}" if args.hive_poll else ""
    spec_path.write_text(HIVE_SPEC.format(poll=poll, trigger=args.trigger))
    spec = load_spec(spec_path)
    reset_pipeline(spec, topics=True, table=True)
    ctx = PipelineContext(spec)
    spark = ctx.spark("lat-hive-writer", {"spark.driver.memory": "512m"})
    spark.sql("CREATE DATABASE IF NOT EXISTS lat")
    spark.sql("DROP TABLE IF EXISTS lat.rows_raw")
    spark.sql("CREATE TABLE lat.rows_raw (id STRING, n BIGINT, v STRING) PARTITIONED BY (dt STRING) STORED AS PARQUET")
    spark.sql("SET hive.exec.dynamic.partition.mode=nonstrict")
    for stage in ("ingest", "process"):
        ctx.progress_path(stage).unlink(missing_ok=True)
    proc = start_stage(spec_path, tmp / "lath.log", None)
    ingest, process = ctx.progress_path("ingest"), ctx.progress_path("process")
    wait_for("both stages idle", lambda: state(ingest).get("state") == "idle"
             and state(process).get("state") == "running", 300)  # fmt: skip
    watcher = Watcher(cfg, "lat:rows")
    wait_for("the sink table", lambda: _table_exists(cfg, "lat:rows"), 120)
    watcher.start()
    print(f"\n== Hive -> HBase ({args.hive_rows:,} rows per partition; ingest poll "
          f"{getattr(spec.source, 'poll', '?')}, trigger {args.trigger}) ==")  # fmt: skip
    times = []
    for i in range(args.partitions):
        h0 = {**{f"ingest.{k}": v for k, v in histograms(ingest).items()}, **histograms(process)}
        lo, hi = i * 1_000_000, i * 1_000_000 + args.hive_rows
        spark.sql(f"INSERT INTO lat.rows_raw PARTITION (dt='p{i:03d}') SELECT concat('h', lpad(cast(id AS STRING), 10, "
                  f"'0')), id, concat('v', id) FROM range({lo}, {hi})")  # fmt: skip
        committed = time.time()
        for n in range(lo, hi):
            watcher.expect(f"h{n:010d}".encode(), committed * 1000, f"p{i}")
        drain(watcher, 300)
        last = max(watcher.readable_at[f"h{n:010d}".encode()] for n in range(lo, hi))
        took = last / 1000 - committed
        times.append(took)
        lat = watcher.results[f"p{i}"]
        h1 = {**{f"ingest.{k}": v for k, v in histograms(ingest).items()}, **histograms(process)}
        legs = inside(h0, h1)
        poll = _delta_p50(h0, h1, "ingest.poll")
        print(
            f"partition {i + 1} ({'first data after idle start' if i == 0 else 'warm'}): all readable "
            f"{took:.2f}s after the commit (first row {min(lat) / 1000:.2f}s)  | ingest poll {poll} ms; {legs}"
        )
        if i + 1 < args.partitions:
            time.sleep(args.gap)  # idle between partitions, as a real table receives them
    print(f"Hive commit -> all readable: p50 {statistics.median(times):.2f}s over {len(times)} partitions")
    stop_stage(proc)
    watcher.stop.set()
    watcher.join()
    spark.stop()


def _delta_p50(h0: dict[str, list[int]], h1: dict[str, list[int]], key: str) -> str:
    from headwater.observability.progress import LatencyHistogram

    if key not in h1:
        return "-"
    b = h0.get(key, [0] * len(h1[key]))
    p = LatencyHistogram([x - y for x, y in zip(h1[key], b, strict=True)]).percentile(0.5)
    return "-" if p is None else f"{p:.0f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="short phases (~3-4 minutes in all)")
    ap.add_argument("--seconds", type=float, help="seconds per rate (default 45; quick 20)")
    ap.add_argument("--first-seconds", type=float, help="seconds measured after a restart (default 60; quick 30)")
    ap.add_argument("--backlog", type=int, help="records of the maximum-rate backlog (default 300,000; quick 150,000)")
    ap.add_argument("--fractions", type=float, nargs="+", default=[0.1, 0.5, 0.9])
    ap.add_argument("--sample", type=int, default=50, help="poll 1 row in this many")
    ap.add_argument(
        "--trigger", default="500 milliseconds", help="process.trigger of both pipelines (the spec default)"
    )
    ap.add_argument("--hive-rows", type=int, default=5000)
    ap.add_argument("--partitions", type=int, help="Hive partitions inserted (default 5; quick 3)")
    ap.add_argument("--hive-poll", default=None, help="source.poll of the Hive pipeline (default: the spec default)")
    ap.add_argument("--gap", type=float, default=5.0, help="idle seconds between two partitions")
    ap.add_argument("--only", choices=["kafka", "hive"], help="run one part")
    args = ap.parse_args()
    args.seconds = args.seconds or (20 if args.quick else 45)
    args.first_seconds = args.first_seconds or (30 if args.quick else 60)
    args.backlog = args.backlog or (150_000 if args.quick else 300_000)
    args.partitions = args.partitions or (3 if args.quick else 5)

    from headwater.stack import Stack, StackConfig

    cfg = StackConfig.from_env()
    Stack(cfg).up()
    tmp = Path(tempfile.mkdtemp(prefix="latency-bench-"))
    print(f"stage logs in {tmp}")
    t0 = time.monotonic()
    if args.only != "hive":
        kafka_part(args, cfg, tmp)
    if args.only != "kafka":
        hive_part(args, cfg, tmp)
    print(f"\n(benchmark took {time.monotonic() - t0:.0f}s)")


if __name__ == "__main__":
    main()
