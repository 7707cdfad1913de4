"""Value codecs for HBase cells, shared by the HBase sink (writes) and the query API (reads).

Every declared column type has one **human-readable** byte form, so that cells read well in the
HBase shell: strings are UTF-8, numbers are decimal text, booleans are ``true``/``false``, dates and
timestamps are ISO-8601 (timestamps always in UTC with microseconds), decimals keep their scale and
never use exponent notation, and ``json`` is compact JSON with sorted keys.

``decode_value`` inverts ``encode_value`` exactly for every type except ``json``, whose dates and
decimals come back as the strings they were written as. A null value encodes to ``None``: the sink
writes no cell, and a missing cell decodes back to ``None``.

The coercion helpers (:func:`to_int`, :func:`to_float`, :func:`to_decimal`, :func:`to_date`,
:func:`to_timestamp`) are also used by :mod:`headwater.sinks.hbase.rowkey`.

Example:
    >>> encode_value(Decimal("12.30"), "decimal")
    b'12.30'
    >>> decode_value(b"2024-05-01T12:00:00.123456+00:00", "timestamp")
    datetime.datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=datetime.timezone.utc)
"""

from __future__ import annotations

import json
import math
import operator
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_FLOOR, Decimal, InvalidOperation
from typing import Any

__all__ = [
    "CODECS",
    "EPOCH",
    "TYPE_NAMES",
    "Codec",
    "CodecError",
    "decode_value",
    "encode_value",
    "get_codec",
    "infer_type",
    "string_form",
    "to_date",
    "to_decimal",
    "to_float",
    "to_int",
    "to_timestamp",
]

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_INT_BITS = {"int": 32, "long": 64}
_MAX_REPR = 80


class CodecError(ValueError):
    """A value cannot be encoded as (or bytes decoded from) a declared type.

    The message names the type and the offending value, e.g. ``cannot encode 'abc' as long: ...``.
    """


def _show(value: Any) -> str:
    """``repr`` of a value, shortened so that error messages stay readable."""
    text = repr(value)
    return text if len(text) <= _MAX_REPR else text[: _MAX_REPR - 3] + "..."


def _cannot(value: Any, type_name: str, reason: str) -> CodecError:
    return CodecError(f"cannot encode {_show(value)} as {type_name}: {reason}")


def to_int(value: Any, type_name: str = "long") -> int:
    """Coerce ``value`` to an ``int`` that fits ``type_name`` (``int``: 32-bit, ``long``: 64-bit).

    Accepts ``int`` (not ``bool``), objects with ``__index__`` (e.g. numpy integers) and integral
    ``Decimal`` values.

    Example:
        >>> to_int(Decimal("7.0"), "int")
        7
    """
    bits = _INT_BITS.get(type_name, 64)
    if isinstance(value, bool):
        raise _cannot(value, type_name, "expected an integer, got a boolean")
    if isinstance(value, Decimal):
        if not value.is_finite() or value != value.to_integral_value():
            raise _cannot(value, type_name, "not an integral number")
        number = int(value)
    else:
        try:
            number = operator.index(value)
        except TypeError:
            raise _cannot(value, type_name, "expected an integer (int or integral Decimal)") from None
    if not -(2 ** (bits - 1)) <= number < 2 ** (bits - 1):
        raise _cannot(value, type_name, f"out of range for a {bits}-bit signed integer")
    return number


def to_float(value: Any, type_name: str = "double") -> float:
    """Coerce an ``int``, ``float`` or ``Decimal`` (not ``bool``) to ``float``.

    Example:
        >>> to_float(3)
        3.0
    """
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise _cannot(value, type_name, "expected a number (float, int or Decimal)")
    try:
        return float(value)
    except OverflowError:
        raise _cannot(value, type_name, "out of range for a double") from None


def to_decimal(value: Any, type_name: str = "decimal") -> Decimal:
    """Coerce a ``Decimal``, ``int`` or numeric string to a finite ``Decimal``; floats are refused.

    Example:
        >>> to_decimal("1.10")
        Decimal('1.10')
    """
    if isinstance(value, float):
        raise _cannot(value, type_name, "floats are inexact; pass a Decimal or a numeric string")
    if isinstance(value, bool) or not isinstance(value, Decimal | int | str):
        raise _cannot(value, type_name, "expected a Decimal, an int or a numeric string")
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise _cannot(value, type_name, "not a decimal number") from None
    if not number.is_finite():
        raise _cannot(value, type_name, "NaN and infinity are not allowed")
    return number


