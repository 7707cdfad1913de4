"""What the fault-matrix tests share: a shared Hive table, ingest and the process stage started after it,
a seeded random source, the exact check with its figures, and readers of a stage's progress and checkpoint."""

from __future__ import annotations

import json
import os
import random
import subprocess
import time
from pathlib import Path
from typing import Any

import psutil

from headwater.context import PipelineContext
from headwater.demo import create_orders
from headwater.observability.progress import read_progress
from headwater.spec import load_spec
from kit import compare, dead_letters, expected_from_hive, hbase_cells, run_cli, start_stage

CLEAN = {"lost": [], "phantom": [], "dup": [], "corrupt": []}
SHARED_ROWS = 30_000  # orders in the shared table of a fault-matrix module


def shared_orders(spark: Any, prefix: str) -> tuple[str, Any]:
    """One Hive table of :data:`SHARED_ROWS` orders (and its oracle) for the tests of a module that only
    read it; each test has its own topic and table."""
    table = f"{prefix}_{int(time.time())}.orders_raw"
    create_orders(spark, table, SHARED_ROWS)
    return table, expected_from_hive(spark, table)


def ingest(path: Path) -> None:
    """Run the ingest stage of the spec at ``path`` until drained."""
    out = run_cli("run", str(path), "--stage", "ingest", "--until-drained")
    assert out.returncode == 0, out.stderr[-3000:]


def ingest_then_process(path: Path, tmp: Path) -> tuple[Any, Path, subprocess.Popen[bytes]]:
    """Ingest the spec at ``path``, then start its process stage until drained, logging to
    ``tmp/process.log``; returns (spec, log, process)."""
    spec = load_spec(path)
    ingest(path)
    log = tmp / "process.log"
    return spec, log, start_stage(path, "process", log, "--until-drained")


def seeded(test: str) -> random.Random:
    """A random source for kill moments; the seed is printed so a failure can be replayed
    (``HEADWATER_FAULT_SEED=<seed>``)."""
    seed = int(os.environ.get("HEADWATER_FAULT_SEED") or time.time_ns() % 1_000_000_007)
    print(f"{test}: HEADWATER_FAULT_SEED={seed}")
    return random.Random(seed)


def counters(spec: Any, stage: str = "process") -> dict[str, Any]:
    """The counters of a stage's progress file (this run's; each run starts them at 0)."""
    return dict((read_progress(PipelineContext(spec).progress_path(stage)) or {}).get("counters", {}))


def succeeded(spec: Any, log: Path, code: int) -> tuple[str, dict[str, Any]]:
    """The process stage's log text and counters once it has exited with ``code``, which must be 0."""
    text = log.read_text(errors="replace")
    assert code == 0, text[-4000:]
    return text, counters(spec)


def batches_done(spec: Any, at_least: int, pid: int) -> bool:
    """Whether the process stage running as ``pid`` has written ``at_least`` micro-batches (the
    progress file of an earlier, killed run does not count)."""
    data = read_progress(PipelineContext(spec).progress_path("process")) or {}
    return data.get("pid") == pid and int(data.get("counters", {}).get("batches", 0)) >= at_least


def check_exact(stack: Any, spark: Any, spec: Any, oracle: Any = None, *, types: dict[str, str] | None = None,
                allow_dlq_duplicates: bool = False, **figures: Any) -> dict[str, Any]:  # fmt: skip
    """HBase equals the oracle (nothing lost, no phantom, one version per cell with the record's
    timestamp, values exact) and the dead letters are exactly the malformed ids. Prints the figures
    (records, kills, lost, dup, wrong, dead letters and their duplicates) and returns them."""
    expected, expected_dlq = oracle or expected_from_hive(spark, spec.source.table)
    cells = hbase_cells(stack.config.host, stack.config.thrift2_port, spec.sink.full_table)
    report = compare(expected, cells, types)
    dlq = dead_letters(stack.config.kafka_bootstrap, spec.dead_letter.topic, allow_duplicates=allow_dlq_duplicates)
    out = {**figures, "hbase_rows": len(cells), "expected_rows": len(expected),
           "lost": len(expected) - (len(cells) - len(report["phantom"])),
           "phantom": len(report["phantom"]), "dup": len(report["dup"]), "wrong": len(report["corrupt"]),
           "dead_letters": len(dlq), "dead_letter_duplicates": dlq.duplicated}  # fmt: skip
    print(f"figures {spec.name}: {json.dumps(out)}")
    assert report == CLEAN, {k: v[:5] for k, v in report.items()}
    assert len(cells) == len(expected)
    assert {k: v["reason"] for k, v in dlq.items()} == expected_dlq
    return out


def committed_ends(checkpoint: str | Path, topic: str) -> tuple[int, dict[int, int]] | None:
    """(last committed batch id, per partition the offset it read up to) from a Spark checkpoint."""
    commits = [int(f.name) for f in Path(checkpoint, "commits").iterdir() if f.name.isdigit()]
    if not commits:
        return None
    last = max(commits)
    lines = Path(checkpoint, "offsets", str(last)).read_text().splitlines()
    ends = json.loads(lines[-1])[topic]  # v1 / metadata / one line per source
    return last, {int(p): int(o) for p, o in ends.items()}


def python_workers(root: int) -> list[psutil.Process]:
    """The Python worker processes of a stage (children of its JVM's ``pyspark.daemon``), not the daemon."""
    out = []
    for proc in psutil.Process(root).children(recursive=True):
        try:
            cmd = " ".join(proc.cmdline())
            if ("pyspark.daemon" in cmd or "pyspark.worker" in cmd) and "pyspark.daemon" in " ".join(
                proc.parent().cmdline()
            ):
                out.append(proc)
        except psutil.Error:
            continue
    return out
