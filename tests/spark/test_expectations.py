"""Data-quality expectations: their effect on decoded records (the spec model: tests/unit/test_expectations_model.py)."""

from __future__ import annotations

import base64
import json
from datetime import datetime
from decimal import Decimal

import pytest

from headwater.errors import ConfigError, DataError
from headwater.streaming import decode as dec
from headwater.streaming import dlq
from headwater.streaming.expectations import (
    Expectation,
    ExpectationFailed,
    apply_expectations,
    count_expectations,
    progress_counters,
    validate_expectations,
)

SCHEMA = "order_id bigint, customer_id string, amount decimal(12,2), status string, sku string"


def _exp(**kwargs: object) -> Expectation:
    return Expectation.model_validate(kwargs)


# --- on records (Spark) ---------------------------------------------------------------------------
ROWS = [
    (1, "c1", Decimal("10.00"), "new", "sku-1"),
    (2, "c2", Decimal("-5.00"), "paid", "sku-2"),  # negative amount
    (3, None, Decimal("7.00"), "paid", "sku-3"),  # no customer
    (4, "c4", None, "weird", "SKU?"),  # null amount passes range; bad status and sku
    (5, None, Decimal("-1.00"), "new", "sku-5"),  # dead-lettered and failing a drop rule
]


def _decoded(spark):  # type: ignore[no-untyped-def]
    """Rows shaped like the decoder's output: fields plus the error columns (row 6 failed to decode)."""
    from pyspark.sql import functions as F

    df = spark.createDataFrame([*ROWS, (6, None, None, None, None)], SCHEMA)
    error = F.when(F.col("order_id") == 6, F.lit("malformed_json"))
    return df.withColumns({dec.ERROR: error, dec.ERROR_DETAIL: F.when(error.isNotNull(), F.lit("not a JSON object"))})


RULES = [
    _exp(name="amount_positive", range={"column": "amount", "min": 0, "max": 1000}),
    _exp(name="has_customer", not_null="customer_id", action="drop"),
    _exp(name="status_known", allowed={"column": "status", "values": ["new", "paid"]}, action="warn"),
    _exp(name="sku_format", regex={"column": "sku", "pattern": "^sku-[0-9]+$"}),
]


@pytest.mark.spark
def test_apply_marks_drops_and_dead_letters(spark) -> None:  # type: ignore[no-untyped-def]
    out = apply_expectations(_decoded(spark), RULES)
    rows = {r["order_id"]: r.asDict() for r in out.collect()}
    assert sorted(rows) == [1, 2, 4, 5, 6]  # 3 dropped (no customer); 5 fails a drop rule but is dead-lettered
    assert {i: (r[dec.ERROR], r[dec.ERROR_DETAIL]) for i, r in rows.items()} == {
        1: (None, None),
        2: ("expectation_failed", "amount_positive: amount -5.00 violates range [0, 1000]"),
        4: ("expectation_failed", "sku_format: sku SKU? violates regex ^sku-[0-9]+$"),
        5: ("expectation_failed", "amount_positive: amount -1.00 violates range [0, 1000]"),  # first failing rule
        6: ("malformed_json", "not a JSON object"),  # decode errors are kept and not checked
    }
    assert rows[4]["_hw_exp_status_known"] is True and rows[1]["_hw_exp_status_known"] is False
    assert rows[5]["_hw_exp_has_customer"] is True
    assert all(not v for k, v in rows[6].items() if k.startswith("_hw_exp_"))


@pytest.mark.spark
def test_counts_per_rule(spark) -> None:  # type: ignore[no-untyped-def]
    counts = count_expectations(_decoded(spark), RULES)
    assert counts == {
        "amount_positive": {"failed": 2, "action": "dead_letter"},
        "has_customer": {"failed": 2, "action": "drop", "dropped": 1},
        "status_known": {"failed": 1, "action": "warn"},
        "sku_format": {"failed": 1, "action": "dead_letter"},
    }
    assert progress_counters(counts) == {
        "expectation_amount_positive_failed": 2, "expectation_has_customer_failed": 2,
        "expectation_status_known_failed": 1, "expectation_sku_format_failed": 1, "expectations_dropped": 1,
    }  # fmt: skip
    assert count_expectations(_decoded(spark), []) == {} and progress_counters({}) == {}


