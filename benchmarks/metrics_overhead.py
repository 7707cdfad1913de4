"""What the metrics cost the process stage: an A/B run of the stage on the same backlog.

The backlog: ``--rows`` orders (examples/orders.yaml's data and transforms, a few malformed
records among them) ingested once into a topic of their own. The process stage then works it off
with ``--until-drained`` several times, alternating the modes, each run from a fresh checkpoint
and a fresh HBase table, on an idle HBase:

- ``off``:  ``metrics: {enabled: false}``: no Prometheus endpoint;
- ``on``:   ``metrics: {enabled: true}``, its ``/metrics`` scraped every ``--scrape-every`` seconds
  (Prometheus defaults to 15 s; 5 s here by default, to be conservative);
- ``bare``: as ``off``, and the batch observation without the per-reason dead-letter list
  (``observe.counted`` patched in the stage process): what ``enabled: false`` cannot switch off.

``enabled: false`` only turns the endpoint off: the stage records the latency legs and the dead-
letter reasons in its progress file either way (``headwater status``, the dashboard and the
summary read them), so ``on`` vs ``off`` measures the endpoint and its scrapes, and ``off`` vs
``bare`` the reason aggregate inside the Spark job.

Rates: records / sum of micro-batch times (the stage's ``busy_seconds``: JVM start-up excluded),
records / wall time of the whole run, and records / CPU-second of the stage process and its JVM (the
steadiest of the three on a machine busy with other work). Prints figures; asserts nothing. Usage:
  .venv/bin/python benchmarks/metrics_overhead.py [--rows 300000] [--rounds 2] [--modes off,on,bare]
Uses the local stack (started if needed) and its own database/topics/table (``mbench*``).
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "orders.yaml"
NAMES = (("demo.orders_raw", "mbench.orders_raw"), ("demo.orders.dlq", "mbench.orders.dlq"),
         ("demo.orders", "mbench.orders"), ("demo:orders", "mbench:orders"), ("name: orders", "name: mbench"))  # fmt: skip


def spec_text(enabled: bool, port: int) -> str:
    """examples/orders.yaml on the benchmark's names, with the metrics on or off."""
    text = EXAMPLE.read_text()
    for old, new in NAMES:
        assert old in text, old
        text = text.replace(old, new)
    return text + f"\nmetrics: {{enabled: {'true' if enabled else 'false'}, process_port: {port}}}\n"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def bare_stage(argv: list[str]) -> None:
    """Run the CLI with the batch observation minus its per-reason dead-letter list (the ``bare`` mode)."""
    import functools

    from headwater.streaming import observe

    observe.counted = functools.partial(observe.counted, reasons=False)  # type: ignore[assignment]
    from headwater.cli import main

    sys.argv = ["headwater", *argv]
    main()


def scraper(url: str, every: float, stop: threading.Event, sizes: list[int]) -> None:
    """GET ``url`` every ``every`` seconds until ``stop``; the response sizes go to ``sizes``."""
    while not stop.wait(every):
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=5) as r:
            sizes.append(len(r.read()))


