"""Deterministic page-view events for the clickstream example: what an application writes to Kafka.

Each event is a JSON object ``{event_id, user_id, page, amount, ts}`` keyed by ``user_id``. Event
``i`` belongs to user ``u{i % users:04d}``; its time advances 1.5 s per event from a fixed start, so
the events span ``n * 1.5`` seconds of event time. On purpose, at known positions:

- every 97th event is sent twice (an application retry: same ``event_id``), which ``dedupe`` drops;
- every 1000th event (from 500) has an ``amount`` that is not a number: a dead letter.

:func:`expected` computes, in plain Python, what the example pipeline must store: per user and
10-minute window the views and spend after deduplication, and which windows pass the alert threshold.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

START = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
STEP = timedelta(milliseconds=1500)
WINDOW = timedelta(minutes=10)
ALERT_SPEND = Decimal("100.00")
PAGES = ["/", "/search", "/product", "/cart", "/checkout"]


def event(i: int, users: int) -> dict[str, Any]:
    """The ``i``-th page view."""
    page = PAGES[(i * 7 + i // users) % len(PAGES)]
    amount = Decimal((i * 37) % 5000) / 100 if page == "/checkout" else Decimal(0)
    return {
        "event_id": f"e{i:08d}", "user_id": f"u{i % users:04d}", "page": page,
        "amount": "N/A" if is_bad(i) else str(amount), "ts": (START + i * STEP).isoformat(),
    }  # fmt: skip


def is_bad(i: int) -> bool:
    return i % 1000 == 500


def stream(n: int, users: int) -> list[tuple[str, bytes]]:
    """(key, value) of the events in the order the application sends them, retries included."""
    out = []
    for i in range(n):
        e = event(i, users)
        record = (e["user_id"], json.dumps(e).encode())
        out.append(record)
        if i % 97 == 0:
            out.append(record)
    return out


def produce(bootstrap: str, topic: str, records: list[tuple[str, bytes]], partitions: int = 4) -> None:
    """Create ``topic`` if missing and send ``records`` keyed, with an idempotent producer."""
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

    from headwater.kafka import CLUSTER_DEFAULT_REPLICATION

    admin = AdminClient({"bootstrap.servers": bootstrap})
    if topic not in admin.list_topics(timeout=10).topics:
        admin.create_topics([NewTopic(topic, partitions, CLUSTER_DEFAULT_REPLICATION)])[topic].result(timeout=30)
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all", "linger.ms": 20})
    for key, value in records:
        producer.produce(topic, key=key.encode(), value=value)
        producer.poll(0)
    if producer.flush(60):
        raise RuntimeError(f"{topic}: not every event was acknowledged")


@dataclass
class Expected:
    """What the clickstream pipeline must store."""

    profiles: dict[tuple[str, datetime], dict[str, Any]]  # (user, window start) -> views, spend, window_end
    alerts: dict[tuple[str, datetime], Decimal]  # (user, window start) -> final spend over the threshold
    dead: set[str]  # event ids dead-lettered


def expected(n: int, users: int) -> Expected:
    """The oracle: per-user 10-minute windows of views and spend after dropping repeated events."""
    profiles: dict[tuple[str, datetime], dict[str, Any]] = defaultdict(lambda: {"views": 0, "spend": Decimal(0)})
    dead = set()
    for i in range(n):  # each event once: dedupe drops the retries
        e = event(i, users)
        if is_bad(i):
            dead.add(e["event_id"])
            continue
        ts = START + i * STEP
        start = ts - timedelta(seconds=ts.timestamp() % WINDOW.total_seconds())
        p = profiles[(e["user_id"], start)]
        p["views"] += 1
        p["spend"] += Decimal(e["amount"])
        p["window_end"] = start + WINDOW
    alerts = {k: v["spend"] for k, v in profiles.items() if v["spend"] > ALERT_SPEND}
    return Expected(dict(profiles), alerts, dead)
