"""Unit and property tests for row-key templates."""

from __future__ import annotations

import hashlib
import pickle
import re
import zlib
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from headwater.sinks.hbase.rowkey import RowKeyError, RowKeyTemplate, salt_bucket, salt_prefix

PROPS = settings(max_examples=150, deadline=None)
ORDERS = "{salt(customer_id, 8)}|{customer_id}|{reverse_ts(event_time)}|{order_id:long}"
HELP = (
    "valid encodings: string, string(N), int, long, double, date, timestamp; "
    "valid functions: salt(field, N), hash(field, N), reverse_ts(field)"
)

# Strategies ----------------------------------------------------------------------------------------
_no_nul = st.characters(codec="utf-8", min_codepoint=1)
_utc = st.datetimes(timezones=st.just(UTC))
_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "int": st.integers(-(2**31), 2**31 - 1),
    "long": st.integers(-(2**63), 2**63 - 1),
    "double": st.floats(allow_nan=False),
    "date": st.dates(),
    "timestamp": _utc,
    "string(12)": st.text(alphabet=_no_nul, max_size=3),  # at most 12 bytes in UTF-8
}


def _one(encoding: str) -> RowKeyTemplate:
    return RowKeyTemplate.parse(f"{{v:{encoding}}}")


# Parsing -------------------------------------------------------------------------------------------


def test_parse_fields_and_salt() -> None:
    template = RowKeyTemplate.parse(ORDERS)
    assert template.fields == ["customer_id", "event_time", "order_id"]
    assert template.salt_buckets == 8
    assert RowKeyTemplate.parse("{a}#{b:int}").salt_buckets is None
    assert RowKeyTemplate.parse("u#{ a : string( 4 ) }").fields == ["a"]


def test_literal_braces_and_parts_widths() -> None:
    template = RowKeyTemplate.parse("{{x}}{a:int}")
    assert template.encode({"a": 0}) == b"{x}\x80\x00\x00\x00"
    assert template.decode(b"{x}\x80\x00\x00\x07") == {"a": 7}


def test_template_is_picklable_and_comparable() -> None:
    template = RowKeyTemplate.parse(ORDERS)
    assert pickle.loads(pickle.dumps(template)) == template


def test_unknown_encoding_message_is_exact() -> None:
    with pytest.raises(RowKeyError) as info:
        RowKeyTemplate.parse("{a}|{b:float}")
    assert str(info.value) == (
        "invalid row-key template '{a}|{b:float}': unknown encoding 'float' in part '{b:float}'; " + HELP
    )
    assert isinstance(info.value, ValueError)


def test_unknown_function_message_is_exact() -> None:
    with pytest.raises(RowKeyError) as info:
        RowKeyTemplate.parse("{bucket(a, 4)}|{a}")
    assert str(info.value) == (
        "invalid row-key template '{bucket(a, 4)}|{a}': unknown function 'bucket' in part '{bucket(a, 4)}'; " + HELP
    )


def test_salt_bucket_range_message_is_exact() -> None:
    with pytest.raises(RowKeyError) as info:
        RowKeyTemplate.parse("{salt(a, 300)}{a:int}")
    assert str(info.value) == (
        "invalid row-key template '{salt(a, 300)}{a:int}': salt() needs 2 <= N <= 256, got 300 "
        "in part '{salt(a, 300)}'; " + HELP
    )


@pytest.mark.parametrize(
    ("template", "fragment"),
    [
        ("", "it has no {field} part"),
        ("abc|", "it has no {field} part"),
        ("{a", "unclosed '{' in part '{a'"),
        ("a}", "unmatched '}' in part 'a}'"),
        ("{}", "invalid field name '' in part '{}'"),
        ("{1a}", "invalid field name '1a'"),
        ("{a-b}", "invalid field name 'a-b'"),
        ("{a:string(0)}", "string(N) needs N >= 1"),
        ("{a:salt}", "unknown encoding 'salt'"),
        ("{salt(a, 1)}{a:int}", "salt() needs 2 <= N <= 256, got 1"),
        ("{salt(a)}{a:int}", "salt() takes 2 argument(s), got 1"),
        ("{salt(a, x)}{a:int}", "salt() needs an integer N, got 'x'"),
        ("{hash(a, 17)}", "hash() needs 1 <= N <= 16, got 17"),
        ("{hash(a, 0)}", "hash() needs 1 <= N <= 16, got 0"),
        ("{reverse_ts(a, b)}", "reverse_ts() takes 1 argument(s), got 2"),
        ("{reverse_ts(9)}", "invalid field name '9'"),
        ("{a}{b:int}", "a variable-length string must be the last part or be followed by a literal"),
        ("{a:string}{b}", "in part '{a:string}'"),
    ],
)
def test_parse_errors(template: str, fragment: str) -> None:
    with pytest.raises(RowKeyError) as info:
        RowKeyTemplate.parse(template)
    message = str(info.value)
    assert message.startswith(f"invalid row-key template {template!r}: ")
    assert fragment in message
    assert message.endswith(HELP)