def run_once(mode: str, spec_path: Path, port: int, scrape_every: float, log_path: Path) -> dict[str, Any]:
    """One run of the process stage over the whole backlog from a fresh checkpoint and table."""
    from pipeline_bench import cpu_seconds

    from headwater.context import PipelineContext, reset_pipeline
    from headwater.observability.progress import read_progress
    from headwater.spec import load_spec

    spec = load_spec(spec_path)
    reset_pipeline(spec, table=True)  # checkpoint, progress, HBase table; the topic stays
    stage = ["run", str(spec_path), "--stage", "process", "--until-drained"]
    cmd = ([sys.executable, __file__, "--as-bare-stage", *stage] if mode == "bare"
           else [sys.executable, "-m", "headwater.cli", *stage])  # fmt: skip
    stop, sizes = threading.Event(), list[int]()
    t0 = time.perf_counter()
    with log_path.open("w") as log:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log)
    thread = None
    if mode == "on":
        thread = threading.Thread(target=scraper, args=(f"http://127.0.0.1:{port}/metrics", scrape_every, stop, sizes))
        thread.start()
    cpu = 0.0
    while proc.poll() is None:  # CPU seconds of the stage and its JVM: less swayed by other load than time
        with contextlib.suppress(Exception):
            cpu = cpu_seconds(proc.pid)
        time.sleep(0.5)
    code = proc.wait()
    wall = time.perf_counter() - t0
    stop.set()
    if thread is not None:
        thread.join()
    c = (read_progress(PipelineContext(spec).progress_path("process")) or {}).get("counters", {})
    rows, busy = int(c.get("rows_in", 0)), float(c.get("busy_seconds", 0.0))
    return {"mode": mode, "exit": code, "rows": rows, "batches": int(c.get("batches", 0)), "busy": busy,
            "wall": wall, "rate": rows / busy if busy else 0.0, "wall_rate": rows / wall, "cpu": cpu,
            "cpu_rate": rows / cpu if cpu else 0.0,
            "scrapes": len(sizes), "scrape_bytes": max(sizes, default=0)}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=300_000)
    ap.add_argument("--rounds", type=int, default=2, help="runs of each mode (alternating)")
    ap.add_argument("--modes", default="off,on,bare", help="comma-separated: off, on, bare")
    ap.add_argument("--scrape-every", type=float, default=5.0, help="seconds between scrapes in mode 'on'")
    args = ap.parse_args()
    modes = args.modes.split(",")

    from pipeline_bench import env_report, wait_until_idle

    from headwater.context import PipelineContext, reset_pipeline
    from headwater.demo import create_orders
    from headwater.ingest.runner import IngestStage
    from headwater.spec import load_spec
    from headwater.stack import Stack, StackConfig

    cfg = StackConfig.from_env()
    Stack(cfg).up()
    print("environment:", env_report(), flush=True)
    tmp = Path(tempfile.mkdtemp())
    port = free_port()
    paths = {}
    for mode in ("off", "on", "bare"):
        paths[mode] = tmp / f"mbench-{mode}.yaml"
        paths[mode].write_text(spec_text(mode == "on", port))
    spec = load_spec(paths["off"])
    reset_pipeline(spec, topics=True, table=True)
    ctx = PipelineContext(spec)
    t0 = time.perf_counter()
    spark = ctx.spark("mbench", {"spark.driver.memory": "1g"})
    create_orders(spark, spec.source.table, args.rows)  # type: ignore[attr-defined]
    stage = IngestStage(ctx, spark=spark)
    stage.prepare()
    res = stage.poll_once()
    assert res is not None and res.produced == args.rows, res
    stage.positions.close()
    spark.stop()
    print(f"backlog: {args.rows:,} orders in topic {spec.topic.name} ({time.perf_counter() - t0:.0f}s to make)")

    runs = []
    for i in range(args.rounds):
        for mode in modes:
            waited = wait_until_idle(cfg)
            r = run_once(mode, paths[mode], port, args.scrape_every, tmp / f"{mode}-{i}.log")
            runs.append(r)
            print(f"run {len(runs)} {mode:<4}: {r['rows']:,} records in {r['batches']} batches: {r['rate']:,.0f} "
                  f"records/s over {r['busy']:.1f}s of batches; {r['wall_rate']:,.0f} records/s over {r['wall']:.1f}s "
                  f"wall; {r['cpu_rate']:,.0f} records per CPU-second ({r['cpu']:.0f} CPU-s) "
                  f"(exit {r['exit']}; HBase idle after {waited:.0f}s"
                  + (f"; {r['scrapes']} scrapes of {r['scrape_bytes']:,} B)" if mode == "on" else ")"), flush=True)  # fmt: skip
    medians: dict[str, tuple[float, ...]] = {}
    for mode in modes:
        mine = [r for r in runs if r["mode"] == mode and r["exit"] == 0]
        if mine:
            medians[mode] = tuple(statistics.median(r[k] for r in mine) for k in ("rate", "wall_rate", "cpu_rate"))
            print(f"median {mode:<4}: {medians[mode][0]:,.0f} records/s (batches), {medians[mode][1]:,.0f} records/s "
                  f"(wall), {medians[mode][2]:,.0f} records per CPU-second")  # fmt: skip
    pairs = (("on", "off", "the endpoint and its scrapes"), ("off", "bare", "the per-reason dead-letter list"),
             ("on", "bare", "the endpoint, its scrapes and the reason list"))  # fmt: skip
    for a, b, what in pairs:
        if a in medians and b in medians:
            over = [medians[b][i] / medians[a][i] - 1 for i in range(3)]
            print(f"OVERHEAD {a} vs {b} ({what}): {over[0] * 100:+.1f} % (batches), {over[1] * 100:+.1f} % (wall), "
                  f"{over[2] * 100:+.1f} % (CPU)  (positive: costlier; target <= 3 %)")  # fmt: skip
    print(f"logs: {tmp}")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    if len(sys.argv) > 1 and sys.argv[1] == "--as-bare-stage":
        bare_stage(sys.argv[2:])
    else:
        main()
