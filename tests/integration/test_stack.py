"""The real local stack, as the foundation issue asks: Kafka, HBase via Thrift, shared metastore, Spark + Kafka."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time

import happybase
import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

pytestmark = pytest.mark.integration


def _create_topic(bootstrap: str, name: str, partitions: int = 2) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for fut in admin.create_topics([NewTopic(name, partitions, 1)]).values():
        fut.result(timeout=30)


def test_status_json_shows_every_service_healthy(stack) -> None:  # type: ignore[no-untyped-def]
    out = subprocess.run(
        [sys.executable, "-m", "headwater.cli", "stack", "status", "--json"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    status = json.loads(out.stdout)
    assert status["healthy"] is True
    assert {s["name"]: s["state"] for s in status["services"]} == {
        "metastore": "running", "hbase": "running", "kafka": "running", "hbase-thrift": "running",
        "hbase-thrift2": "running",
    }  # fmt: skip
    assert all(s["pid"] and s["rss_mb"] > 50 for s in status["services"])


def test_up_is_idempotent(stack) -> None:  # type: ignore[no-untyped-def]
    pids = {s.name: s.pid for s in stack.status(probe=False)}
    stack.up()
    assert {s.name: s.pid for s in stack.status(probe=False)} == pids


def test_kafka_produce_consume_keyed(stack, unique) -> None:  # type: ignore[no-untyped-def]
    bootstrap = stack.config.kafka_bootstrap
    topic = f"t-{unique}"
    _create_topic(bootstrap, topic)
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all"})
    sent = {f"key-{i}".encode(): f"value-{i}".encode() for i in range(500)}
    for k, v in sent.items():
        producer.produce(topic, key=k, value=v)
    assert producer.flush(30) == 0
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"g-{unique}", "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    got: dict[bytes, bytes] = {}
    partitions_by_key: dict[bytes, int] = {}
    deadline = time.monotonic() + 60
    while len(got) < len(sent) and time.monotonic() < deadline:
        msg = consumer.poll(1.0)
        if msg is None or msg.error():
            continue
        got[msg.key()] = msg.value()
        partitions_by_key[msg.key()] = msg.partition()
    consumer.close()
    assert got == sent
    assert set(partitions_by_key.values()) == {0, 1}  # keys spread over both partitions


def test_hbase_through_thrift(stack, unique) -> None:  # type: ignore[no-untyped-def]
    conn = happybase.Connection(stack.config.host, stack.config.thrift_port, timeout=60000)
    name = f"t_{unique}"
    conn.create_table(name, {"d": {"max_versions": 3}})
    table = conn.table(name)
    with table.batch(batch_size=200) as batch:
        for i in range(1000):
            batch.put(f"row-{i:05d}".encode(), {b"d:n": str(i).encode(), b"d:sq": str(i * i).encode()})
    assert table.row(b"row-00042") == {b"d:n": b"42", b"d:sq": b"1764"}
    keys = [k for k, _ in table.scan(row_start=b"row-00100", row_stop=b"row-00200")]
    assert keys == [f"row-{i:05d}".encode() for i in range(100, 200)]
    assert sum(1 for _ in table.scan()) == 1000
    conn.delete_table(name, disable=True)
    conn.close()


def test_shared_metastore_across_spark_processes(stack, spark, unique) -> None:  # type: ignore[no-untyped-def]
    db = f"db_{unique}"
    spark.sql(f"CREATE DATABASE {db}")
    spark.sql(f"CREATE TABLE {db}.events (id BIGINT, v STRING) PARTITIONED BY (dt STRING) STORED AS PARQUET")
    spark.sql(f"INSERT INTO {db}.events PARTITION (dt='2024-01-01') SELECT id, CAST(id AS STRING) FROM range(5)")
    spark.sql(f"INSERT INTO {db}.events PARTITION (dt='2024-01-02') SELECT id, CAST(id AS STRING) FROM range(5, 8)")
    reader = textwrap.dedent(f"""
        from headwater.stack import StackConfig
        from headwater.stack.spark import build_session
        c = StackConfig.from_env()
        s = build_session("other", master="local[1]", metastore_uri=c.metastore_uri,
                          warehouse_dir="file://" + str(c.warehouse_dir), jars=[])
        rows = s.sql("SELECT dt, count(*) AS n FROM {db}.events GROUP BY dt ORDER BY dt").collect()
        print("RESULT", [(r.dt, r.n) for r in rows])
        print("PARTS", [r[0] for r in s.sql("SHOW PARTITIONS {db}.events").collect()])
    """)
    out = subprocess.run([sys.executable, "-c", reader], capture_output=True, text=True, check=False, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "RESULT [('2024-01-01', 5), ('2024-01-02', 3)]" in out.stdout
    assert "PARTS ['dt=2024-01-01', 'dt=2024-01-02']" in out.stdout


def test_structured_streaming_reads_kafka(stack, spark, unique) -> None:  # type: ignore[no-untyped-def]
    bootstrap = stack.config.kafka_bootstrap
    topic = f"s-{unique}"
    _create_topic(bootstrap, topic)
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    for i in range(300):
        producer.produce(topic, key=str(i), value=json.dumps({"i": i}))
    producer.flush(30)
    stream = (
        spark.readStream.format("kafka").option("kafka.bootstrap.servers", bootstrap)
        .option("subscribe", topic).option("startingOffsets", "earliest").load()
    )  # fmt: skip
    query = (
        stream.selectExpr("CAST(key AS STRING) k", "CAST(value AS STRING) v", "partition", "offset")
        .writeStream.format("memory").queryName(f"q_{unique}").trigger(availableNow=True).start()
    )  # fmt: skip
    query.awaitTermination(180)
    rows = spark.sql(f"SELECT k, v FROM q_{unique}").collect()
    assert sorted(int(r.k) for r in rows) == list(range(300))
    assert {json.loads(r.v)["i"] for r in rows} == set(range(300))


def test_spark_maps_the_class_data_archive(stack, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """`stack up` made the archive, and a headwater Spark session loads Spark's classes from it."""
    from headwater.stack import cds

    archive = cds.archive_path(stack.config)
    assert archive.is_file() and archive.stat().st_size > 10_000_000
    assert f"-XX:SharedArchiveFile={archive}" in cds.java_options(stack.config)
    log = tmp_path / "classes.log"
    script = textwrap.dedent(
        f"""
        from headwater.stack import StackConfig
        from headwater.stack.spark import build_session
        cfg = StackConfig.from_env()
        spark = build_session("cds-check", master="local[1]", metastore_uri=cfg.metastore_uri,
                              warehouse_dir=f"file://{{cfg.warehouse_dir}}", jars=[],
                              conf={{"spark.driver.extraJavaOptions": "-Xlog:class+load=info:file={log}"}})
        assert spark.range(10).selectExpr("sum(id)").first()[0] == 45
        spark.stop()
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    loads = [line for line in log.read_text().splitlines() if "org.apache.spark.sql.SparkSession " in line]
    assert loads and all("source: shared objects file (top)" in line for line in loads), loads
