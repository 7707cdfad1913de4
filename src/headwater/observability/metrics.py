"""Prometheus metrics of a stage, read from its :class:`ProgressFile` on every scrape.

The stage updates nothing but its progress file; :class:`ProgressCollector` turns a snapshot of it
into metric families when Prometheus scrapes. The hot path pays nothing for the metrics, and the
endpoint, the progress file, ``headwater status`` and the dashboard show the same figures.

Every metric has the labels ``pipeline`` and ``stage``. See :data:`METRICS` for the names.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from headwater.observability.progress import BOUNDS_MS

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

    from headwater.observability.progress import ProgressFile

log = logging.getLogger("headwater.metrics")

STATES = ("starting", "preparing", "running", "producing", "idle", "retrying", "drained", "stopped", "failed")

# Progress counter -> (metric name without the headwater_ prefix and _total, help, per-sink)
COUNTERS: dict[str, tuple[str, str, bool]] = {
    "rows_read": ("records_read", "Rows read from the source (ingest).", False),
    "records_produced": ("records_produced", "Records appended to the pipeline's Kafka topic (ingest).", False),
    "polls": ("ingest_polls", "Source polls that found new data (ingest).", False),
    "too_large": ("records_too_large", "Records over the topic's size limit, dead-lettered by ingest.", False),
    "rows_in": ("records_consumed", "Records consumed from the pipeline's Kafka topic (process).", False),
    "rows_written": ("records_written", "Rows written to a sink.", True),
    "rows_deduped": ("records_deduplicated", "Records superseded by a newer version within a micro-batch.", True),
    "filtered": ("records_filtered", "Records removed by filter transforms.", False),
    "write_calls": ("sink_write_calls", "Write calls made to a sink (HBase multi-puts).", True),
    "write_retries": ("sink_write_retries", "Write calls to a sink retried after a transient error.", True),
    "expectations_dropped": ("expectations_dropped", "Records dropped by expectations with action drop.", False),
    "records_lost": ("records_lost", "Records gone from Kafka before they were read (on_data_loss: skip).", False),
}
RESTART_COUNTERS = ("query_restarts", "retries")  # process, ingest
# stage counter -> the sink's own counter in the progress file's ``sinks.<name>``
SINK_COUNTERS = {
    "rows_written": "written",
    "rows_deduped": "deduped",
    "write_calls": "calls",
    "write_retries": "retries",
}

# Histogram name in the progress file -> (metric, help, label name or None)
HISTOGRAMS: dict[str, tuple[str, str]] = {
    "batch": ("microbatch_duration_seconds", "Wall time of one micro-batch (process)."),
    "poll": ("ingest_poll_duration_seconds", "Wall time of one source poll that produced data (ingest)."),
}
LATENCY_PREFIX = "latency."  # latency.<leg>[.<sink>]
SINK_WRITE_PREFIX = "sink_write."  # sink_write.<sink>

# Bucket bounds (ms) exposed to Prometheus: a subset of the progress file's own, so counts are exact.
EXPOSED_MS = tuple(
    b for b in BOUNDS_MS if b in {1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000}
) + tuple(min((b for b in BOUNDS_MS if b >= t), default=BOUNDS_MS[-1]) for t in (25, 250, 2500, 300_000, 1_800_000))
EXPOSED_MS = tuple(sorted(set(EXPOSED_MS)))

METRICS = [
    "headwater_stage_state",
    "headwater_stage_up",
    *(f"headwater_{name}_total" for name, _, _ in COUNTERS.values()),
    "headwater_dead_letters_total",
    "headwater_expectation_failures_total",
    "headwater_restarts_total",
    "headwater_consumer_lag_records",
    "headwater_consumer_lag_records_total",
    "headwater_input_rate_records_per_second",
    *(f"headwater_{name}" for name, _ in HISTOGRAMS.values()),
    "headwater_latency_seconds",
    "headwater_sink_write_duration_seconds",
]


class ProgressCollector:
    """A prometheus_client collector over one stage's :class:`ProgressFile`."""

    def __init__(self, progress: ProgressFile, pipeline: str) -> None:
        self.progress = progress
        self.pipeline = pipeline

    def describe(self) -> list[Metric]:
        return []  # no describe-time collection: the families depend on what the stage has seen

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        data = self.progress.snapshot()
        stage = str(data.get("stage", ""))
        base = [self.pipeline, stage]
        sink = str(data.get("sink", "") or "")
        state = GaugeMetricFamily("headwater_stage_state", "1 for the stage's current state, else 0.",
                                  labels=["pipeline", "stage", "state"])  # fmt: skip
        current = data.get("state")
        for s in dict.fromkeys([*STATES, str(current)]):
            state.add_metric([*base, s], 1.0 if s == current else 0.0)
        yield state
        up = GaugeMetricFamily("headwater_stage_up", "1 while the stage is neither failed nor stopped.",
                               labels=["pipeline", "stage"])  # fmt: skip
        up.add_metric(base, 0.0 if current in ("failed", "stopped") else 1.0)
        yield up
        counters: dict[str, float] = data.get("counters", {})
        sinks: dict[str, dict[str, float]] = data.get("sinks") or {}
        for key, (name, doc, per_sink) in COUNTERS.items():
            if per_sink and sinks:  # each sink counted on its own (progress ``sinks.<name>``)
                fam = CounterMetricFamily(f"headwater_{name}", doc, labels=["pipeline", "stage", "sink"])
                for sink_name, c in sorted(sinks.items()):
                    fam.add_metric([*base, sink_name], float(c.get(SINK_COUNTERS[key], 0)))
                yield fam
                continue
            if key not in counters:
                continue
            fam = CounterMetricFamily(
                f"headwater_{name}", doc, labels=["pipeline", "stage", *(["sink"] if per_sink else [])]
            )
            fam.add_metric([*base, *([sink] if per_sink else [])], float(counters[key]))
            yield fam
        unclassified = counters.get("dead_lettered", 0) - sum(
            v for k, v in counters.items() if k.startswith("dead_letter.") and k != "dead_letter.too_large"
        )
        if unclassified > 0:  # a path that counts no reasons (stateful side batches)
            counters = {**counters, "dead_letter.unclassified": unclassified}
        yield from self._by_label(counters, base, "dead_letter.", "headwater_dead_letters",
                                  "Records sent to the dead-letter topic, by reason.", "reason")  # fmt: skip
        rules = {k[len("expectation_") : -len("_failed")]: v for k, v in counters.items()
                 if k.startswith("expectation_") and k.endswith("_failed")}  # fmt: skip
        yield from self._by_label({f"rule.{k}": v for k, v in rules.items()}, base, "rule.",
                                  "headwater_expectation_failures", "Records that failed an expectation, by rule.",
                                  "rule")  # fmt: skip
        restarts = CounterMetricFamily("headwater_restarts", "Restarts of the stage's work after a transient error.",
                                       labels=["pipeline", "stage"])  # fmt: skip
        restarts.add_metric(base, float(sum(counters.get(k, 0) for k in RESTART_COUNTERS)))
        yield restarts
        yield from self._lag(data, base)
        for key, (name, doc) in HISTOGRAMS.items():
            h = data.get("histograms", {}).get(key)
            if h:
                yield _histogram(f"headwater_{name}", doc, ["pipeline", "stage"], [(base, h)])
        legs = [([*base, *_leg_labels(k[len(LATENCY_PREFIX) :])], h)
                for k, h in data.get("histograms", {}).items() if k.startswith(LATENCY_PREFIX)]  # fmt: skip
        if legs:
            yield _histogram("headwater_latency_seconds",
                             "Record latency per leg: source_to_kafka (source commit -> Kafka append), "
                             "kafka_to_batch (-> micro-batch start), batch_to_sink (-> written in a sink), "
                             "end_to_end (Kafka append -> written).",
                             ["pipeline", "stage", "leg", "sink"], legs)  # fmt: skip
        writes = [([*base, k[len(SINK_WRITE_PREFIX) :]], h)
                  for k, h in data.get("histograms", {}).items() if k.startswith(SINK_WRITE_PREFIX)]  # fmt: skip
        if writes:
            yield _histogram("headwater_sink_write_duration_seconds", "Wall time of a micro-batch's write to a sink.",
                             ["pipeline", "stage", "sink"], writes)  # fmt: skip

    @staticmethod
    def _by_label(counters: dict[str, float], base: list[str], prefix: str, name: str, doc: str,
                  label: str) -> Iterator[Metric]:  # fmt: skip
        from prometheus_client.core import CounterMetricFamily

        items = [(k[len(prefix) :], v) for k, v in counters.items() if k.startswith(prefix)]
        if items:
            fam = CounterMetricFamily(name, doc, labels=["pipeline", "stage", label])
            for value, n in sorted(items):
                fam.add_metric([*base, value], float(n))
            yield fam

    def _lag(self, data: dict[str, Any], base: list[str]) -> Iterator[Metric]:
        from prometheus_client.core import GaugeMetricFamily

        parts = data.get("lag_partitions")
        if isinstance(parts, dict) and parts:
            fam = GaugeMetricFamily("headwater_consumer_lag_records",
                                    "Records in the topic not yet committed by the process stage, per partition.",
                                    labels=["pipeline", "stage", "topic", "partition"])  # fmt: skip
            topic = str(data.get("topic", ""))
            for p, n in sorted(parts.items(), key=lambda kv: int(kv[0])):
                fam.add_metric([*base, topic, str(p)], float(n))
            yield fam
        if data.get("lag") is not None:
            total = GaugeMetricFamily("headwater_consumer_lag_records_total", "Consumer lag summed over partitions.",
                                      labels=["pipeline", "stage"])  # fmt: skip
            total.add_metric(base, float(data["lag"]))
            yield total
        if data.get("input_rate") is not None:
            rate = GaugeMetricFamily("headwater_input_rate_records_per_second",
                                     "Records per second of the last micro-batch (Spark's processedRowsPerSecond).",
                                     labels=["pipeline", "stage"])  # fmt: skip
            rate.add_metric(base, float(data["input_rate"]))
            yield rate


