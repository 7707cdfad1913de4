"""The main job (`make demo`): the example pipeline on the embedded stack, end to end.

1. start the local stack (Kafka, HBase + Thrift, Hive metastore);
2. create `demo.orders_raw` in Hive: a few hundred thousand deterministic orders over several
   daily partitions, with a few malformed records at known ids;
3. run examples/orders.yaml until drained (ingest and process as two processes) and print the summary;
4. read a few rows back from HBase, decoded to their fields;
5. keep the pipeline running, add a new partition to the Hive table, and show the new rows
   arriving in HBase;
6. the clickstream example (examples/clickstream.yaml): page views an application writes to Kafka
   (no ingest stage), deduplicated and windowed per user, into HBase profiles and a Kafka alerts
   topic; a few of each shown, and their counts set against the plain-Python oracle;
7. start the dashboard (`headwater ui`) in the background and print its address.

`headwater run` draws its live display (rich) when the output is a terminal, plain lines otherwise.
Environment: DEMO_ROWS (default 300000), DEMO_NEW_ROWS (default 5000), DEMO_EVENTS (default 20000),
DEMO_USERS (default 20), DEMO_UI_PORT (default 8787).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from headwater.context import PipelineContext

HERE = Path(__file__).resolve().parent
SPEC = HERE / "orders.yaml"
CLICKS = HERE / "clickstream.yaml"
HEADWATER = [sys.executable, "-m", "headwater.cli"]


def step(text: str) -> None:
    print(f"\n=== {text}", flush=True)


def wait_until_settled(ctx: PipelineContext, proc: subprocess.Popen[bytes], timeout: float = 180.0) -> float:
    """Wait until the live run's ingest stage has polled and found nothing, and its streaming query runs."""
    from headwater.observability.progress import read_progress

    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if proc.poll() is not None:
            raise SystemExit(f"the live pipeline exited with {proc.returncode}")
        ingest = read_progress(ctx.progress_path("ingest")) or {}
        process = read_progress(ctx.progress_path("process")) or {}
        if ingest.get("state") == "idle" and process.get("state") == "running":
            return time.monotonic() - t0
        time.sleep(0.5)
    raise SystemExit(f"the live pipeline did not settle within {timeout:.0f}s")


