"""Unit and property tests for the HBase cell value codecs."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from headwater.sinks.hbase.codec import (
    CODECS,
    TYPE_NAMES,
    CodecError,
    decode_value,
    encode_value,
    get_codec,
    infer_type,
    string_form,
    to_timestamp,
)

PROPS = settings(max_examples=150, deadline=None)


# ---------------------------------------------------------------- registry


def test_type_names_listed_once_in_registry() -> None:
    assert TYPE_NAMES == (
        "string",
        "int",
        "long",
        "double",
        "boolean",
        "decimal",
        "date",
        "timestamp",
        "json",
        "bytes",
    )
    assert tuple(CODECS) == TYPE_NAMES
    assert get_codec("long").name == "long"


def test_unknown_type_lists_valid_types() -> None:
    with pytest.raises(CodecError) as info:
        encode_value(1, "float")
    assert str(info.value) == (
        "unknown type 'float'; valid types: string, int, long, double, boolean, decimal, date, timestamp, json, bytes"
    )
    with pytest.raises(CodecError, match="unknown type 'varchar'"):
        decode_value(b"x", "varchar")


@pytest.mark.parametrize("type_name", TYPE_NAMES)
def test_null_encodes_to_no_cell_and_back(type_name: str) -> None:
    assert encode_value(None, type_name) is None
    assert decode_value(None, type_name) is None


# ---------------------------------------------------------------- exact encodings


@pytest.mark.parametrize(
    ("value", "type_name", "expected"),
    [
        ("héllo", "string", "héllo".encode()),
        ("", "string", b""),
        (-2147483648, "int", b"-2147483648"),
        (2**63 - 1, "long", b"9223372036854775807"),
        (Decimal("42"), "long", b"42"),
        (0.1, "double", b"0.1"),
        (3, "double", b"3.0"),
        (1e16, "double", b"1e+16"),
        (float("-inf"), "double", b"-inf"),
        (True, "boolean", b"true"),
        (False, "boolean", b"false"),
        (Decimal("12.30"), "decimal", b"12.30"),
        (Decimal("1E-7"), "decimal", b"0.0000001"),
        (Decimal("1.5E+3"), "decimal", b"1500"),
        (7, "decimal", b"7"),
        ("-0.50", "decimal", b"-0.50"),
        (date(2024, 5, 1), "date", b"2024-05-01"),
        ("2024-05-01", "date", b"2024-05-01"),
        (datetime(2024, 5, 1, 23, 30, tzinfo=timezone(timedelta(hours=-2))), "date", b"2024-05-02"),
        (datetime(2024, 5, 1, 12, 0, 0, 123456), "timestamp", b"2024-05-01T12:00:00.123456+00:00"),
        (datetime(2024, 5, 1, 12, tzinfo=UTC), "timestamp", b"2024-05-01T12:00:00.000000+00:00"),
        (
            datetime(2024, 5, 1, 14, tzinfo=timezone(timedelta(hours=2))),
            "timestamp",
            b"2024-05-01T12:00:00.000000+00:00",
        ),
        ("2024-05-01T12:00:00Z", "timestamp", b"2024-05-01T12:00:00.000000+00:00"),
        (1714564800123, "timestamp", b"2024-05-01T12:00:00.123000+00:00"),
        (date(2024, 5, 1), "timestamp", b"2024-05-01T00:00:00.000000+00:00"),
        ({"b": [1, 2.5], "a": None}, "json", b'{"a":null,"b":[1,2.5]}'),
        (
            {"amount": Decimal("12.30"), "day": date(2024, 5, 1), "at": datetime(2024, 5, 1, 12)},
            "json",
            b'{"amount":"12.30","at":"2024-05-01T12:00:00.000000+00:00","day":"2024-05-01"}',
        ),
        (["é", (1, 2)], "json", '["é",[1,2]]'.encode()),
        (b"\x00\xff", "bytes", b"\x00\xff"),
        (bytearray(b"ab"), "bytes", b"ab"),
        (memoryview(b"cd"), "bytes", b"cd"),
    ],
)
def test_encode_exact_bytes(value: Any, type_name: str, expected: bytes) -> None:
    assert encode_value(value, type_name) == expected


@pytest.mark.parametrize(
    ("data", "type_name", "expected"),
    [
        (b"1.10", "decimal", Decimal("1.10")),
        (b"-7", "int", -7),
        (b"nan", "double", None),  # checked separately below
        (b"TRUE", "boolean", True),
        (b"2024-05-01", "date", date(2024, 5, 1)),
        (
            b"2024-05-01T12:00:00.123456+00:00",
            "timestamp",
            datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC),
        ),
        (b"2024-05-01T14:00:00+02:00", "timestamp", datetime(2024, 5, 1, 12, tzinfo=UTC)),
        (b"2024-05-01T12:00:00", "timestamp", datetime(2024, 5, 1, 12, tzinfo=UTC)),
        (b'{"a":[1,{"b":null}]}', "json", {"a": [1, {"b": None}]}),
        (b"\x00\x01", "bytes", b"\x00\x01"),
    ],
)
def test_decode_exact_values(data: bytes, type_name: str, expected: Any) -> None:
    decoded = decode_value(data, type_name)
    if expected is None:
        assert decoded != decoded  # NaN
    else:
        assert decoded == expected
        assert type(decoded) is type(expected)
    if isinstance(decoded, datetime):
        assert decoded.tzinfo is UTC


def test_decimal_keeps_scale_through_round_trip() -> None:
    encoded = encode_value(Decimal("1.10"), "decimal")
    assert encoded == b"1.10"
    decoded = decode_value(encoded, "decimal")
    assert decoded == Decimal("1.10")
    assert str(decoded) == "1.10"
    assert decoded.as_tuple().exponent == -2


# ---------------------------------------------------------------- round-trip properties

_utc_datetimes = st.datetimes(timezones=st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30))]))
_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4),
    max_leaves=12,
)

_ROUND_TRIP = [
    ("string", st.text()),
    ("int", st.integers(-(2**31), 2**31 - 1)),
    ("long", st.integers(-(2**63), 2**63 - 1)),
    ("double", st.floats(allow_nan=False)),
    ("boolean", st.booleans()),
    ("decimal", st.decimals(allow_nan=False, allow_infinity=False)),
    ("date", st.dates()),
    ("json", _json_values.filter(lambda value: value is not None)),  # top-level null: no cell
    ("bytes", st.binary()),
]


@pytest.mark.parametrize(("type_name", "strategy"), _ROUND_TRIP, ids=[name for name, _ in _ROUND_TRIP])
def test_round_trip_is_exact(type_name: str, strategy: st.SearchStrategy[Any]) -> None:
    @PROPS
    @given(strategy)
    def check(value: Any) -> None:
        encoded = encode_value(value, type_name)
        assert isinstance(encoded, bytes)
        decoded = decode_value(encoded, type_name)
        assert decoded == value
        assert type(decoded) is type(value)
        if type_name == "decimal":
            assert encoded == format(value, "f").encode()  # plain notation, never an exponent
            assert b"E" not in encoded and b"e" not in encoded
            if value.as_tuple().exponent <= 0:  # scale is kept exactly (1.10 stays 1.10)
                assert decoded.as_tuple() == value.as_tuple()
        if type_name == "double":
            assert str(decoded) == str(value)  # keeps -0.0 vs 0.0

    check()


@PROPS
@given(_utc_datetimes)
def test_timestamp_round_trip_is_utc_with_microseconds(value: datetime) -> None:
    encoded = encode_value(value, "timestamp")
    assert encoded is not None
    assert encoded.endswith(b"+00:00")
    assert len(encoded) == len(b"2024-05-01T12:00:00.123456+00:00")
    decoded = decode_value(encoded, "timestamp")
    assert decoded == value
    assert decoded.tzinfo is UTC


@PROPS
@given(st.datetimes())
def test_naive_timestamp_is_treated_as_utc(value: datetime) -> None:
    assert decode_value(encode_value(value, "timestamp"), "timestamp") == value.replace(tzinfo=UTC)


def test_epoch_millis_coercion() -> None:
    assert to_timestamp(0) == datetime(1970, 1, 1, tzinfo=UTC)
    assert to_timestamp(-1) == datetime(1969, 12, 31, 23, 59, 59, 999000, tzinfo=UTC)
    assert to_timestamp(1.5) == datetime(1970, 1, 1, 0, 0, 0, 1500, tzinfo=UTC)
    assert to_timestamp(Decimal("2.0005")) == datetime(1970, 1, 1, 0, 0, 0, 2000, tzinfo=UTC)


# ---------------------------------------------------------------- errors


def test_encode_error_names_type_and_value_exactly() -> None:
    with pytest.raises(CodecError) as info:
        encode_value("abc", "long")
    assert str(info.value) == "cannot encode 'abc' as long: expected an integer (int or integral Decimal)"
    assert isinstance(info.value, ValueError)


def test_int_out_of_range_message() -> None:
    with pytest.raises(CodecError) as info:
        encode_value(2**31, "int")
    assert str(info.value) == "cannot encode 2147483648 as int: out of range for a 32-bit signed integer"


def test_decimal_float_refused_message() -> None:
    with pytest.raises(CodecError) as info:
        encode_value(0.1, "decimal")
    assert str(info.value) == "cannot encode 0.1 as decimal: floats are inexact; pass a Decimal or a numeric string"


def test_decode_error_names_type_and_bytes_exactly() -> None:
    with pytest.raises(CodecError) as info:
        decode_value(b"12x", "long")
    assert str(info.value).startswith("cannot decode b'12x' as long: ")


@pytest.mark.parametrize(
    ("value", "type_name", "fragment"),
    [
        (1, "string", "cannot encode 1 as string: expected a str"),
        ("\ud800", "string", "not encodable as UTF-8"),
        (True, "long", "cannot encode True as long: expected an integer, got a boolean"),
        (1.0, "long", "cannot encode 1.0 as long: expected an integer"),
        (Decimal("1.5"), "long", "cannot encode Decimal('1.5') as long: not an integral number"),
        (-(2**63) - 1, "long", "out of range for a 64-bit signed integer"),
        ("1.5", "double", "cannot encode '1.5' as double: expected a number"),
        (True, "double", "expected a number"),
        (10**400, "double", "out of range for a double"),
        (1, "boolean", "cannot encode 1 as boolean: expected a bool"),
        ("abc", "decimal", "cannot encode 'abc' as decimal: not a decimal number"),
        (Decimal("NaN"), "decimal", "NaN and infinity are not allowed"),
        ([], "decimal", "expected a Decimal, an int or a numeric string"),
        ("May 1st", "date", "cannot encode 'May 1st' as date: not an ISO 'YYYY-MM-DD' date"),
        (20240501, "date", "expected a date or an ISO 'YYYY-MM-DD' string"),
        ("yesterday", "timestamp", "cannot encode 'yesterday' as timestamp: not an ISO-8601 timestamp"),
        (float("nan"), "timestamp", "NaN and infinity are not allowed"),
        (True, "timestamp", "expected a datetime, an ISO-8601 string or epoch milliseconds"),
        (10**20, "timestamp", "epoch milliseconds out of the supported range"),
        ({"a": {1, 2}}, "json", "cannot encode {'a': {1, 2}} as json: set is not JSON-serializable"),
        ([float("nan")], "json", "Out of range float values are not JSON compliant"),
        ({"a": b"x"}, "json", "bytes is not JSON-serializable"),
        ("abc", "bytes", "cannot encode 'abc' as bytes: expected bytes, bytearray or memoryview"),
    ],
)
def test_encode_errors(value: Any, type_name: str, fragment: str) -> None:
    with pytest.raises(CodecError) as info:
        encode_value(value, type_name)
    assert fragment in str(info.value)


@pytest.mark.parametrize(
    ("data", "type_name", "fragment"),
    [
        (b"\xff", "string", "cannot decode b'\\xff' as string"),
        (b"2147483648", "int", "out of range for a 32-bit signed integer"),
        (b"yes", "boolean", "expected 'true' or 'false'"),
        (b"NaN", "decimal", "NaN and infinity are not allowed"),
        (b"1,5", "decimal", "cannot decode b'1,5' as decimal"),
        (b"2024-13-01", "date", "cannot decode b'2024-13-01' as date"),
        (b"noon", "timestamp", "cannot decode b'noon' as timestamp"),
        (b"{", "json", "cannot decode b'{' as json"),
    ],
)
def test_decode_errors(data: bytes, type_name: str, fragment: str) -> None:
    with pytest.raises(CodecError) as info:
        decode_value(data, type_name)
    assert fragment in str(info.value)


def test_long_values_are_shortened_in_messages() -> None:
    with pytest.raises(CodecError) as info:
        encode_value("x" * 500, "long")
    message = str(info.value)
    assert message.startswith("cannot encode 'xxxx")
    assert "..." in message
    assert len(message) < 200


# ---------------------------------------------------------------- inference and string form


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, "boolean"),
        (3, "long"),
        (1.5, "double"),
        (Decimal("1"), "decimal"),
        (datetime(2024, 5, 1), "timestamp"),
        (date(2024, 5, 1), "date"),
        ("x", "string"),
        (b"x", "bytes"),
        ([1], "json"),
        ((1,), "json"),
        ({"a": 1}, "json"),
    ],
)
def test_infer_type(value: Any, expected: str) -> None:
    assert infer_type(value) == expected


def test_infer_type_errors() -> None:
    with pytest.raises(CodecError) as info:
        infer_type(None)
    assert str(info.value) == "cannot infer a type for None (NoneType)"
    with pytest.raises(CodecError, match=r"cannot infer a type for .* \(set\)"):
        infer_type({1})


def test_string_form_is_type_independent_for_ids() -> None:
    assert string_form(42) == string_form("42") == b"42"
    assert string_form(Decimal("1.50")) == b"1.50"
    assert string_form(True) == b"true"
    assert string_form(date(2024, 5, 1)) == b"2024-05-01"
