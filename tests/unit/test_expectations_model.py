"""Data-quality expectations: the spec model (no Spark; their effect on records: tests/spark/test_expectations.py)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from headwater.errors import ConfigError
from headwater.spec import load_spec_text
from headwater.streaming.expectations import Expectation


def _exp(**kwargs: object) -> Expectation:
    return Expectation.model_validate(kwargs)


# --- the model ------------------------------------------------------------------------------------
def test_exactly_one_rule() -> None:
    with pytest.raises(ValidationError, match="give exactly one of not_null, range, regex, allowed, sql; got none"):
        _exp(name="x")
    with pytest.raises(ValidationError, match="got not_null, sql"):
        _exp(name="x", not_null="a", sql="a > 0")
    with pytest.raises(ValidationError, match="range needs min and/or max"):
        _exp(name="x", range={"column": "a"})
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        _exp(name="x", not_null="a", severity="high")
    with pytest.raises(ValidationError, match="Input should be 'warn', 'drop', 'dead_letter' or 'fail'"):
        _exp(name="x", not_null="a", action="ignore")
    with pytest.raises(ValidationError, match="String should match pattern"):
        _exp(name="bad name", not_null="a")


def test_defaults_and_description() -> None:
    e = _exp(name="pos", range={"column": "amount", "min": 0})
    assert (e.action, e.kind, e.column, e.flag) == ("dead_letter", "range", "amount", "_hw_exp_pos")
    assert e.describe() == "range [0, +inf]"
    assert _exp(name="a", allowed={"column": "s", "values": ["x", 1]}).describe() == "allowed [x, 1]"
    assert _exp(name="s", sql="a > b").describe() == "sql (a > b)" and _exp(name="s", sql="a > b").column is None


SPEC = """
name: p
source: {type: hive, table: db.t, mode: snapshot}
topic: {name: p.t, key: [order_id]}
expectations:
  - {name: pos, range: {column: amount, min: 0}}
  - {name: pos, not_null: customer_id, action: drop}
sink: {type: hbase, table: "p:t", row_key: "{order_id:long}", columns: {d: [amount]}}
dead_letter: {topic: p.t.dlq}
"""


def test_spec_field_and_unique_names() -> None:
    with pytest.raises(ConfigError, match="expectation names must be unique: pos"):
        load_spec_text(SPEC)
    spec = load_spec_text(SPEC.replace("{name: pos, not_null", "{name: has_customer, not_null"))
    assert [(e.name, e.kind, e.action) for e in spec.expectations] == [
        ("pos", "range", "dead_letter"), ("has_customer", "not_null", "drop"),
    ]  # fmt: skip
    without = "".join(line for line in SPEC.splitlines(keepends=True) if "expectations" not in line
                      and "{name: pos" not in line)  # fmt: skip
    assert "expectations" not in without and load_spec_text(without).expectations == []
