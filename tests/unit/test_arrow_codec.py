"""The column-wise encoders give exactly the bytes of the value-by-value codec, errors included."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from headwater.sinks.hbase.arrow_codec import cell_timestamp, encode_column, version_millis
from headwater.sinks.hbase.codec import CodecError, encode_value

PROPS = settings(max_examples=120, deadline=None)


def expected(values: list[Any], type_name: str) -> tuple[list[bytes | None], set[int]]:
    out: list[bytes | None] = []
    bad = set()
    for i, v in enumerate(values):
        try:
            out.append(encode_value(v, type_name))
        except CodecError:
            out.append(None)
            bad.add(i)
    return out, bad


def check(values: list[Any], arrow_type: pa.DataType, type_name: str) -> None:
    column = encode_column(pa.array(values, arrow_type), type_name)
    want, bad = expected(values, type_name)
    assert column.values == want
    assert set(column.errors) == bad


def nullable(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[list[Any]]:
    return st.lists(st.one_of(st.none(), strategy), max_size=30)


@PROPS
@given(nullable(st.text()))
def test_strings(values: list[Any]) -> None:
    check(values, pa.string(), "string")
    check(values, pa.large_string(), "string")


@PROPS
@given(nullable(st.integers(-(2**63), 2**63 - 1)))
def test_longs_and_out_of_range_ints(values: list[Any]) -> None:
    check(values, pa.int64(), "long")
    check(values, pa.int64(), "int")  # values beyond 32 bits are errors, each named


@PROPS
@given(nullable(st.integers(-(2**31), 2**31 - 1)))
def test_ints(values: list[Any]) -> None:
    check(values, pa.int32(), "int")


@PROPS
@given(nullable(st.booleans()))
def test_booleans(values: list[Any]) -> None:
    check(values, pa.bool_(), "boolean")


@PROPS
@given(st.integers(0, 18).flatmap(lambda scale: st.tuples(
    st.just(scale), nullable(st.decimals(min_value=-(10**10), max_value=10**10, places=scale, allow_nan=False)))))  # fmt: skip
def test_decimals_keep_scale_and_never_use_exponents(case: tuple[int, list[Any]]) -> None:
    scale, values = case
    check(values, pa.decimal128(38, scale), "decimal")


def test_tiny_decimal_is_plain_digits() -> None:
    column = encode_column(pa.array([Decimal("0.0000001"), Decimal("1.5000000")], pa.decimal128(10, 7)), "decimal")
    assert column.values == [b"0.0000001", b"1.5000000"]


@PROPS
@given(nullable(st.dates()))
def test_dates_of_every_year(values: list[Any]) -> None:
    check(values, pa.date32(), "date")


ZONES = st.sampled_from([None, "UTC", "Europe/Berlin", "America/Los_Angeles", "+05:30"])


@PROPS
@given(nullable(st.datetimes(timezones=st.just(UTC))), ZONES)
def test_timestamps_any_zone_to_utc_iso(values: list[Any], zone: str | None) -> None:
    if zone is None:
        values = [None if v is None else v.replace(tzinfo=None) for v in values]
    check(values, pa.timestamp("us", tz=zone), "timestamp")


def test_timestamp_text_is_utc_with_micros() -> None:
    berlin = timezone(timedelta(hours=1))
    arr = pa.array([datetime(2024, 1, 1, 12, 0, tzinfo=berlin), None], pa.timestamp("us", tz="Europe/Berlin"))
    assert encode_column(arr, "timestamp").values == [b"2024-01-01T11:00:00.000000+00:00", None]


@PROPS
@given(nullable(st.floats(allow_nan=False, allow_infinity=False)))
def test_doubles_value_by_value(values: list[Any]) -> None:
    check(values, pa.float64(), "double")


def test_json_maps_become_objects() -> None:
    arr = pa.array([[("b", 1), ("a", 2)], None, []], pa.map_(pa.string(), pa.int32()))
    assert encode_column(arr, "json").values == [b'{"a":2,"b":1}', None, b"{}"]
    nested = pa.array(
        [{"m": [], "l": [[("k", "v")]]}],
        pa.struct([("m", pa.map_(pa.string(), pa.string())), ("l", pa.list_(pa.map_(pa.string(), pa.string())))]),
    )
    assert encode_column(nested, "json").values == [b'{"l":[{"k":"v"}],"m":{}}']


def test_mismatched_types_fall_back_and_name_the_value() -> None:
    column = encode_column(pa.array(["12", "x"]), "long")
    assert column.values == [None, None]
    assert "cannot encode '12' as long" in column.errors[0]


@PROPS
@given(nullable(st.datetimes(min_value=datetime(1970, 1, 1), timezones=st.just(UTC))))
def test_version_from_timestamps(values: list[Any]) -> None:
    millis, errors = version_millis(pa.array(values, pa.timestamp("us", tz="UTC")), "timestamp")
    for i, v in enumerate(values):
        if v is None:
            assert errors[i] == "version field is null"
        else:
            assert (
                millis[i]
                == cell_timestamp(v, "timestamp")
                == (v - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)
            )


@pytest.mark.parametrize(
    ("array", "type_name", "want"),
    [
        (pa.array([date(1970, 1, 2)]), "date", 86_400_000),
        (pa.array([5], pa.int64()), "long", 5),
        (pa.array([7], pa.int32()), "int", 7),
    ],
)
def test_version_from_dates_and_longs(array: pa.Array, type_name: str, want: int) -> None:
    assert version_millis(array, type_name) == ([want], {})


def test_negative_version_is_an_error_not_a_cell() -> None:
    millis, errors = version_millis(pa.array([-1, 3], pa.int64()), "long")
    assert millis == [None, 3]
    assert "before 1970" in errors[0]
    with pytest.raises(CodecError, match="before 1970"):
        cell_timestamp(datetime(1969, 12, 31, tzinfo=UTC), "timestamp")


KEY_TEMPLATES = ["{s}|{n:long}", "{s}", "{n}#{s}||{i:int}", "k:{i:int}{n:long}", "{n:int}|{s}", "{s}::{s}"]


@PROPS
@given(
    st.sampled_from(KEY_TEMPLATES),
    st.lists(st.tuples(st.one_of(st.none(), st.text(alphabet="ab|:#é", max_size=4)),
                       st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1)),
                       st.integers(-(2**31), 2**31 - 1)), min_size=1, max_size=20),
)  # fmt: skip
def test_row_keys_column_wise_equal_the_template(template: str, rows: list[tuple[Any, Any, int]]) -> None:
    from headwater.sinks.hbase.arrow_codec import encode_keys
    from headwater.sinks.hbase.rowkey import RowKeyError, RowKeyTemplate

    t = RowKeyTemplate.parse(template)
    batch = pa.RecordBatch.from_pydict({"s": [r[0] for r in rows], "n": pa.array([r[1] for r in rows], pa.int64()),
                                        "i": pa.array([r[2] for r in rows], pa.int32())})  # fmt: skip
    keys = encode_keys(t, batch)
    want: list[bytes | None] = []
    for s, n, i in rows:
        try:
            want.append(t.encode({"s": s, "n": n, "i": i}))
        except (RowKeyError, CodecError):
            want.append(None)
    if keys is None:  # declined: only when some row fails (the writer then names it row by row)
        assert None in want
    else:
        assert keys == want
