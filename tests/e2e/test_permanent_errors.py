"""A permanent HBase error stops the pipeline at once: one line naming the table, the family and the record."""

from __future__ import annotations

import json
import re
import time

import pytest

from headwater.context import PipelineContext
from headwater.demo import create_orders
from headwater.errors import PermanentError
from headwater.observability.progress import read_progress
from headwater.sinks.hbase.thrift2 import Thrift2Client
from headwater.spec import load_spec
from kit import read_topic, run_cli, write_spec

pytestmark = pytest.mark.e2e


def test_missing_column_family_stops_the_stage_with_one_line(stack, spark, unique, tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = write_spec(tmp_path, unique)
    spec = load_spec(path)
    ctx = PipelineContext(spec)
    table = spec.sink.full_table
    create_orders(spark, spec.source.table, 3_000)
    # The table exists with family d only; the spec also writes family x. The stage reports the difference
    # and leaves the table as it is (an operator's decision), so the first write meets HBase's own error.
    with Thrift2Client(stack.config.host, stack.config.thrift2_port) as client:
        client.create_namespace(table.split(":")[0])
        client.create_table(table, [client.t.TColumnFamilyDescriptor(name=b"d", maxVersions=5)])
    started = time.monotonic()
    out = run_cli("run", str(path), "--until-drained", timeout=600)
    seconds = time.monotonic() - started
    process_log = (ctx.home / "process.log").read_text(errors="replace")
    assert out.returncode == PermanentError.exit_code, out.stderr[-3000:] + process_log[-3000:]
    errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    pattern = (
        rf"error: stage process exited with code 7: process stage stopped: HBase table '{re.escape(table)}': "
        r"column family 'x' does not exist; first record of the failing call: partition (\d+), offset (\d+); log: "
    )
    assert len(errors) == 1 and re.match(pattern, errors[0]), errors
    match = re.match(pattern, errors[0])
    assert match is not None
    partition, offset = int(match[1]), int(match[2])
    # The position names a real record of the pipeline's topic: one the sink had to write.
    records = {(m.partition(), m.offset()): json.loads(m.value()) for m in read_topic(stack.config.kafka_bootstrap,
                                                                                       spec.topic.name)}  # fmt: skip
    assert (partition, offset) in records
    # The stage's own log says it once, as the one error line; the error was never retried or restarted.
    stage_errors = [line for line in process_log.splitlines() if line.startswith("error:")]
    assert stage_errors == [errors[0].split(": ", 1)[1].replace("stage process exited with code 7: ", "error: ", 1)
                            .rsplit("; log: ", 1)[0]], stage_errors  # fmt: skip
    assert "; retry 1/" not in process_log and "restarting in" not in process_log, process_log[-3000:]
    progress = read_progress(ctx.progress_path("process")) or {}
    assert progress["state"] == "failed"
    assert progress["last_error"].startswith(f"process stage stopped: HBase table '{table}': column family 'x'")
    assert "query_restarts" not in progress["counters"]
    print(f"failed after {seconds:.1f}s (CLI start to exit, both stages): {errors[0]}")
