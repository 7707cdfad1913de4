"""An idle process stage rehearses a micro-batch on synthetic records and writes nothing anywhere."""

from __future__ import annotations

import pytest
from confluent_kafka import Producer

from headwater import kafka
from headwater.context import PipelineContext
from headwater.spec import load_spec
from headwater.streaming.process import ProcessStage
from kit import hbase_cells, read_topic, write_spec

pytestmark = pytest.mark.integration


def test_an_idle_stage_rehearses_and_a_waiting_backlog_is_not_delayed(stack, spark, unique, tmp_path) -> None:  # type: ignore[no-untyped-def]
    spec = load_spec(write_spec(tmp_path, unique))
    conn = spec.connections.kafka
    kafka.ensure_topic(conn, spec.topic.name, 2)  # as the ingest stage creates it: empty
    stage = ProcessStage(PipelineContext(spec), spark=spark)
    stage.prepare()
    rehearsal = stage.progress.data["rehearsal"]
    assert rehearsal["skipped"] == "" and len(rehearsal["rounds_s"]) == 3
    cfg = stack.config
    assert hbase_cells(cfg.host, cfg.thrift2_port, spec.sink.table) == {}  # type: ignore[attr-defined]
    assert read_topic(cfg.kafka_bootstrap, spec.dead_letter.topic) == []
    assert read_topic(cfg.kafka_bootstrap, spec.topic.name) == []

    producer = Producer({"bootstrap.servers": cfg.kafka_bootstrap})
    for i in range(7):
        producer.produce(spec.topic.name, key=str(i).encode(), value=b'{"order_id": %d}' % i)
    assert producer.flush(30) == 0
    again = ProcessStage(PipelineContext(spec), spark=spark)
    again.prepare()
    assert again.progress.data["rehearsal"] == {"rounds_s": [], "skipped": "7 records wait to be read"}