def _leg_labels(rest: str) -> list[str]:
    leg, _, sink = rest.partition(".")
    return [leg, sink]


def _histogram(name: str, doc: str, labels: list[str], series: list[tuple[list[str], dict[str, Any]]]) -> Metric:
    """A histogram family (seconds) from the progress file's millisecond buckets."""
    from prometheus_client.core import HistogramMetricFamily

    fam = HistogramMetricFamily(name, doc, labels=labels)
    for values, h in series:
        counts: list[int] = h.get("counts", [])
        buckets: list[tuple[str, float]] = []
        seen = 0
        i = 0
        for bound in EXPOSED_MS:
            while i < len(BOUNDS_MS) and BOUNDS_MS[i] <= bound:
                seen += counts[i] if i < len(counts) else 0
                i += 1
            buckets.append((repr(bound / 1000), float(seen)))
        buckets.append(("+Inf", float(sum(counts))))
        fam.add_metric(values, buckets, sum_value=float(h.get("sum_ms", 0.0)) / 1000)
    return fam


class MetricsServer:
    """The Prometheus endpoint of one stage (``/metrics``), on its own registry and thread."""

    def __init__(self, progress: ProgressFile, pipeline: str, host: str = "127.0.0.1", port: int = 0) -> None:
        from prometheus_client import CollectorRegistry, start_http_server

        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(ProgressCollector(progress, pipeline))
        self._server, self._thread = start_http_server(port, addr=host, registry=self.registry)
        self.host = host
        self.port = int(self._server.server_port)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/metrics"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def start_for_stage(progress: ProgressFile, pipeline: str, host: str, port: int | None) -> MetricsServer | None:
    """Start the endpoint of a stage (``port`` None: off; 0: any free port) and note its address in ``progress``."""
    if port is None:
        return None
    server = MetricsServer(progress, pipeline, host, port)
    progress.set(metrics_url=server.url)
    log.info("metrics at %s", server.url)
    return server