def main() -> int:
    from headwater.context import PipelineContext, reset_pipeline
    from headwater.demo import append_orders, create_orders, malformed_ids
    from headwater.sinks.hbase.rowkey import RowKeyTemplate
    from headwater.sinks.hbase.thrift2 import Thrift2Client
    from headwater.spec import load_spec
    from headwater.stack import Stack, StackConfig

    rows = int(os.environ.get("DEMO_ROWS", "300000"))
    new_rows = int(os.environ.get("DEMO_NEW_ROWS", "5000"))

    step("1. local stack")
    timings = Stack(StackConfig.from_env()).up(progress=lambda m: print("  " + m, flush=True))
    print(f"  ready in {timings['total']:.1f}s")

    spec = load_spec(SPEC)
    ctx = PipelineContext(spec)
    step(f"2. Hive table {spec.source.table}: {rows:,} orders")  # type: ignore[attr-defined]
    for line in reset_pipeline(spec, topics=True, table=True):
        print("  reset: " + line)
    spark = ctx.spark("demo-data", {"spark.driver.memory": "512m"})
    spark.sparkContext.setLogLevel("ERROR")  # the demo's own session: no Hive config warnings between the steps
    t0 = time.monotonic()
    create_orders(spark, spec.source.table, rows)  # type: ignore[attr-defined]
    parts = [r[0] for r in spark.sql(f"SHOW PARTITIONS {spec.source.table}").collect()]  # type: ignore[attr-defined]
    bad = malformed_ids(0, rows)
    print(f"  {rows:,} rows in {len(parts)} partitions ({parts[0]} .. {parts[-1]}) in {time.monotonic() - t0:.1f}s; "
          f"{len(bad)} malformed on purpose")  # fmt: skip

    step("3. headwater run examples/orders.yaml --until-drained")
    done = subprocess.run([*HEADWATER, "run", str(SPEC), "--until-drained"], check=False)
    if done.returncode != 0:
        print(f"pipeline failed (exit {done.returncode})", file=sys.stderr)
        return done.returncode

    step("4. a few rows read back from HBase (headwater query)")
    first = spark.sql(
        f"SELECT customer_id FROM {spec.source.table} WHERE customer_id IS NOT NULL "  # type: ignore[attr-defined]
        "AND status <> 'test' ORDER BY order_id LIMIT 1"
    ).first()
    first_customer = first[0] if first is not None else ""
    subprocess.run([*HEADWATER, "query", str(SPEC), "--prefix", f"customer_id={first_customer}",
                    "--limit", "3", "--type", "total=decimal"], check=False)  # fmt: skip

    step(f"5. live: the pipeline keeps running; a new partition with {new_rows:,} rows is added to Hive")
    live = subprocess.Popen([*HEADWATER, "run", str(SPEC), "--no-ui"], stderr=subprocess.DEVNULL)
    try:
        waited = wait_until_settled(PipelineContext(spec), live)
        print(f"  both stages up and idle after {waited:.1f}s (ingest polled once and found nothing new)")
        start_id = rows + 10 * 50_000  # a later day: a partition the pipeline has never seen
        t_insert = time.monotonic()
        append_orders(spark, spec.source.table, start_id, start_id + new_rows)  # type: ignore[attr-defined]
        inserted = time.monotonic() - t_insert
        new = spark.sql(
            f"SELECT customer_id, order_id, dt FROM {spec.source.table} "  # type: ignore[attr-defined]
            f"WHERE order_id >= {start_id} AND customer_id IS NOT NULL AND status <> 'test'"
        ).collect()
        template = RowKeyTemplate.parse(spec.sink.row_key)  # type: ignore[attr-defined]
        dead = malformed_ids(start_id, start_id + new_rows)
        expected = {template.encode(r.asDict()) for r in new if r["order_id"] not in dead}
        print(
            f"  partition dt={new[0]['dt']} inserted in {inserted:.1f}s; waiting for {len(expected):,} rows in HBase "
            f"({len(dead)} malformed go to the dead-letter topic)"
        )
        h = spec.connections.hbase
        t_seen = time.monotonic()
        found: set[bytes] = set()
        with Thrift2Client(h.host, h.port) as client:
            t = client.t
            while time.monotonic() - t_seen < 180 and len(found) < len(expected):
                missing = [k for k in expected if k not in found]
                for i in range(0, len(missing), 500):
                    got = client.get_multiple(spec.sink.full_table, [t.TGet(row=k) for k in missing[i : i + 500]])  # type: ignore[attr-defined]
                    found.update(r.row for r in got if r.row)
                print(f"  {len(found):,}/{len(expected):,} new rows in HBase after {time.monotonic() - t_insert:.1f}s",
                      flush=True)  # fmt: skip
                if len(found) < len(expected):
                    time.sleep(1)
        ok = len(found) == len(expected)
        print(
            f"  {'all' if ok else 'NOT all'} new rows arrived {time.monotonic() - t_insert:.1f}s after the insert began"
        )
    finally:
        live.send_signal(signal.SIGINT)
        live.wait(timeout=120)
        spark.stop()
    events, users = int(os.environ.get("DEMO_EVENTS", "20000")), int(os.environ.get("DEMO_USERS", "20"))
    step(f"6. clickstream: {events:,} page views of {users} users, written to Kafka by an application")
    clicks_ok = show_clickstream(events, users)
    step("7. the dashboard (headwater ui)")
    url, pid = start_dashboard(ctx)
    step("done. The stack keeps running: `.venv/bin/headwater stack status`, `... stack down` to stop it.")
    print(
        f"  status: .venv/bin/headwater status {SPEC.name}   logs: .venv/bin/headwater logs {SPEC.name} --stage process"
    )
    print(f"  orders: {'ok' if ok else 'NOT ok'}; clickstream: {'ok' if clicks_ok else 'NOT ok'}")
    print(f"  dashboard (pid {pid}, stop it with `kill {pid}`): {url}", flush=True)
    return 0 if ok and clicks_ok else 1


