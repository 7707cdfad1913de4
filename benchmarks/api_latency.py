"""Query API latency over the demo's table: point gets and 100-row scan pages, through HTTP.

Run after `make demo` (it reads the rows the demo wrote): .venv/bin/python benchmarks/api_latency.py
Starts `headwater serve examples/orders.yaml` on a spare port, times real HTTP requests with httpx and
prints p50/p99; nothing is asserted beyond the responses being what was asked for.
"""

from __future__ import annotations

import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "examples" / "orders.yaml"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> int:
    from headwater.spec import load_spec
    from headwater.stack import Stack, StackConfig

    Stack(StackConfig.from_env()).up()
    spec = load_spec(SPEC)
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "headwater.cli", "serve", str(SPEC), "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, timeout=30) as client:
            for _ in range(100):
                try:
                    if client.get("/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.2)
            sample = client.get(f"/v1/{spec.name}/rows/scan", params={"limit": 1000}).json()["rows"]  # and warm-up
            if len(sample) < 1000:
                print(f"only {len(sample)} rows in the demo table: run `make demo` first")
                return 1
            keys = [(r["key"]["customer_id"], r["key"]["order_id"]) for r in sample[::5]]
            for c, o in keys[:20]:  # warm-up: connections, JIT on the Thrift server
                client.get(f"/v1/{spec.name}/rows/get", params={"customer_id": c, "order_id": o})
            gets = []
            for c, o in keys:
                t0 = time.perf_counter()
                r = client.get(f"/v1/{spec.name}/rows/get", params={"customer_id": c, "order_id": o})
                gets.append((time.perf_counter() - t0) * 1000)
                assert r.status_code == 200 and r.json()["key"]["order_id"] == o, r.text
            scans = []
            token = None
            for _ in range(60):
                params: dict[str, str | int] = {"limit": 100, **({"page_token": token} if token else {})}
                t0 = time.perf_counter()
                r = client.get(f"/v1/{spec.name}/rows/scan", params=params)
                scans.append((time.perf_counter() - t0) * 1000)
                body = r.json()
                assert r.status_code == 200 and len(body["rows"]) == 100, r.text[:300]
                token = body["next_page_token"]
    finally:
        server.terminate()
        server.wait(timeout=30)
    print(f"point get over HTTP ({len(gets)} requests): p50 {_pct(gets, 0.5):.1f} ms, p99 {_pct(gets, 0.99):.1f} ms, "
          f"mean {statistics.mean(gets):.1f} ms")  # fmt: skip
    print(f"100-row scan page over HTTP ({len(scans)} pages): p50 {_pct(scans, 0.5):.1f} ms, "
          f"p99 {_pct(scans, 0.99):.1f} ms, mean {statistics.mean(scans):.1f} ms")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
