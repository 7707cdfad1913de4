"""What people see of a running pipeline, read from its stages' progress files.

One function, :func:`pipeline_view`, feeds the terminal display, ``headwater status`` and the
dashboard, so they show the same figures (and the same as the Prometheus endpoints, which read the
same files' counters in the stage processes).
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Any

from headwater import redact
from headwater.observability.progress import BOUNDS_MS, LatencyHistogram, read_progress

STAGES = ("ingest", "process")
FINAL = ("drained", "stopped", "failed")
LEGS = ("source_to_kafka", "kafka_to_batch", "batch_to_sink", "end_to_end")


def pid_alive(pid: Any) -> bool:
    """Whether a process with ``pid`` exists (and is not a zombie we could reap)."""
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        import psutil

        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except Exception:
        return True


def percentiles(h: dict[str, Any] | None) -> dict[str, float | None]:
    """p50/p95/p99 (ms) of a progress-file histogram (``{"counts": [...]}``)."""
    hist = LatencyHistogram(list(h["counts"])) if h and h.get("counts") else LatencyHistogram()

    def finite(v: float | None) -> float | None:  # over the last bucket (~33 min): shown as its bound, JSON-safe
        return None if v is None else v if math.isfinite(v) else float(BOUNDS_MS[-1])

    return {"count": float(hist.total), "p50": finite(hist.percentile(0.5)), "p95": finite(hist.percentile(0.95)),
            "p99": finite(hist.percentile(0.99))}  # fmt: skip


def stage_view(home: Path, stage: str, now: float | None = None) -> dict[str, Any]:
    """The figures of one stage: state (``not started`` without a file, ``dead`` if its process vanished)."""
    now = time.time() if now is None else now
    data = read_progress(home / f"{stage}.progress.json")
    if data is None:
        return {"stage": stage, "state": "not started", "running": False}
    data = redact.redact_data(data)
    c = data.get("counters", {})
    state = data.get("state", "-")
    alive = pid_alive(data.get("pid"))
    if state not in FINAL and not alive:
        state = "dead"
    hists = data.get("histograms", {})
    busy = c.get("busy_seconds", 0)
    n_in = c.get("rows_read", 0) if stage == "ingest" else c.get("rows_in", 0)
    n_out = c.get("records_produced", 0) if stage == "ingest" else c.get("rows_written", 0)
    dead = {k.split(".", 1)[1]: v for k, v in c.items() if k.startswith("dead_letter.")}
    if c.get("dead_lettered", 0) > sum(v for k, v in dead.items() if k != "too_large"):
        dead["unclassified"] = c["dead_lettered"] - sum(v for k, v in dead.items() if k != "too_large")
    rules = {k[len("expectation_") : -len("_failed")]: v for k, v in c.items()
             if k.startswith("expectation_") and k.endswith("_failed")}  # fmt: skip
    legs: dict[str, Any] = {}
    for key, h in hists.items():
        if key.startswith("latency."):
            legs[key[len("latency.") :]] = percentiles(h)
    return {
        "stage": stage,
        "state": state,
        "running": alive and state not in FINAL,
        "pid": data.get("pid"),
        "started_at": data.get("started_at"),
        "updated_at": data.get("updated_at"),
        "age_s": round(now - data["updated_at"], 1) if data.get("updated_at") else None,
        "records_in": n_in,
        "records_out": n_out,
        "dead_lettered": c.get("dead_lettered", 0) + c.get("too_large", 0),
        "filtered": c.get("filtered", 0),
        "rate": round(n_in / busy, 1) if busy else None,
        "input_rate": data.get("input_rate"),
        "lag": data.get("lag"),
        "lag_partitions": data.get("lag_partitions") or {},
        "latency": legs,
        "dead_letters": dict(sorted(dead.items())),
        "expectations": rules,
        "last_written_at": data.get("last_written_at"),
        "metrics_url": data.get("metrics_url"),
        "last_error": data.get("last_error"),
        "last": data.get("last"),
        "counters": c,
        "sink": data.get("sink"),
    }


def pipeline_view(home: Path, spec: Any = None, now: float | None = None) -> dict[str, Any]:
    """Both stages of the pipeline in ``home``, its graph (from ``spec`` when given) and sink freshness."""
    now = time.time() if now is None else now
    stages = {s: stage_view(home, s, now) for s in STAGES}
    p = stages["process"]
    view: dict[str, Any] = {"name": home.name, "home": str(home), "stages": stages, "now": now}
    written_at = p.get("last_written_at")
    view["freshness_s"] = round(now - written_at, 1) if written_at else None
    if spec is not None:
        view["graph"] = graph(spec)
    return view


def graph(spec: Any) -> dict[str, Any]:
    """Nodes of the pipeline: source -> topic -> transforms -> sinks, and the dead-letter topic."""
    source = spec.source
    sinks = getattr(spec, "sinks", None) or [spec.sink]
    return {
        "source": f"{source.type}:{getattr(source, 'table', '') or getattr(source, 'topic', '')}",
        "topic": spec.topic.name,
        "transforms": [t.type for t in spec.transforms],
        "sinks": [f"{s.name or s.type}:{getattr(s, 'table', '') or getattr(s, 'topic', '')}" for s in sinks],
        "dead_letter": spec.dead_letter.topic,
        "expectations": [e.name for e in spec.expectations],
    }


def stage_pids(home: Path) -> dict[str, int]:
    """The live stage processes of the pipeline in ``home`` (stage -> pid)."""
    out = {}
    for stage in STAGES:
        data = read_progress(home / f"{stage}.progress.json") or {}
        if data.get("state") not in FINAL and pid_alive(data.get("pid")):
            out[stage] = int(data["pid"])
    return out