def show_clickstream(events: int, users: int) -> bool:
    """Run examples/clickstream.yaml over ``events`` page views; show profiles and alerts; True if they match the oracle."""
    from headwater import clicks, kafka
    from headwater.context import reset_pipeline
    from headwater.sinks.hbase.codec import decode_value
    from headwater.sinks.hbase.rowkey import RowKeyTemplate
    from headwater.sinks.hbase.thrift2 import Thrift2Client
    from headwater.sinks.kafka import KafkaSinkConfig
    from headwater.spec import load_spec

    spec = load_spec(CLICKS)
    profiles_sink, alerts_sink = spec.sinks[0], next(s for s in spec.sinks if isinstance(s, KafkaSinkConfig))
    for line in reset_pipeline(spec, topics=True, table=True):
        print("  reset: " + line)
    conn = spec.connections.kafka
    deadline = time.monotonic() + 60  # topic deletion completes in the background
    while spec.topic.name in kafka.admin(conn).list_topics(timeout=10).topics and time.monotonic() < deadline:
        time.sleep(0.5)
    t0 = time.monotonic()
    clicks.produce(conn.bootstrap_servers, spec.topic.name, clicks.stream(events, users))
    print(f"  {events:,} events (every 97th sent twice, every 1000th with a bad amount) in topic "
          f"{spec.topic.name} in {time.monotonic() - t0:.1f}s")  # fmt: skip

    step(f"6a. headwater run {CLICKS.name} --until-drained  (dedupe, 10-minute windows per user, two sinks)")
    done = subprocess.run([*HEADWATER, "run", str(CLICKS), "--until-drained", "--no-ui"], check=False)
    if done.returncode != 0:
        print(f"clickstream pipeline failed (exit {done.returncode})", file=sys.stderr)
        return False

    step(f"6b. profiles in HBase {profiles_sink.full_table} (headwater query), user u0001")  # type: ignore[attr-defined]
    subprocess.run([*HEADWATER, "query", str(CLICKS), "--prefix", "user_id=u0001", "--limit", "3",
                    "--type", "views=long", "--type", "spend=decimal", "--type", "window_end=timestamp"],
                   check=False)  # fmt: skip
    want = clicks.expected(events, users)
    template = RowKeyTemplate.parse(profiles_sink.row_key)  # type: ignore[attr-defined]
    got = {}
    h = spec.connections.hbase
    with Thrift2Client(h.host, h.port) as client:
        for res in client.scan(profiles_sink.full_table, client.t.TScan(caching=1000), batch=1000):  # type: ignore[attr-defined]
            k = template.decode(res.row)
            cols = {f"{c.family.decode()}:{c.qualifier.decode()}": c.value for c in res.columnValues}
            got[(k["user_id"], k["window_start"])] = {
                "views": decode_value(cols["p:views"], "long"), "spend": decode_value(cols["p:spend"], "decimal"),
                "window_end": decode_value(cols["p:window_end"], "timestamp"),
            }  # fmt: skip
    same = sum(1 for k, v in got.items() if want.profiles.get(k) == v)
    print(f"  profiles (user, 10-minute window): expected {len(want.profiles):,} (oracle), found {len(got):,}, "
          f"{same:,} equal to the oracle's views and spend")  # fmt: skip

    step(f"6c. spend alerts on Kafka topic {alerts_sink.topic} (where: spend > 100)")
    alerts = read_topic(conn.bootstrap_servers, alerts_sink.topic)
    last: dict[tuple[str, str], Any] = {}
    for value in alerts:
        alert = json.loads(value)
        last[(alert["user_id"], alert["window_start"])] = Decimal(str(alert["spend"]))
    for value in alerts[:3]:
        print("  " + value.decode())
    wanted = {(u, w.strftime("%Y-%m-%dT%H:%M:%S.%fZ")): spend for (u, w), spend in want.alerts.items()}
    print(f"  alerts: expected {len(wanted):,} windows over 100 (oracle), found {len(last):,} "
          f"({len(alerts):,} records: a window whose spend grows is sent again), "
          f"{'all' if last == wanted else 'NOT all'} with the oracle's final spend")  # fmt: skip
    return got == want.profiles and last == wanted


def read_topic(bootstrap: str, topic: str) -> list[bytes]:
    """The values of every record of ``topic`` (all partitions, from the beginning, in offset order per partition)."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "demo", "enable.auto.commit": False})
    try:
        parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in parts}
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
        out: list[bytes] = []
        remaining = {p for p, e in ends.items() if e > 0}
        while remaining:
            msg = consumer.poll(5.0)
            if msg is None:
                break
            if msg.error():
                continue
            value, offset, partition = msg.value(), msg.offset(), msg.partition()
            if value is not None:
                out.append(value)
            if offset is not None and partition is not None and offset >= ends[partition] - 1:
                remaining.discard(partition)
        return out
    finally:
        consumer.close()


def start_dashboard(ctx: PipelineContext, timeout: float = 30.0) -> tuple[str, int]:
    """Start `headwater ui` on the example pipeline in the background; returns (its address, its pid)."""
    log = ctx.home / "ui.log"
    out = log.open("w")
    proc = subprocess.Popen([*HEADWATER, "ui", str(SPEC), str(CLICKS), "--port", os.environ.get("DEMO_UI_PORT", "8787")],
                            stdout=out, stderr=out, stdin=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        text = log.read_text()
        if "dashboard: " in text:
            return text.split("dashboard: ", 1)[1].split()[0], proc.pid
        if proc.poll() is not None:
            raise SystemExit(f"the dashboard did not start: {text[-500:]}")
        time.sleep(0.2)
    raise SystemExit(f"the dashboard did not start within {timeout:.0f}s (log: {log})")


if __name__ == "__main__":
    sys.exit(main())
