"""Which query failures the process stage restarts from its checkpoint, and which stop it."""

from __future__ import annotations

from headwater.faults import classify


def test_a_crashed_python_worker_restarts_the_query() -> None:
    # local mode never retries a task: a worker killed (kill -9, OOM killer) fails the batch's job
    fault = classify(
        "streaming query headwater_x stopped: org.apache.spark.SparkException: Job aborted due to stage failure: "
        "Task 1 in stage 2.0 failed 1 times, most recent failure: Lost task 1.0 in stage 2.0 (TID 5): "
        "org.apache.spark.SparkException: Python worker exited unexpectedly (crashed)."
    )
    assert fault.transient and fault.reason == "worker_crashed"


def test_disk_full_under_the_checkpoint_stops_the_stage() -> None:
    fault = classify("streaming query headwater_x stopped: java.io.IOException: No space left on device")
    assert not fault.transient and fault.reason == "disk_full"


def test_a_stuck_micro_batch_is_noticed_and_restarted() -> None:
    """A batch running past process.batch_timeout is reported once it is over; an idle query resets the clock."""
    from headwater.streaming.process import BatchWatchdog

    dog = BatchWatchdog(timeout=60)
    assert dog.check(True, 0.0) is None and dog.check(True, 59.0) is None
    assert dog.check(True, 61.0) == 61.0
    assert dog.check(False, 62.0) is None and dog.check(True, 100.0) is None  # a new batch: a new clock
    fault = classify("micro-batch stuck: running for 61s, over process.batch_timeout (60 seconds); restarted")
    assert fault.transient and fault.reason == "stuck"