def to_timestamp(value: Any, type_name: str = "timestamp") -> datetime:
    """Coerce a value to a tz-aware UTC ``datetime``.

    Accepts ``datetime`` (naive means UTC), ``date`` (midnight UTC), ISO-8601 strings (``Z`` allowed)
    and epoch **milliseconds** as ``int``, ``float`` or ``Decimal``.

    Example:
        >>> to_timestamp(1714564800123)
        datetime.datetime(2024, 5, 1, 12, 0, 0, 123000, tzinfo=datetime.timezone.utc)
    """
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            raise _cannot(value, type_name, "not an ISO-8601 timestamp") from None
    if isinstance(value, datetime):
        try:
            return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        except OverflowError:  # e.g. 0001-01-01T00:00+05:00 is before the first representable instant
            raise _cannot(value, type_name, "outside the years 1-9999 in UTC") from None
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise _cannot(value, type_name, "expected a datetime, an ISO-8601 string or epoch milliseconds")
    if (isinstance(value, float) and not math.isfinite(value)) or (
        isinstance(value, Decimal) and not value.is_finite()
    ):
        raise _cannot(value, type_name, "NaN and infinity are not allowed")
    millis = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    micros = int((millis * 1000).to_integral_value(rounding=ROUND_FLOOR))
    try:
        return EPOCH + timedelta(microseconds=micros)
    except OverflowError:
        raise _cannot(value, type_name, "epoch milliseconds out of the supported range") from None


def to_date(value: Any, type_name: str = "date") -> date:
    """Coerce a ``date``, a ``datetime`` (its UTC day) or an ISO string to a ``date``.

    Example:
        >>> to_date("2024-05-01")
        datetime.date(2024, 5, 1)
    """
    if isinstance(value, datetime):
        return to_timestamp(value).date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            pass
        try:
            return to_timestamp(value).date()
        except CodecError:
            raise _cannot(value, type_name, "not an ISO 'YYYY-MM-DD' date") from None
    raise _cannot(value, type_name, "expected a date or an ISO 'YYYY-MM-DD' string")


def _encode_string(value: Any) -> bytes:
    if not isinstance(value, str):
        raise _cannot(value, "string", "expected a str")
    try:
        return value.encode("utf-8")
    except UnicodeEncodeError:
        raise _cannot(value, "string", "not encodable as UTF-8 (lone surrogate)") from None


def _encode_int(type_name: str) -> Callable[[Any], bytes]:
    return lambda value: str(to_int(value, type_name)).encode("ascii")


def _decode_int(type_name: str) -> Callable[[bytes], int]:
    def decode(data: bytes) -> int:
        bits = _INT_BITS[type_name]
        number = int(data.decode("ascii"))
        if not -(2 ** (bits - 1)) <= number < 2 ** (bits - 1):
            raise ValueError(f"out of range for a {bits}-bit signed integer")
        return number

    return decode


def _encode_double(value: Any) -> bytes:
    return repr(to_float(value)).encode("ascii")


def _encode_boolean(value: Any) -> bytes:
    if not isinstance(value, bool):
        raise _cannot(value, "boolean", "expected a bool")
    return b"true" if value else b"false"


def _decode_boolean(data: bytes) -> bool:
    text = data.decode("ascii").strip().lower()
    if text not in ("true", "false"):
        raise ValueError("expected 'true' or 'false'")
    return text == "true"


def _plain_decimal(number: Decimal) -> str:
    """``str(Decimal)`` without exponent notation: ``Decimal('1E-7')`` -> ``'0.0000001'``."""
    return format(number, "f")


def _decode_decimal(data: bytes) -> Decimal:
    number = Decimal(data.decode("ascii"))
    if not number.is_finite():
        raise ValueError("NaN and infinity are not allowed")
    return number


def _encode_timestamp(value: Any) -> bytes:
    return to_timestamp(value).isoformat(timespec="microseconds").encode("ascii")


def _decode_timestamp(data: bytes) -> datetime:
    return to_timestamp(data.decode("ascii"))


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return _plain_decimal(to_decimal(value, "json"))
    if isinstance(value, datetime):
        return _encode_timestamp(value).decode("ascii")
    if isinstance(value, date):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON-serializable")


def _encode_json(value: Any) -> bytes:
    try:
        text = json.dumps(
            value,
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
            allow_nan=False,
            default=_json_default,
        )
    except (TypeError, ValueError) as exc:
        raise _cannot(value, "json", str(exc)) from None
    return text.encode("utf-8")


def _encode_bytes(value: Any) -> bytes:
    if not isinstance(value, bytes | bytearray | memoryview):
        raise _cannot(value, "bytes", "expected bytes, bytearray or memoryview")
    return bytes(value)


