"""The dashboard's HTTP server (stdlib, one thread): the page, its assets and ``/api/state``.

Every asset is served from the package (no CDN). ``/api/state`` is the :func:`pipeline_view` of each
pipeline plus the recent history of its throughput and lag (sampled here every 2 s) and a few dead
letters per reason.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any

from headwater.observability.view import pipeline_view

log = logging.getLogger("headwater.ui")

ASSETS = {"/": ("index.html", "text/html; charset=utf-8"), "/app.js": ("app.js", "text/javascript; charset=utf-8"),
          "/app.css": ("app.css", "text/css; charset=utf-8")}  # fmt: skip
HISTORY_POINTS = 300  # 10 minutes at one sample every 2 s
SAMPLE_SECONDS = 2.0
DLQ_SAMPLE_SECONDS = 15.0
SAMPLES_PER_REASON = 3


class Dashboard:
    """Serves the dashboard of ``pipelines`` ((home, spec or None) each) from a background thread."""

    def __init__(self, pipelines: list[tuple[Path, Any]], refresh_pipelines: bool = False) -> None:
        self.pipelines = list(pipelines)
        self.refresh_pipelines = refresh_pipelines
        self.history: dict[str, deque[dict[str, Any]]] = {}
        self.samples: dict[str, dict[str, list[dict[str, Any]]]] = {}
        self._dlq_read: dict[str, tuple[float, int]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self.url = ""

    # --- state ------------------------------------------------------------------------------------
    def sample(self) -> None:
        """Add one point of throughput and lag per pipeline to the history."""
        if self.refresh_pipelines:
            from headwater.cli.ops import resolve

            self.pipelines = resolve(())
        now = time.time()
        for home, spec in self.pipelines:
            v = pipeline_view(home, spec, now)
            i, p = v["stages"]["ingest"], v["stages"]["process"]
            point = {"t": now, "produced": i.get("records_out") or 0, "consumed": p.get("records_in") or 0,
                     "written": p.get("records_out") or 0, "lag": p.get("lag")}  # fmt: skip
            with self._lock:
                h = self.history.setdefault(home.name, deque(maxlen=HISTORY_POINTS))
                if h and h[-1]["consumed"] > point["consumed"]:  # a new run: start over
                    h.clear()
                h.append(point)
            self._sample_dead_letters(home.name, spec, p.get("dead_lettered") or 0)

    def _sample_dead_letters(self, name: str, spec: Any, count: int) -> None:
        """A few dead letters per reason, read from the dead-letter topic now and then."""
        last, seen = self._dlq_read.get(name, (0.0, -1))
        if spec is None or count == seen or time.monotonic() - last < DLQ_SAMPLE_SECONDS:
            return
        self._dlq_read[name] = (time.monotonic(), count)
        try:
            from headwater.streaming import replay

            letters = replay.read_envelopes(spec.connections.kafka, spec.dead_letter.topic)
        except Exception as exc:  # Kafka away: the dashboard keeps the last samples
            log.warning("dead letters of %s not read: %s", name, exc)
            return
        by_reason: dict[str, list[dict[str, Any]]] = {}
        for letter in reversed(letters):
            group = by_reason.setdefault(letter.reason, [])
            if len(group) < SAMPLES_PER_REASON:
                group.append({"position": letter.position, "message": letter.message[:300]})
        with self._lock:
            self.samples[name] = by_reason

    def state(self) -> dict[str, Any]:
        """The JSON of ``/api/state``."""
        now = time.time()
        out = []
        for home, spec in self.pipelines:
            v = pipeline_view(home, spec, now)
            with self._lock:
                v["history"] = list(self.history.get(home.name, []))
                v["dead_letter_samples"] = self.samples.get(home.name, {})
            out.append(v)
        return {"generated_at": now, "pipelines": out}

    # --- serving ----------------------------------------------------------------------------------
    def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Start serving; returns the page's address."""
        dashboard = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/api/state":
                    self._send(
                        200, "application/json", json.dumps(dashboard.state(), default=str, allow_nan=False).encode()
                    )
                elif path in ASSETS:
                    name, kind = ASSETS[path]
                    self._send(200, kind, resources.files("headwater.ui").joinpath("static", name).read_bytes())
                elif path == "/favicon.ico":
                    self._send(204, "image/x-icon", b"")
                else:
                    self._send(404, "text/plain", b"not found")

            def _send(self, code: int, kind: str, body: bytes) -> None:
                self.send_response(code)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                log.debug(format, *args)

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, name="headwater-ui", daemon=True).start()
        threading.Thread(target=self._sampler, name="headwater-ui-sampler", daemon=True).start()
        self.url = f"http://{host}:{self._server.server_port}/"
        return self.url

    def _sampler(self) -> None:
        while not self._stop.is_set():
            try:
                self.sample()
            except Exception as exc:  # never take the page down with it
                log.warning("dashboard sample failed: %s", exc)
            self._stop.wait(SAMPLE_SECONDS)

    def close(self) -> None:
        self._stop.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