# Exact encodings -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("encoding", "value", "expected"),
    [
        ("int", 0, b"\x80\x00\x00\x00"),
        ("int", -1, b"\x7f\xff\xff\xff"),
        ("int", Decimal("5"), b"\x80\x00\x00\x05"),
        ("long", 1, b"\x80\x00\x00\x00\x00\x00\x00\x01"),
        ("long", -(2**63), b"\x00" * 8),
        ("double", 1.0, b"\xbf\xf0\x00\x00\x00\x00\x00\x00"),
        ("double", -1.0, b"\x40\x0f\xff\xff\xff\xff\xff\xff"),
        ("date", date(1970, 1, 2), b"\x80\x00\x00\x01"),
        ("date", "1969-12-31", b"\x7f\xff\xff\xff"),
        ("timestamp", datetime(1970, 1, 1, 0, 0, 0, 1), b"\x80\x00\x00\x00\x00\x00\x00\x01"),
        ("timestamp", "1970-01-01T00:00:00.000002Z", b"\x80\x00\x00\x00\x00\x00\x00\x02"),
        ("timestamp", 1, b"\x80\x00\x00\x00\x00\x00\x03\xe8"),  # epoch millis
        ("string(4)", "ab", b"ab\x00\x00"),
        ("string(4)", "é", b"\xc3\xa9\x00\x00"),
        ("string", 42, b"42"),
    ],
)
def test_exact_part_bytes(encoding: str, value: Any, expected: bytes) -> None:
    assert _one(encoding).encode({"v": value}) == expected


def test_salt_hash_and_reverse_ts_bytes() -> None:
    assert RowKeyTemplate.parse("{salt(c, 16)}").encode({"c": "cust-1"}) == b"%02x" % (zlib.crc32(b"cust-1") % 16)
    assert RowKeyTemplate.parse("{hash(c, 4)}").encode({"c": "cust-1"}) == hashlib.md5(b"cust-1").digest()[:4]
    ts = datetime(2024, 5, 1, 12, 0, 0, 123999, tzinfo=UTC)
    millis = 1714564800123
    assert RowKeyTemplate.parse("{reverse_ts(t)}").encode({"t": ts}) == (2**63 - 1 - millis).to_bytes(8, "big")
    assert salt_prefix(0) == b"00" and salt_prefix(255) == b"ff"
    with pytest.raises(RowKeyError, match=r"salt bucket 256 out of range \[0, 256\)"):
        salt_prefix(256)


def test_full_template_encode_and_decode() -> None:
    template = RowKeyTemplate.parse(ORDERS)
    record = {"customer_id": "c-17", "event_time": "2024-05-01T12:00:00.5Z", "order_id": 99, "extra": 1}
    key = template.encode(record)
    salt = b"%02x" % (zlib.crc32(b"c-17") % 8)
    assert key == salt + b"|c-17|" + (2**63 - 1 - 1714564800500).to_bytes(8, "big") + b"|" + (
        (99 + 2**63).to_bytes(8, "big")
    )
    assert template.decode(key) == {
        "customer_id": "c-17",
        "event_time": datetime(2024, 5, 1, 12, 0, 0, 500000, tzinfo=UTC),
        "order_id": 99,
    }


# Encode errors -------------------------------------------------------------------------------------


def test_missing_field_message_is_exact() -> None:
    template = RowKeyTemplate.parse("{customer_id}|{order_id:long}")
    for record in ({"customer_id": "c1"}, {"customer_id": "c1", "order_id": None}):
        with pytest.raises(RowKeyError) as info:
            template.encode(record)
        assert str(info.value) == (
            "row-key field 'order_id' is missing or null (template '{customer_id}|{order_id:long}')"
        )


