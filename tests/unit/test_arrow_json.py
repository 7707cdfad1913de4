"""Column-wise JSON gives exactly the bytes of the ``json`` codec, value by value, or declines."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from headwater.sinks.hbase.arrow_codec import encode_column, typed_plain
from headwater.sinks.hbase.arrow_json import json_column
from headwater.sinks.hbase.codec import encode_value

PROPS = settings(max_examples=150, deadline=None)

# (Arrow type, strategy of its Python values): the scalars the codec writes in JSON.
SCALARS: list[tuple[pa.DataType, st.SearchStrategy[Any]]] = [
    (pa.string(), st.text()),
    (pa.int64(), st.integers(-(2**63), 2**63 - 1)),
    (pa.int32(), st.integers(-(2**31), 2**31 - 1)),
    (pa.bool_(), st.booleans()),
    (pa.decimal128(12, 2), st.decimals(-(10**9), 10**9, places=2, allow_nan=False)),
    (pa.date32(), st.dates(date(1, 1, 1), date(9999, 12, 31))),
    (pa.timestamp("us", tz="UTC"), st.datetimes(datetime(1, 1, 2), datetime(9999, 12, 30), timezones=st.just(UTC))),
]


def nested(depth: int) -> st.SearchStrategy[tuple[pa.DataType, st.SearchStrategy[Any]]]:
    """A random Arrow type (scalars, structs, lists, maps up to ``depth`` levels) and its values."""
    scalar = st.sampled_from(SCALARS)
    if depth == 0:
        return scalar

    def build(kind: str, inner: list[tuple[pa.DataType, st.SearchStrategy[Any]]], names: list[str]) -> Any:
        if kind == "list":
            t, v = inner[0]
            return pa.list_(t), st.lists(st.one_of(st.none(), v), max_size=4)
        if kind == "map":
            t, v = inner[0]
            key_type, keys = (pa.string(), st.text(max_size=5)) if len(names) % 2 else (pa.int32(), st.integers(-9, 9))
            pairs = st.dictionaries(keys, st.one_of(st.none(), v), max_size=4).map(lambda d: list(d.items()))
            return pa.map_(key_type, t), pairs
        fields = list(zip(names, inner, strict=False))
        return pa.struct([(n, t) for n, (t, _) in fields]), st.fixed_dictionaries(
            {n: st.one_of(st.none(), v) for n, (_, v) in fields}
        )

    names = st.lists(st.text(min_size=1, max_size=4), min_size=1, max_size=3, unique=True)
    return st.builds(build, st.sampled_from(["list", "map", "struct"]),
                     st.lists(nested(depth - 1), min_size=3, max_size=3), names)  # fmt: skip


def check(arrow_type: pa.DataType, values: list[Any]) -> None:
    array = pa.array(values, arrow_type)
    want = [None if v is None else encode_value(typed_plain(v, arrow_type), "json") for v in array.to_pylist()]
    got = json_column(array)
    assert got is None or got == want  # None: the caller goes value by value
    assert encode_column(array, "json").values == want


@PROPS
@given(st.data(), nested(2))
def test_nested_values_match_the_codec(data: st.DataObject, case: tuple[pa.DataType, Any]) -> None:
    arrow_type, values = case
    rows = data.draw(st.lists(st.one_of(st.none(), values), max_size=12))
    check(arrow_type, rows)
    if len(rows) > 2:  # a slice keeps its offsets: what Spark hands over is often one
        array = pa.array(rows, arrow_type).slice(1, len(rows) - 2)
        want = [None if v is None else encode_value(typed_plain(v, arrow_type), "json") for v in array.to_pylist()]
        assert encode_column(array, "json").values == want


def test_the_common_shapes_take_the_fast_path() -> None:
    items = pa.array(
        [[{"sku": 'a"b\n', "qty": 1}], [], None], pa.list_(pa.struct([("sku", pa.string()), ("qty", pa.int32())]))
    )
    assert json_column(items) == [b'[{"qty":1,"sku":"a\\"b\\n"}]', b"[]", None]
    attrs = pa.array([[("z", "1"), ("a", None)], []], pa.map_(pa.string(), pa.string()))
    assert json_column(attrs) == [b'{"a":null,"z":"1"}', b"{}"]
    money = pa.array([{"at": datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC), "amount": Decimal("1.50")}])
    assert json_column(money) == [b'{"amount":"1.50","at":"2025-01-02T03:04:05.000000+00:00"}']


def test_what_it_cannot_reproduce_goes_value_by_value() -> None:
    for array in (pa.array([[1.5]]), pa.array([["\x01"]]), pa.array([[b"x"]])):
        assert json_column(array) is None
    floats = pa.array([[1.0, 0.1]], pa.list_(pa.float64()))
    assert encode_column(floats, "json").values == [b"[1.0,0.1]"]