@dataclass(frozen=True)
class Codec:
    """How one declared type is written to and read from a cell."""

    name: str
    encode: Callable[[Any], bytes]
    decode: Callable[[bytes], Any]


#: Every supported type, in one place. Keys are the names users write in YAML.
CODECS: dict[str, Codec] = {
    codec.name: codec
    for codec in (
        Codec("string", _encode_string, lambda data: data.decode("utf-8")),
        Codec("int", _encode_int("int"), _decode_int("int")),
        Codec("long", _encode_int("long"), _decode_int("long")),
        Codec("double", _encode_double, lambda data: float(data.decode("ascii"))),
        Codec("boolean", _encode_boolean, _decode_boolean),
        Codec("decimal", lambda v: _plain_decimal(to_decimal(v)).encode("ascii"), _decode_decimal),
        Codec("date", lambda v: to_date(v).isoformat().encode("ascii"), lambda d: date.fromisoformat(d.decode())),
        Codec("timestamp", _encode_timestamp, _decode_timestamp),
        Codec("json", _encode_json, lambda data: json.loads(data.decode("utf-8"))),
        Codec("bytes", _encode_bytes, bytes),
    )
}

TYPE_NAMES: tuple[str, ...] = tuple(CODECS)


def get_codec(type_name: str) -> Codec:
    """Return the codec registered under ``type_name``.

    Raises:
        CodecError: for an unknown type; the message lists the valid ones.

    Example:
        >>> get_codec("long").name
        'long'
    """
    try:
        return CODECS[type_name]
    except (KeyError, TypeError):
        raise CodecError(f"unknown type {type_name!r}; valid types: {', '.join(TYPE_NAMES)}") from None


def encode_value(value: Any, type_name: str) -> bytes | None:
    """Encode ``value`` as the cell bytes of ``type_name``; ``None`` for a null value (no cell).

    Raises:
        CodecError: if the type is unknown or the value does not fit it.

    Example:
        >>> encode_value(True, "boolean")
        b'true'
        >>> encode_value(None, "long") is None
        True
    """
    codec = get_codec(type_name)
    if value is None:
        return None
    try:
        return codec.encode(value)
    except CodecError:
        raise
    except (TypeError, ValueError, OverflowError) as exc:
        raise _cannot(value, type_name, str(exc)) from None


def decode_value(data: bytes | bytearray | memoryview | None, type_name: str) -> Any:
    """Decode cell bytes written by :func:`encode_value`; a missing cell (``None``) gives ``None``.

    Raises:
        CodecError: if the type is unknown or the bytes are not a valid encoding of it.

    Example:
        >>> decode_value(b"1.10", "decimal")
        Decimal('1.10')
    """
    codec = get_codec(type_name)
    if data is None:
        return None
    raw = bytes(data)
    try:
        return codec.decode(raw)
    except (TypeError, ValueError, ArithmeticError) as exc:
        raise CodecError(f"cannot decode {_show(raw)} as {type_name}: {exc}") from None


def infer_type(value: Any) -> str:
    """Return the type name a Python value would naturally be stored as.

    ``int`` values map to ``long`` (Python ints are not 32-bit); lists, tuples and dicts to ``json``.

    Raises:
        CodecError: for ``None`` or an unsupported Python type.

    Example:
        >>> infer_type(3), infer_type(1.5), infer_type({"a": 1})
        ('long', 'double', 'json')
    """
    checks: tuple[tuple[type | tuple[type, ...], str], ...] = (
        (bool, "boolean"),
        (int, "long"),
        (float, "double"),
        (Decimal, "decimal"),
        (datetime, "timestamp"),
        (date, "date"),
        (str, "string"),
        ((bytes, bytearray, memoryview), "bytes"),
        ((list, tuple, dict), "json"),
    )
    for python_type, type_name in checks:
        if isinstance(value, python_type):
            return type_name
    raise CodecError(f"cannot infer a type for {_show(value)} ({type(value).__name__})")


def string_form(value: Any) -> bytes:
    """Canonical bytes of a value, as used for salting and hashing row keys.

    It is the cell encoding of the value's inferred type, so ``42`` and ``"42"`` give ``b"42"``.

    Example:
        >>> string_form(42), string_form("c-1")
        (b'42', b'c-1')
    """
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value).encode("ascii")  # any size: a salt or hash does not care about 64 bits
    encoded = encode_value(value, infer_type(value))
    assert encoded is not None  # infer_type refuses None
    return encoded
