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