@pytest.mark.parametrize(
    ("template", "value", "fragment"),
    [
        ("{v:long}", "abc", "row-key field 'v': cannot encode 'abc' as long: expected an integer"),
        ("{v:int}", 2**31, "row-key field 'v': cannot encode 2147483648 as int: out of range"),
        ("{v:long}", Decimal("1.5"), "not an integral number"),
        ("{v:double}", float("nan"), "row-key field 'v': NaN cannot be used in a row key"),
        ("{v:date}", "soon", "row-key field 'v': cannot encode 'soon' as date"),
        ("{v:timestamp}", [], "row-key field 'v': cannot encode [] as timestamp"),
        ("{v:string(2)}", "abc", "row-key field 'v': value 'abc' is 3 bytes in UTF-8, longer than string(2)"),
        ("{v:string(4)}", "a\x00", "row-key field 'v': value 'a\\x00' contains a NUL character"),
        ("{v}|{w}", "a|b", "row-key field 'v': value 'a|b' contains the separator '|' that ends it"),
        ("{v}||{w}", "a|", "contains the separator '||' that ends it"),
        ("{v}", b"raw", "row-key field 'v': cannot encode b'raw' as string"),
    ],
)
def test_encode_errors(template: str, value: Any, fragment: str) -> None:
    with pytest.raises(RowKeyError) as info:
        RowKeyTemplate.parse(template).encode({"v": value, "w": "x"})
    assert fragment in str(info.value)


# Decode --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "key", "fragment"),
    [
        ("{a}|{b:int}", b"abc", "separator '|' not found after offset 0"),
        ("{a:int}|{b}", b"\x80\x00", "too short for part '{a:int}' at offset 0"),
        ("{a:int}|{b}", b"\x80\x00\x00\x00#x", "expected '|' at offset 4"),
        ("{a:int}", b"\x80\x00\x00\x00!", "1 unexpected trailing byte(s)"),
        ("{salt(a, 8)}|{a}", b"09|x", "invalid salt b'09' at offset 0"),
        ("{salt(a, 8)}|{a}", b"zz|x", "invalid salt b'zz' at offset 0"),
        ("{a}", b"\xff", "cannot decode '{a}'"),
        ("{a:date}", b"\xff\xff\xff\xff", "cannot decode '{a:date}'"),
    ],
)
def test_decode_errors(template: str, key: bytes, fragment: str) -> None:
    with pytest.raises(RowKeyError) as info:
        RowKeyTemplate.parse(template).decode(key)
    assert str(info.value).startswith(f"row key {key!r} does not match template {template!r}: ")
    assert fragment in str(info.value)


def test_decode_skips_hash_and_last_variable_part_runs_to_end() -> None:
    template = RowKeyTemplate.parse("{hash(a, 3)}#{a}#{note}")
    key = template.encode({"a": "x", "note": "free # text"})
    assert key[3:] == b"#x#free # text"
    assert template.decode(key) == {"a": "x", "note": "free # text"}


# Prefix --------------------------------------------------------------------------------------------


def test_prefix_includes_salt_and_trailing_separator() -> None:
    template = RowKeyTemplate.parse(ORDERS)
    salt = b"%02x" % (zlib.crc32(b"c1") % 8)
    assert template.prefix({"customer_id": "c1"}) == salt + b"|c1|"
    ts = datetime(2024, 5, 1, tzinfo=UTC)
    full = template.encode({"customer_id": "c1", "event_time": ts, "order_id": 5})
    assert template.prefix({"customer_id": "c1", "event_time": ts}) == full[:-8]
    assert template.prefix({"customer_id": "c1", "event_time": ts, "order_id": 5}) == full
    # stops at the first missing field even if later ones are given
    assert template.prefix({"customer_id": "c1", "order_id": 5}) == salt + b"|c1|"


def test_prefix_separates_c1_from_c10() -> None:
    template = RowKeyTemplate.parse("{customer_id}|{order_id:long}")
    prefix = template.prefix({"customer_id": "c1"})
    assert prefix == b"c1|"
    assert template.encode({"customer_id": "c1", "order_id": 3}).startswith(prefix)
    assert not template.encode({"customer_id": "c10", "order_id": 3}).startswith(prefix)


def test_prefix_errors() -> None:
    template = RowKeyTemplate.parse(ORDERS)
    with pytest.raises(RowKeyError) as info:
        template.prefix({"order_id": 1})
    assert str(info.value) == (
        f"cannot build a row-key prefix for template {ORDERS!r}: "
        "the first part '{salt(customer_id, 8)}' needs field 'customer_id'"
    )
    with pytest.raises(RowKeyError, match=re.escape("the first part '{a}' needs field 'a'")):
        RowKeyTemplate.parse("t#{a}").prefix({})
    with pytest.raises(RowKeyError, match="contains the separator"):
        template.prefix({"customer_id": "c|1"})


