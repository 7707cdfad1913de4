"""The user's test kit: a spec's processing on a local SparkSession, with no service running."""

from __future__ import annotations

import doctest

import pytest

import headwater.testkit
from headwater.testkit import run_locally

pytestmark = pytest.mark.spark

SPEC = """
name: clicks
source: {type: hive, table: demo.clicks, mode: snapshot}
topic: {name: demo.clicks, key: [user_id]}
schema: {user_id: string, page: string, ms: bigint, ts: timestamp}
transforms:
  - {type: sql, query: "SELECT user_id, page, ms / 1000.0 AS seconds, ts FROM input"}
sink: {type: hbase, table: "demo:clicks", row_key: "{user_id}|{page}", columns: {d: [seconds]}}
dead_letter: {topic: demo.clicks.dlq}
"""


def test_docstring_examples_run(spark) -> None:  # type: ignore[no-untyped-def]
    """The module's examples are the documentation: they run as written."""
    result = doctest.testmod(headwater.testkit, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 5 and result.failed == 0


def test_transforms_and_bad_bytes(spark) -> None:  # type: ignore[no-untyped-def]
    click = {"user_id": "u1", "page": "/a", "ms": 1500, "ts": "2025-01-01T10:00:00Z"}
    out = run_locally(SPEC, [click, {**click, "page": "/b"}, b"\xff\xfe", '{"user_id": null, "page": "/c"}'])
    assert [(r["page"], float(r["seconds"])) for r in out.written] == [("/a", 1.5), ("/b", 1.5)]
    assert [(d.offset, d.reason) for d in out.dead_letters] == [(2, "bad_utf8"), (3, "missing_field")]
    assert out.dead_letters[0].value == b"\xff\xfe" and out.dead_letters[1].record == {"user_id": None, "page": "/c"}
    assert out.filtered == 0


def test_stateful_transforms_are_refused_with_the_reason(spark) -> None:  # type: ignore[no-untyped-def]
    from headwater.errors import ConfigError

    spec = SPEC.replace(
        "transforms:\n", "transforms:\n  - {type: dedupe, keys: [user_id], event_time: ts, within: 1 minute}\n"
    )
    with pytest.raises(ConfigError, match="runs stateless transforms only; DedupeTransform need a streaming query"):
        run_locally(spec, [])


def test_a_spec_without_schema_is_refused(spark) -> None:  # type: ignore[no-untyped-def]
    from headwater.errors import ConfigError

    with pytest.raises(ConfigError, match="the test kit needs the record schema declared as `schema:`"):
        run_locally(SPEC.replace("schema: {user_id: string, page: string, ms: bigint, ts: timestamp}\n", ""), [])
