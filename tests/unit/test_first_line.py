"""An error's one line for logs and the progress file names the JVM's root cause, not the py4j call that failed."""

from __future__ import annotations

from typing import Any

from headwater.errors import first_line


class _JavaError:
    """Stands in for a py4j JavaObject: a Throwable chain (getCause, toString)."""

    def __init__(self, text: str, cause: _JavaError | None = None) -> None:
        self.text, self.cause = text, cause

    def getCause(self) -> Any:  # the Java method names
        return self.cause

    def toString(self) -> str:
        return self.text


class _Py4JError(Exception):
    def __init__(self, java: _JavaError) -> None:
        super().__init__("An error occurred while calling o127.save.\n: org.apache.spark.SparkException: ...")
        self.java_exception = java


def test_root_cause_of_a_jvm_error() -> None:
    root = _JavaError("org.apache.kafka.common.errors.TimeoutException: Expiring 12 record(s) for t-0:60001 ms\n\tat x")
    exc = _Py4JError(_JavaError("org.apache.spark.SparkException: Job aborted", _JavaError("task failed", root)))
    assert first_line(exc) == "org.apache.kafka.common.errors.TimeoutException: Expiring 12 record(s) for t-0:60001 ms"


def test_python_errors_keep_their_first_line() -> None:
    assert first_line(ValueError("bad value\nmore")) == "bad value"
    assert first_line(RuntimeError()) == "RuntimeError"