# Properties ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", list(_VALUES))
def test_round_trip_every_invertible_part(encoding: str) -> None:
    template = _one(encoding)

    @PROPS
    @given(_VALUES[encoding])
    def check(value: Any) -> None:
        decoded = template.decode(template.encode({"v": value}))["v"]
        assert decoded == value
        assert type(decoded) is type(value)
        if encoding == "double":
            assert str(decoded) == str(value)  # -0.0 stays -0.0

    check()


@pytest.mark.parametrize("encoding", list(_VALUES))
def test_byte_order_equals_value_order(encoding: str) -> None:
    template = _one(encoding)

    @PROPS
    @given(_VALUES[encoding], _VALUES[encoding])
    def check(a: Any, b: Any) -> None:
        key_a, key_b = template.encode({"v": a}), template.encode({"v": b})
        assert len(key_a) == len(key_b)  # fixed width
        if a < b:
            assert key_a < key_b
        elif a > b:
            assert key_a > key_b
        elif encoding != "double":  # 0.0 == -0.0 but their keys differ (-0.0 first)
            assert key_a == key_b

    check()


@PROPS
@given(st.text(alphabet=st.characters(codec="utf-8", min_codepoint=1), max_size=20))
def test_variable_string_round_trip(value: str) -> None:
    template = RowKeyTemplate.parse("{v}")
    assert template.decode(template.encode({"v": value})) == {"v": value}


@PROPS
@given(_utc, _utc)
def test_reverse_ts_sorts_newest_first_at_millisecond_precision(a: datetime, b: datetime) -> None:
    template = RowKeyTemplate.parse("{reverse_ts(t)}")
    key_a, key_b = template.encode({"t": a}), template.encode({"t": b})
    millis_a, millis_b = (
        (a - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1),
        (b - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1),
    )
    assert (key_a < key_b) == (millis_a > millis_b)
    assert (key_a == key_b) == (millis_a == millis_b)
    decoded = template.decode(key_a)["t"]
    assert decoded == a - timedelta(microseconds=a.microsecond % 1000)
    assert decoded.tzinfo is UTC


@PROPS
@given(st.one_of(st.text(), st.integers(), st.dates()), st.integers(2, 256))
def test_salt_is_stable_and_in_range(value: Any, buckets: int) -> None:
    first = salt_bucket(value, buckets)
    assert 0 <= first < buckets
    assert salt_bucket(value, buckets) == first
    assert first == zlib.crc32(str(value).encode()) % buckets  # str form of text, ints and dates
    key = RowKeyTemplate.parse(f"{{salt(v, {buckets})}}").encode({"v": value})
    assert key == b"%02x" % first
    assert int(key, 16) < buckets


def test_salt_known_values_do_not_depend_on_python_hash() -> None:
    assert [salt_bucket(f"customer-{i}", 8) for i in range(8)] == [
        zlib.crc32(f"customer-{i}".encode()) % 8 for i in range(8)
    ]
    assert salt_bucket("42", 8) == salt_bucket(42, 8)
    assert salt_bucket("customer-1", 8) == 5


_SEP_FREE = st.text(alphabet=st.characters(codec="utf-8", min_codepoint=1, exclude_characters="|#"))
MIXED = (
    "{salt(customer_id, 16)}|{customer_id}|{reverse_ts(event_time)}|{order_id:long}#{region:string(8)}"
    "{qty:int}{price:double}{day:date}{at:timestamp}{hash(order_id, 2)}|{note}"
)


@PROPS
@given(
    st.fixed_dictionaries(
        {
            "customer_id": _SEP_FREE,
            "event_time": st.datetimes(timezones=st.sampled_from([UTC, timezone(timedelta(hours=-7))])),
            "order_id": _VALUES["long"],
            "region": st.text(alphabet=_no_nul, max_size=2),
            "qty": _VALUES["int"],
            "price": _VALUES["double"],
            "day": _VALUES["date"],
            "at": st.datetimes(),  # naive: treated as UTC
            "note": st.text(),
        }
    )
)
def test_mixed_template_round_trips_random_records(record: dict[str, Any]) -> None:
    template = RowKeyTemplate.parse(MIXED)
    key = template.encode(record)
    decoded = template.decode(key)
    event_time = record["event_time"].astimezone(UTC)
    assert decoded == {
        **record,
        "event_time": event_time - timedelta(microseconds=event_time.microsecond % 1000),
        "at": record["at"].replace(tzinfo=UTC),
    }
    assert key.startswith(template.prefix({"customer_id": record["customer_id"]}))
    assert template.decode(key) == decoded  # deterministic
