"""The run summary and the live progress line, from the stages' progress files (secrets masked)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from headwater import redact
from headwater.observability.progress import LatencyHistogram, read_progress


def summarize(home: Path) -> dict[str, Any]:
    """Figures of the last run of the pipeline whose folder is ``home``."""
    ingest = redact.redact_data(read_progress(home / "ingest.progress.json") or {})
    process = redact.redact_data(read_progress(home / "process.progress.json") or {})
    ic, pc = ingest.get("counters", {}), process.get("counters", {})
    hist = LatencyHistogram(process.get("latency_ms")) if process.get("latency_ms") else LatencyHistogram()

    def rate(rows: float, seconds: float) -> float | None:
        return round(rows / seconds, 1) if seconds else None

    return {
        "rows_read": ic.get("rows_read", 0),
        "records_produced": ic.get("records_produced", 0),
        "rows_in": pc.get("rows_in", 0),
        "rows_written": pc.get("rows_written", 0),
        "rows_deduped": pc.get("rows_deduped", 0),
        "filtered": pc.get("filtered", 0),
        "dead_lettered": pc.get("dead_lettered", 0),
        "records_lost": pc.get("records_lost", 0),
        "data_loss": process.get("data_loss", []),
        "batches": pc.get("batches", 0),
        "ingest_rows_per_s": rate(ic.get("rows_read", 0), ic.get("busy_seconds", 0)),
        "process_rows_per_s": rate(pc.get("rows_in", 0), pc.get("busy_seconds", 0)),
        "latency_p50_ms": hist.percentile(0.5),
        "latency_p99_ms": hist.percentile(0.99),
        "lag": process.get("lag"),
        "ingest_state": ingest.get("state"),
        "process_state": process.get("state"),
    }


def progress_line(home: Path) -> str:
    """One line for the terminal while a pipeline runs."""
    s = summarize(home)
    return redact.redact(
        f"ingest[{s['ingest_state'] or '-'}] read {s['rows_read']:,} produced {s['records_produced']:,} | "
        f"process[{s['process_state'] or '-'}] in {s['rows_in']:,} written {s['rows_written']:,} "
        f"dead-lettered {s['dead_lettered']:,} lag {s['lag'] if s['lag'] is not None else '-'}"
    )


def render(s: dict[str, Any]) -> str:
    """The summary as a small table."""

    def ms(v: float | None) -> str:
        return "-" if v is None else f"{v:,.0f} ms"

    def r(v: float | None) -> str:
        return "-" if v is None else f"{v:,.0f} rows/s"

    lines = [
        f"  rows read from source      {s['rows_read']:>12,}",
        f"  records produced to Kafka  {s['records_produced']:>12,}",
        f"  records consumed           {s['rows_in']:>12,}",
        f"  rows written to the sink   {s['rows_written']:>12,}   (+{s['rows_deduped']:,} deduplicated in batch)",
        f"  filtered by transforms     {s['filtered']:>12,}",
        f"  dead-lettered              {s['dead_lettered']:>12,}",
        f"  ingest throughput          {r(s['ingest_rows_per_s']):>17}",
        f"  process throughput         {r(s['process_rows_per_s']):>17}   ({s['batches']} micro-batch{'' if s['batches'] == 1 else 'es'})",
        f"  end-to-end latency p50     {ms(s['latency_p50_ms']):>17}   (Kafka append -> HBase write acknowledged)",
        f"  end-to-end latency p99     {ms(s['latency_p99_ms']):>17}",
    ]
    if s.get("records_lost"):
        ranges = ", ".join(f"partition {r['partition']}: {r['first']}..{r['last']}" for r in s.get("data_loss", []))
        lines.append(f"  lost in Kafka, skipped     {s['records_lost']:>12,}   (on_data_loss: skip; offsets {ranges})")
    return redact.redact("\n".join(lines))
