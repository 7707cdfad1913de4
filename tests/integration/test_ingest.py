"""Ingest (Hive -> Kafka) against the real stack: snapshot, incremental by watermark and by partition."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from headwater.context import PipelineContext
from headwater.demo import append_orders, create_orders
from headwater.ingest.runner import IngestStage
from headwater.spec import load_spec, load_spec_text
from kit import read_topic, write_spec

pytestmark = pytest.mark.integration


def _ids(bootstrap: str, topic: str) -> Counter[int]:
    return Counter(json.loads(m.value())["order_id"] for m in read_topic(bootstrap, topic))


def test_incremental_ingest_exactly_once(stack, spark, unique, tmp_path) -> None:  # type: ignore[no-untyped-def]
    spec = load_spec(write_spec(tmp_path, unique))
    table = spec.source.table  # type: ignore[attr-defined]
    create_orders(spark, table, 3000)
    stage = IngestStage(PipelineContext(spec), spark=spark)
    stage.prepare()
    bootstrap = stack.config.kafka_bootstrap

    first = stage.poll_once()
    assert first is not None and first.rows == 3000 and first.produced == 3000
    assert stage.poll_once() is None  # nothing new: nothing produced, position unchanged
    assert _ids(bootstrap, spec.topic.name) == Counter(range(3000))

    # New rows in the existing partition (a later watermark) ...
    append_orders(spark, table, 3000, 3500)
    # ... and a new partition (three days later).
    append_orders(spark, table, 200_000, 200_400)
    second = stage.poll_once()
    assert second is not None and second.rows == 900
    assert stage.poll_once() is None
    ids = _ids(bootstrap, spec.topic.name)
    assert set(ids) == set(range(3500)) | set(range(200_000, 200_400))
    assert max(ids.values()) == 1  # every row exactly once

    # A restarted stage (new object, same durable position in Kafka) resumes, it does not re-read.
    again = IngestStage(PipelineContext(spec), spark=spark)
    assert again.poll_once() is None


def test_values_keep_their_types(stack, spark, unique, tmp_path) -> None:  # type: ignore[no-untyped-def]
    db = f"db_{unique}"
    spark.sql(f"CREATE DATABASE {db}")
    spark.sql(
        f"""CREATE TABLE {db}.typed STORED AS PARQUET AS SELECT
        CAST(1 AS BIGINT) AS id, CAST('12345678901234.567890' AS DECIMAL(20,6)) AS d,
        TIMESTAMP'2024-03-01 12:34:56.123456' AS ts, DATE'2024-02-29' AS dt,
        array(1, 2, NULL) AS arr, map('a', named_struct('x', 1.5D, 'y', CAST(NULL AS STRING))) AS m,
        CAST(NULL AS STRING) AS nothing"""
    )
    spec = load_spec_text(
        f"""
name: typed{unique}
source: {{type: hive, table: {db}.typed, mode: snapshot}}
topic: {{name: typed{unique}, key: [id]}}
sink: {{type: hbase, table: "typed{unique}", row_key: "{{id:long}}", columns: {{d: [d]}}}}
dead_letter: {{topic: typed{unique}.dlq}}
"""
    )
    stage = IngestStage(PipelineContext(spec), spark=spark)
    stage.prepare()
    assert stage.poll_once() is not None
    assert stage.poll_once() is None  # snapshot: once
    (msg,) = read_topic(stack.config.kafka_bootstrap, f"typed{unique}")
    assert msg.key() == b"1"
    value = json.loads(msg.value())
    assert value == {
        "id": 1, "d": 12345678901234.567890, "ts": "2024-03-01T12:34:56.123456Z", "dt": "2024-02-29",
        "arr": [1, 2, None], "m": {"a": {"x": 1.5, "y": None}}, "nothing": None,
    }  # fmt: skip
    assert '"d":12345678901234.567890' in msg.value().decode()  # exact decimal text, scale kept


def test_reset_before_the_state_topic_exists(stack, unique, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A reset on a cluster where no ingest ever ran creates the state topic (it used to fail on it)."""
    from headwater import kafka
    from headwater.context import reset_pipeline

    text = write_spec(tmp_path, unique).read_text() + f"state_topic: _state_{unique}\n"
    spec = load_spec_text(text)
    conn = spec.connections.kafka
    assert f"_state_{unique}" not in kafka.admin(conn).list_topics(timeout=10).topics
    done = reset_pipeline(spec)
    assert done[0] == f"position t{unique}/ingest deleted from _state_{unique}"
    assert kafka.PositionStore(conn, f"_state_{unique}").load(f"t{unique}/ingest") is None


