"""Decoding Kafka values into typed records, and the reason each bad one gets (local SparkSession)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from headwater.streaming import decode as dec

pytestmark = pytest.mark.spark

SCHEMA = (
    "order_id bigint, customer_id string, amount decimal(12,2), quantity int, paid boolean, "
    "updated_at timestamp, items array<struct<sku:string,qty:int>>, attrs map<string,string>"
)
GOOD = {
    "order_id": 1, "customer_id": "c1", "amount": 12.5, "quantity": 2, "paid": True,
    "updated_at": "2025-01-01T10:00:00.000000+00:00", "items": [{"sku": "s", "qty": 1}], "attrs": {"k": "v"},
}  # fmt: skip


def variant(**changes: Any) -> bytes:
    return json.dumps({**GOOD, **changes}).encode()


DEEP = b'{"order_id": 6, "attrs": ' + b'{"a": ' * 5000 + b"1" + b"}" * 5001  # past Jackson's nesting limit
HUGE = json.dumps({"order_id": 10, "quantity": int("9" * 4000)}).encode()

CASES: list[tuple[str, bytes, str | None, str | None]] = [
    ("good", variant(), None, None),
    ("nulls in optional fields", variant(amount=None, items=None, attrs=None, paid=None), None, None),
    ("extra field ignored", variant(extra="x"), None, None),
    ("optional field absent", json.dumps({"order_id": 2, "customer_id": "c"}).encode(), None, None),
    ("decimal as exact string", variant(amount="12.50"), None, None),
    ("bad utf-8", b'{"order_id": 3, "customer_id": "\xff"}', "bad_utf8", "value is not valid UTF-8"),
    ("not json", b"order_id=4", "malformed_json", "not a JSON object: order_id=4"),
    ("truncated json", b'{"order_id": 5, "cust', "malformed_json", 'not a JSON object: {"order_id": 5, "cust'),
    ("json array", b"[1, 2]", "malformed_json", "not a JSON object: [1, 2]"),
    ("json number", b"42", "malformed_json", "not a JSON object: 42"),
    ("decimal with comma", variant(amount="12,50"), "type_mismatch", "amount: 12,50 is not decimal(12,2)"),
    ("decimal text", variant(amount="N/A"), "type_mismatch", "amount: N/A is not decimal(12,2)"),
    ("int as text", variant(quantity="two"), "type_mismatch", "quantity: two is not int"),
    ("int too big", variant(quantity=2**40), "type_mismatch", f"quantity: {2**40} is not int"),
    ("bad timestamp", variant(updated_at="yesterday"), "type_mismatch", "updated_at: yesterday is not timestamp"),
    ("array for struct list", variant(items={"sku": "s"}), "type_mismatch",
     'items: {"sku":"s"} is not array<struct<sku:string,qty:int>>'),
    ("two mismatches", variant(quantity="x", amount="y"), "type_mismatch",
     "amount: y is not decimal(12,2); quantity: x is not int"),
    ("required null", variant(order_id=None), "missing_field", "order_id is null or missing"),
    ("required absent", json.dumps({"customer_id": "c"}).encode(), "missing_field", "order_id is null or missing"),
    ("mismatch before missing", variant(order_id="x"), "type_mismatch", "order_id: x is not bigint"),
    # hostile input: each is one dead letter with a reason, never a failed batch
    ("deeply nested json", DEEP, "malformed_json", f"not a JSON object: {DEEP[:80].decode()}"),
    ("bigint overflow", variant(order_id=10**30), "type_mismatch", f"order_id: {10**30} is not bigint"),
    ("decimal overflow", variant(amount=10**20), "type_mismatch", f"amount: {10**20} is not decimal(12,2)"),
    ("number of 4000 digits", HUGE, "malformed_json", f"not a JSON object: {HUGE[:80].decode()}"),  # Jackson's limit
    ("float overflow", b'{"order_id": 7, "amount": 1e400}', "type_mismatch", 'amount: "Infinity" is not decimal(12,2)'),
    ("lone surrogate escape", b'{"order_id": 8, "customer_id": "\\ud800"}', None, None),
    ("invalid utf-8 in a key field", b'{"order_id": 9, "customer_id": "a\xc3\x28"}', "bad_utf8",
     "value is not valid UTF-8"),
]  # fmt: skip


@pytest.fixture(scope="module")
def decoded(spark) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    from pyspark.sql.types import StructType

    raw = spark.createDataFrame(
        [(b"k", value, "t", 0, i, datetime(2025, 1, 1)) for i, (_, value, _, _) in enumerate(CASES)],
        "key binary, value binary, topic string, partition int, offset bigint, timestamp timestamp",
    )
    out = dec.decode(raw, StructType.fromDDL(SCHEMA), ["order_id"]).collect()
    return {CASES[r["_hw_offset"]][0]: r for r in out}


@pytest.mark.parametrize(("name", "value", "reason", "detail"), CASES, ids=[c[0] for c in CASES])
def test_reason_and_detail(decoded: dict[str, Any], name: str, value: bytes, reason: str | None,
                           detail: str | None) -> None:  # fmt: skip
    row = decoded[name]
    assert (row[dec.ERROR], row[dec.ERROR_DETAIL]) == (reason, detail)


def test_good_record_is_fully_typed(decoded: dict[str, Any]) -> None:
    row = decoded["good"].asDict(recursive=True)
    assert row["amount"] == Decimal("12.50")
    assert row["updated_at"].astimezone(UTC) == datetime(2025, 1, 1, 10, tzinfo=UTC)
    assert (row["quantity"], row["paid"], row["items"], row["attrs"]) == (2, True, [{"sku": "s", "qty": 1}], {"k": "v"})
    assert (row["_hw_topic"], row["_hw_partition"]) == ("t", 0)
    assert decoded["decimal as exact string"]["amount"] == Decimal("12.50")


def test_good_and_bad_split(spark, decoded: dict[str, Any]) -> None:  # type: ignore[no-untyped-def]
    from pyspark.sql.types import StructType

    schema = StructType.fromDDL(SCHEMA)
    raw = spark.createDataFrame(
        [(b"k", value, "t", 0, i, datetime(2025, 1, 1)) for i, (_, value, _, _) in enumerate(CASES)],
        "key binary, value binary, topic string, partition int, offset bigint, timestamp timestamp",
    )
    d = dec.decode(raw, schema, ["order_id"])
    good = dec.good_records(d, schema).collect()
    bad = dec.bad_records(d).collect()
    assert len(good) == sum(1 for c in CASES if c[2] is None)
    assert sorted(r["_hw_offset"] for r in bad) == [i for i, c in enumerate(CASES) if c[2] is not None]
    assert good[0].asDict().keys() == {*schema.fieldNames(), *dec.META}


def test_a_keyed_topic_dead_letters_records_without_a_key(spark) -> None:  # type: ignore[no-untyped-def]
    from pyspark.sql.types import StructType

    raw = spark.createDataFrame(
        [(key, variant(order_id=i), "t", 0, i, datetime(2025, 1, 1)) for i, key in enumerate([b"1", None, b""])],
        "key binary, value binary, topic string, partition int, offset bigint, timestamp timestamp",
    )
    rows = {r["_hw_offset"]: r for r in dec.decode(raw, StructType.fromDDL(SCHEMA), ["order_id"], keyed=True).collect()}
    assert rows[0][dec.ERROR] is None
    assert (rows[1][dec.ERROR], rows[1][dec.ERROR_DETAIL]) == (
        "missing_key",
        "the Kafka key is null; the topic is keyed by the record's key fields",
    )
    assert (rows[2][dec.ERROR], rows[2][dec.ERROR_DETAIL]) == (
        "missing_key",
        "the Kafka key is empty; the topic is keyed by the record's key fields",
    )
    unkeyed = dec.decode(raw, StructType.fromDDL(SCHEMA), ["order_id"]).collect()
    assert all(r[dec.ERROR] is None for r in unkeyed)  # a topic without declared keys takes any key