@pytest.mark.spark
def test_sql_rule_and_null_semantics(spark) -> None:  # type: ignore[no-untyped-def]
    rule = _exp(name="big_order", sql="amount * 2 < 15", action="dead_letter")
    out = {r["order_id"]: r[dec.ERROR_DETAIL] for r in apply_expectations(_decoded(spark), [rule]).collect()}
    assert out == {
        1: "big_order: record violates sql (amount * 2 < 15)",
        2: None,
        3: None,
        4: None,
        5: None,
        6: "not a JSON object",
    }  # fmt: skip  (row 4: NULL predicate passes, as a CHECK constraint)


@pytest.mark.spark
def test_fail_action_stops_with_an_example(spark) -> None:  # type: ignore[no-untyped-def]
    rule = _exp(name="no_negative", range={"column": "amount", "min": 0}, action="fail")
    with pytest.raises(ExpectationFailed) as info:
        apply_expectations(_decoded(spark), [rule])
    assert isinstance(info.value, DataError)
    assert str(info.value) == (
        "expectation_failed: expectation 'no_negative' (action fail) failed for 2 record(s), "
        "e.g. no_negative: amount -5.00 violates range [0, +inf]"
    )
    counts = count_expectations(_decoded(spark), [rule])
    with pytest.raises(ExpectationFailed, match="failed for 2 record"):
        apply_expectations(_decoded(spark), [rule], counts)
    ok = _exp(name="no_huge", range={"column": "amount", "max": 100}, action="fail")
    assert apply_expectations(_decoded(spark), [ok], count_expectations(_decoded(spark), [ok])).count() == 6


@pytest.mark.spark
def test_config_errors(spark) -> None:  # type: ignore[no-untyped-def]
    df = _decoded(spark)
    with pytest.raises(ConfigError, match=r"expectations\[0\] \(x\)\.not_null: column 'amt' not in the records"):
        apply_expectations(df, [_exp(name="x", not_null="amt")])
    with pytest.raises(ConfigError, match=r"expectations\[1\] \(y\)\.sql: .*nope"):
        validate_expectations([_exp(name="x", not_null="amount"), _exp(name="y", sql="nope > 1")], df.limit(0))
    with pytest.raises(ConfigError, match=r"expectations\[0\] \(z\)\.regex: invalid pattern"):
        validate_expectations([_exp(name="z", regex={"column": "sku", "pattern": "sku-("})], df.limit(0))
    validate_expectations(RULES, df.limit(0))


@pytest.mark.spark
def test_after_decode_into_dead_letter_envelopes(spark) -> None:  # type: ignore[no-untyped-def]
    """The path process_batch takes: decode -> expectations -> good records / envelopes of the bad ones."""
    from pyspark.sql.types import StructType

    values = [
        {"order_id": 1, "customer_id": "c1", "amount": 3.5, "status": "new", "sku": "sku-1"},
        {"order_id": 2, "customer_id": "c2", "amount": -3.5, "status": "new", "sku": "sku-2"},
        {"order_id": 3, "customer_id": "c3", "amount": "abc", "status": "new", "sku": "sku-3"},
    ]
    raw = spark.createDataFrame(
        [(str(v["order_id"]).encode(), json.dumps(v).encode(), "t.orders", 0, i, datetime(2025, 1, 1))
         for i, v in enumerate(values)],
        "key binary, value binary, topic string, partition int, offset bigint, timestamp timestamp",
    )  # fmt: skip
    schema = StructType.fromDDL(SCHEMA)
    decoded = dec.decode(raw, schema, ["order_id"])
    checked = apply_expectations(decoded, RULES)
    assert [r["order_id"] for r in dec.good_records(checked, schema).collect()] == [1]
    envelopes = {
        r["key"]: json.loads(r["value"]) for r in dlq.envelopes(dec.bad_records(checked), "p", "decode").collect()
    }
    assert {k: (e["reason"], e["message"]) for k, e in envelopes.items()} == {
        "t.orders:0:1": ("expectation_failed", "amount_positive: amount -3.50 violates range [0, 1000]"),
        "t.orders:0:2": ("type_mismatch", "amount: abc is not decimal(12,2)"),
    }
    assert json.loads(base64.b64decode(envelopes["t.orders:0:1"]["value_b64"])) == values[1]
