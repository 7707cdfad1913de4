"""The one error classifier, on error texts the real services produced (tests/unit/faults/*.txt), and the
retry bound with an injected clock.

The HBase, Thrift, metastore and confluent-kafka texts were captured from the local stack (a put through
headwater's Thrift2 client to a missing table, a missing family, an 11 MiB cell; a closed port; a 2 MB
record). The Kafka Java client texts are that client's message formats (the timeout one as the ingest
stage logged it in tests/e2e/test_kafka_faults.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from headwater.errors import NotFoundError, PermanentError, ServiceUnavailable, TransientError
from headwater.faults import RetryBudget, classify

TEXTS = Path(__file__).parent / "faults"


def _text(name: str) -> str:
    return (TEXTS / f"{name}.txt").read_text()


@pytest.mark.parametrize(
    ("name", "kind", "reason"),
    [
        ("hbase_family_not_found", "permanent", "family_not_found"),
        ("hbase_table_not_found", "permanent", "table_not_found"),
        ("hbase_keyvalue_too_large", "permanent", "server_error"),
        ("kafka_msg_size_too_large", "permanent", "too_large"),
        ("kafka_java_record_too_large", "permanent", "too_large"),
        ("kafka_java_topic_authorization", "permanent", "unauthorized"),
        ("kafka_java_timeout", "transient", "timeout"),
        ("kafka_unreachable", "transient", "unreachable"),
        ("metastore_connection_refused", "transient", "unreachable"),
        ("thrift_connection_refused", "transient", "unreachable"),
    ],
)
def test_real_texts(name: str, kind: str, reason: str) -> None:
    fault = classify(_text(name))
    assert (fault.kind, fault.reason) == (kind, reason), fault


def test_the_object_is_named() -> None:
    family = classify(_text("hbase_family_not_found"))
    assert family.message == "HBase table 'errs_cap': column family 'zz' does not exist"
    assert family.subject == "family zz table errs_cap"
    assert classify(_text("hbase_table_not_found")).message == "HBase table 'nosuch_errs' does not exist"
    topic = classify(_text("kafka_java_topic_authorization"))
    assert topic.message == "Kafka: not authorized to access topic(s) demo.orders"


def test_a_permanent_cause_inside_a_retry_wrapper_stays_permanent() -> None:
    # The family error came through "Failed 1 action: ..., servers with issues: 127.0.0.1,..." (a retry
    # summary) and a TIOError: neither makes it transient.
    text = "org.apache.hadoop.hbase.client.RetriesExhaustedException: timed out; " + _text("hbase_family_not_found")
    assert classify(text).kind == "permanent"


def test_headwater_errors_raised_in_a_spark_task_decide_by_their_class() -> None:
    text = (
        "pyspark.errors.exceptions.captured.StreamingQueryException: [FOREACH_BATCH_USER_FUNCTION_ERROR] ...\n"
        '  File "/x/hbase_writer.py", line 120, in send_with_retry\n    raise PermanentError(message)\n'
        "headwater.errors.PermanentError: HBase table 't:o': column family 'x' does not exist; first record of"
        " the failing call: partition 1, offset 40\n\tat org.apache.spark.api.python.BasePythonRunner"
    )
    fault = classify(text)
    assert fault.kind == "permanent"
    assert fault.message == (
        "HBase table 't:o': column family 'x' does not exist; first record of the failing call: partition 1, offset 40"
    )
    assert classify("headwater.errors.TransientError: HBase table 't:o': timed out after 8 retries").transient


def test_exceptions() -> None:
    from thriftpy2.transport import TTransportException

    assert classify(TransientError("Kafka away")).transient
    assert classify(ServiceUnavailable("x")).transient
    assert not classify(NotFoundError("topic 't' not found")).transient
    assert not classify(PermanentError("x")).transient
    assert classify(TTransportException(message="Could not connect to ('127.0.0.1', 1)")).transient
    assert classify(TimeoutError("timed out")).transient
    assert classify(ConnectionRefusedError(111, "Connection refused")).transient
    assert classify(BrokenPipeError(32, "Broken pipe")).transient


def test_tio_errors_by_content_and_can_retry() -> None:
    from headwater.sinks.hbase.thrift2 import idl

    tio = idl().TIOError
    assert classify(tio(message="Failed 1 action: nosuch: 1 time, servers with issues: null", canRetry=True)).reason \
        == "table_not_found"  # fmt: skip
    assert classify(tio(message="nosuch_errs", canRetry=False)).kind == "permanent"  # a DoNotRetryIOException
    moving = tio(message="Failed 1 action: org.apache.hadoop.hbase.NotServingRegionException: t,,1.abc. is not "
                 "online on 127.0.0.1,16020,1: 1 time", canRetry=True)  # fmt: skip
    assert (classify(moving).kind, classify(moving).reason) == ("transient", "region_moving")
    assert classify(tio(message="something new", canRetry=True)).transient  # HBase I/O: transient by default


def test_kafka_exceptions_by_code() -> None:
    from confluent_kafka import KafkaError, KafkaException

    assert not classify(KafkaException(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE))).transient
    assert not classify(KafkaException(KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED))).transient
    assert not classify(KafkaException(KafkaError(KafkaError.UNKNOWN_TOPIC_OR_PART))).transient
    assert classify(KafkaException(KafkaError(KafkaError._TRANSPORT))).transient
    assert classify(KafkaException(KafkaError(KafkaError._ALL_BROKERS_DOWN))).transient
    # one broker of three killed: the client destroys its handle while a request is in flight (seen in the cluster tier)
    assert classify(KafkaException(KafkaError(KafkaError._DESTROY_BROKER))).transient
    assert classify(KafkaException(KafkaError(KafkaError.NOT_LEADER_FOR_PARTITION))).transient
    # a topic created a moment ago, not yet in the metadata of the broker asked (seen on three brokers)
    lag = classify(KafkaException(KafkaError(KafkaError._UNKNOWN_PARTITION,
                                             "Failed to get watermark offsets: Local: Unknown partition")))  # fmt: skip
    assert (lag.kind, lag.reason) == ("transient", "metadata_lag")


def test_unknown_errors_are_permanent_with_their_first_line() -> None:
    fault = classify(ValueError("bad value\nmore"))
    assert (fault.kind, fault.reason, fault.message) == ("permanent", "unknown", "ValueError: bad value")
    assert classify("java.lang.NullPointerException\n\tat x").message == "java.lang.NullPointerException"


def test_retry_budget_is_a_sliding_window() -> None:
    now = [0.0]
    budget = RetryBudget(3, 600.0, clock=lambda: now[0])
    for t in (0.0, 100.0, 200.0):
        now[0] = t
        assert budget.take()
    now[0] = 599.0
    assert not budget.take()  # a 4th within 600 s of the first
    now[0] = 600.0
    assert budget.take()  # the first left the window
    assert budget.recent == 3
    assert not RetryBudget(0, 600.0, clock=lambda: 0.0).take()  # max 0: no retry at all
