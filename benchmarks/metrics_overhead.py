"""What the metrics cost the process stage: the work they add per micro-batch and per scrape.

The stage only updates its progress file; the Prometheus endpoint reads it when scraped. So the
metrics add, per micro-batch, the latency legs and per-reason dead-letter counters recorded on the
driver (a bigger progress file to write), and per scrape one snapshot turned into metric families
(on another thread, but the same two cores). This measures both and sets them against the micro-
batches of a real run of the process stage (its progress file: micro-batches and busy seconds).
Spark-side, the reasons of the bad records travel in the observation that already carries their
positions: one more list of (few) strings, not measured here.

Prints figures; asserts nothing. Usage:
  .venv/bin/python benchmarks/metrics_overhead.py [--home .headwater/pipelines/orders] [--scrape-every 15]
(run `make demo` first for a real progress file; without one, a 1 s micro-batch of 100,000 rows is assumed.)
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest

from headwater.observability.metrics import ProgressCollector
from headwater.observability.progress import ProgressFile

BINS = 64  # Kafka-timestamp bins per batch (streaming.observe.HISTOGRAM_BINS)


def batch_without(p: ProgressFile, i: int) -> None:
    """What a micro-batch did to its progress file before the metrics (counters, end-to-end histogram)."""
    p.add(batches=1, rows_in=100_000, rows_written=99_990, rows_deduped=0, dead_lettered=10, filtered=0,
          write_calls=100, write_retries=0, busy_seconds=1.0)  # fmt: skip
    p.set(last_batch=i, latency_ms=[0] * 140, p50_ms=120.0, p99_ms=900.0)
    p.flush()


def batch_with(p: ProgressFile, i: int, now: float) -> None:
    """The same plus what the metrics added: legs, batch duration, sink write time, reasons, lag per partition."""
    p.add(batches=1, rows_in=100_000, rows_written=99_990, rows_deduped=0, dead_lettered=10, filtered=0,
          write_calls=100, write_retries=0, busy_seconds=1.0)  # fmt: skip
    for b in range(BINS):
        ts = now * 1000 - 2000 + b * 20
        p.observe("latency.end_to_end", now * 1000 + 900 - ts, 1560)
        p.observe("latency.kafka_to_batch", now * 1000 - ts, 1560)
    p.observe("latency.batch_to_sink.hbase", 900, 99_990)
    p.observe("sink_write.hbase", 850)
    p.observe("batch", 1000)
    p.add(**{"dead_letter.malformed_json": 6, "dead_letter.type_mismatch": 4})
    p.set(last_batch=i, latency_ms=[0] * 140, p50_ms=120.0, p99_ms=900.0, last_written_at=now,
          lag_partitions={0: 10, 1: 12, 2: 9, 3: 11})  # fmt: skip
    p.flush()


def per_call(fn: object, n: int) -> float:
    """Median seconds of one call over 5 rounds of ``n``."""
    rounds = []
    for _ in range(5):
        t0 = time.perf_counter()
        for i in range(n):
            fn(i)  # type: ignore[operator]
        rounds.append((time.perf_counter() - t0) / n)
    return statistics.median(rounds)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--home", type=Path, default=Path(".headwater/pipelines/orders"))
    ap.add_argument("--scrape-every", type=float, default=15.0, help="Prometheus scrape interval, seconds")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())
    now = time.time()
    old = ProgressFile(tmp / "a.progress.json", "process")
    new = ProgressFile(tmp / "b.progress.json", "process")
    base = per_call(lambda i: batch_without(old, i), 300)
    withm = per_call(lambda i: batch_with(new, i, now), 300)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ProgressCollector(new, "bench"))  # type: ignore[arg-type]
    scrape = per_call(lambda i: generate_latest(registry), 200)
    size = len(generate_latest(registry))

    real = (
        json.loads((args.home / "process.progress.json").read_text())
        if (args.home / "process.progress.json").exists()
        else None
    )
    if real and real.get("counters", {}).get("batches"):
        c = real["counters"]
        batches, busy = int(c["batches"]), float(c["busy_seconds"])
        source = f"{args.home / 'process.progress.json'}: {batches} micro-batches, {c.get('rows_in', 0):,} records, {busy:.1f} s busy"
    else:
        batches, busy, source = 1, 1.0, "assumed: one 1 s micro-batch"
    per_batch = busy / batches
    added = withm - base
    scrape_share = scrape / args.scrape_every
    print(
        f"progress file per micro-batch: {base * 1e6:,.0f} us before the metrics, {withm * 1e6:,.0f} us with them "
        f"(+{added * 1e6:,.0f} us)"
    )
    print(
        f"one scrape: {scrape * 1e3:,.2f} ms for {size:,} bytes of metrics; every {args.scrape_every:g} s: "
        f"{scrape_share * 100:.4f} % of one core"
    )
    print(f"micro-batches: {source}; {per_batch * 1e3:,.0f} ms each")
    overhead = (added + scrape_share * per_batch) / per_batch
    print(f"metrics overhead on the process stage: {overhead * 100:.3f} % of its micro-batch time")


if __name__ == "__main__":
    main()
