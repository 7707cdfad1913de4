"""What the fault-matrix tests share: a seeded random source, the exact check with its figures, and
readers of a stage's progress and checkpoint."""

from __future__ import annotations

import json
import os
import random
import time
from pathlib import Path
from typing import Any

import psutil

from headwater.context import PipelineContext
from headwater.observability.progress import read_progress
from kit import compare, dead_letters, expected_from_hive, hbase_cells

CLEAN = {"lost": [], "phantom": [], "dup": [], "corrupt": []}


def seeded(test: str) -> random.Random:
    """A random source for kill moments; the seed is printed so a failure can be replayed
    (``HEADWATER_FAULT_SEED=<seed>``)."""
    seed = int(os.environ.get("HEADWATER_FAULT_SEED") or time.time_ns() % 1_000_000_007)
    print(f"{test}: HEADWATER_FAULT_SEED={seed}")
    return random.Random(seed)


def counters(spec: Any, stage: str = "process") -> dict[str, Any]:
    """The counters of a stage's progress file (this run's; each run starts them at 0)."""
    return dict((read_progress(PipelineContext(spec).progress_path(stage)) or {}).get("counters", {}))


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
