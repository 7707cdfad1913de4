"""A/B of the process stage between two checkouts of headwater, on one backlog, runs alternating.

Each run resets the pipeline (checkpoint and table; the topic and its backlog stay), runs
``headwater run SPEC --stage process --until-drained`` with the checkout's ``src`` first on the
Python path, and prints wall time, CPU-seconds of the whole process tree (driver JVM and Python
workers) and records/s without the first micro-batch. Alternating the two sides spreads the
machine's drift over both; the mean and spread per side are printed at the end. Asserts nothing.

Usage (a stack running, the spec's topic filled, e.g. by ``benchmarks/pipeline_bench.py``)::

    .venv/bin/python benchmarks/process_ab.py SPEC OLD_CHECKOUT NEW_CHECKOUT [--pairs 5]

(``git worktree add ../old <commit>`` makes OLD_CHECKOUT.)
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil


def run_once(spec: Path, checkout: Path) -> tuple[float, float, float]:
    """(wall s, CPU s of the process tree, records/s without the first batch) of one drained run."""
    env = {**os.environ, "PYTHONPATH": str(checkout / "src")}
    cli = [sys.executable, "-m", "headwater.cli"]
    subprocess.run([*cli, "reset", str(spec), "--table", "--yes"], env=env, capture_output=True, check=True)
    with tempfile.TemporaryFile("w+") as log:
        t0 = time.perf_counter()
        proc = subprocess.Popen([*cli, "run", str(spec), "--stage", "process", "--until-drained"], env=env,
                                stdout=subprocess.DEVNULL, stderr=log)  # fmt: skip
        cpu: dict[int, float] = {}  # last CPU seen per process: children come and go during the run
        while proc.poll() is None:
            with contextlib.suppress(psutil.Error):
                root = psutil.Process(proc.pid)
                for p in [root, *root.children(recursive=True)]:
                    with contextlib.suppress(psutil.Error):
                        cpu[p.pid] = sum(p.cpu_times()[:2])
            time.sleep(0.5)
        wall = time.perf_counter() - t0
        log.seek(0)
        batches = [(int(m[1]), float(m[2])) for m in re.finditer(r"batch \d+: (\d+) in, .* in ([\d.]+)s", log.read())]
    if proc.returncode != 0:
        raise SystemExit(f"{checkout}: the process stage exited with {proc.returncode}")
    later = batches[1:]
    steady = sum(n for n, _ in later) / sum(s for _, s in later) if later else 0.0
    return wall, sum(cpu.values()), steady


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("spec", type=Path)
    ap.add_argument("old", type=Path, help="checkout A (its src/ is put first on the Python path)")
    ap.add_argument("new", type=Path, help="checkout B")
    ap.add_argument("--pairs", type=int, default=5)
    args = ap.parse_args()
    results: dict[str, list[tuple[float, float, float]]] = {"A": [], "B": []}
    for i in range(args.pairs):
        order = [("A", args.old), ("B", args.new)] if i % 2 == 0 else [("B", args.new), ("A", args.old)]
        for side, checkout in order:
            wall, cpu, steady = run_once(args.spec, checkout)
            results[side].append((wall, cpu, steady))
            print(f"pair {i + 1} {side}: wall {wall:.1f}s  CPU {cpu:.1f}s  {steady:,.0f} records/s after batch 1",
                  flush=True)  # fmt: skip
    for side, rows in results.items():
        cpus, rates = [r[1] for r in rows], [r[2] for r in rows]
        spread = statistics.stdev(cpus) if len(cpus) > 1 else 0.0
        print(f"{side}: CPU mean {statistics.mean(cpus):.1f}s (stdev {spread:.1f}), "
              f"records/s mean {statistics.mean(rates):,.0f}")  # fmt: skip
    a, b = (statistics.mean(r[1] for r in results[s]) for s in ("A", "B"))
    print(f"RATIO CPU B / A = {b / a:.3f}")


if __name__ == "__main__":
    main()