def test_a_row_too_large_for_the_topic_goes_to_the_dead_letters(stack, spark, unique, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A Hive row whose record exceeds the topic's max message size is dead-lettered as too_large (bounded,
    with its size and hash), the other rows are produced, and the position moves past the increment."""
    import base64
    import hashlib
    import re

    from headwater.streaming.dlq import MAX_PAYLOAD_BYTES

    spec = load_spec(write_spec(tmp_path, unique))
    table = spec.source.table  # type: ignore[attr-defined]
    create_orders(spark, table, 500)
    big = 2 * 1024 * 1024
    spark.sql(f"""INSERT INTO {table} PARTITION (dt) SELECT order_id + 100000, customer_id, amount, quantity,
                 repeat('z', {big}), updated_at, items, attrs, dt FROM {table} WHERE order_id < 3""")
    stage = IngestStage(PipelineContext(spec), spark=spark)
    stage.prepare()
    result = stage.poll_once()
    assert result is not None and result.rows == 503 and result.produced == 500
    assert stage.progress.data["counters"]["too_large"] == 3
    assert _ids(stack.config.kafka_bootstrap, spec.topic.name) == Counter(range(500))
    letters = [json.loads(m.value()) for m in read_topic(stack.config.kafka_bootstrap, spec.dead_letter.topic)]
    ids = sorted(int(re.match(rb'\{"order_id":(\d+),', base64.b64decode(e["value_b64"])).group(1)) for e in letters)
    assert ids == [100000, 100001, 100002]  # once each; the cut payload keeps the start of the record
    for env in letters:
        assert env["reason"] == "too_large" and env["stage"] == "ingest" and env["truncated"] is True
        assert f"takes at most {stage.record_limit}" in env["message"] and env["value_size"] > big
        payload = base64.b64decode(env["value_b64"])
        assert len(payload) == MAX_PAYLOAD_BYTES and len(env["value_sha256"]) == 64
        assert hashlib.sha256(payload).hexdigest() != env["value_sha256"]  # the hash is of the whole record
    assert stage.poll_once() is None  # the position moved past the increment


def test_an_idle_stage_rehearses_without_producing_to_the_topic(stack, spark, unique, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The idle warm-up reads a sample and readies the producer; the topic and the position are unchanged."""
    from headwater.ingest.warm import WARM_UP_KEY_PREFIX

    spec = load_spec(write_spec(tmp_path, unique))
    table = spec.source.table  # type: ignore[attr-defined]
    create_orders(spark, table, 300)
    ctx = PipelineContext(spec)
    stage = IngestStage(ctx, spark=spark)
    stage.prepare()
    first = stage.poll_once()
    assert first is not None and first.produced == 300
    assert stage.poll_once() is None
    stage.last_produced = None  # as after a restart on a table already read
    assert stage.warm_up_due()
    stage.warm_up()
    assert stage.progress.data["rehearsal"].startswith("rehearsal: read 300 sample rows, Kafka producer ready")
    assert not stage.warm_up_due()  # kept alive only after PRODUCER_KEEPALIVE_SECONDS
    bootstrap = stack.config.kafka_bootstrap
    assert _ids(bootstrap, spec.topic.name) == Counter(range(300))  # nothing produced to the pipeline's topic
    state = [
        m
        for m in read_topic(bootstrap, spec.state_topic)
        if m.key() == f"{WARM_UP_KEY_PREFIX}{ctx.position_key}".encode()
    ]
    assert state and all(m.value() is None for m in state)  # a tombstone under the reserved key
    again = IngestStage(PipelineContext(spec), spark=spark)
    assert again.poll_once() is None  # the position is untouched: nothing is read again
