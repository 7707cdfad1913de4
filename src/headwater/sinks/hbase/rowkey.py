"""Declarative HBase row-key templates, parsed once and used to encode, decode and build scan prefixes.

A template mixes literal text with ``{...}`` parts::

    {salt(customer_id, 8)}|{customer_id}|{reverse_ts(event_time)}|{order_id:long}

Parts:

* literal text outside braces (``|``, ``#``, ...); write ``{{`` / ``}}`` for literal braces;
* ``{field}`` or ``{field:string}``: the value's string form in UTF-8, variable length. It must be the
  last part or be followed by a literal separator, and a value that contains that separator is
  refused (it could not be decoded, and prefix scans would match the wrong rows). Byte order matches
  string order only while no value is a proper prefix of another *or* every byte in the values sorts
  above the separator: ``"a|"`` sorts after ``"ab|"`` because ``|`` (0x7C) > ``b``. Use
  ``string(N)`` when ordering across such values matters;
* ``{field:string(N)}``: UTF-8 right-padded with 0x00 to N bytes; longer values and NUL characters
  are refused. Byte order == string order;
* ``{field:int}`` / ``{field:long}``: 4 / 8 bytes big-endian with the sign bit flipped;
* ``{field:double}``: 8 bytes, IEEE-754 with the sign bit flipped for positives and all bits for
  negatives (NaN refused);
* ``{field:date}`` / ``{field:timestamp}``: days (4 bytes) / microseconds (8 bytes) since the epoch,
  sign bit flipped;
* ``{salt(field, N)}``: ``crc32(string form) % N`` as 2 lowercase hex digits (2 <= N <= 256);
* ``{hash(field, N)}``: the first N bytes (1..16) of ``md5(string form)``;
* ``{reverse_ts(field)}``: 8 bytes big-endian of ``Long.MAX_VALUE - epoch millis`` (newest first).

The numeric, date and timestamp parts are order preserving: byte order == value order. The string
form (see :func:`headwater.sinks.hbase.codec.string_form`) of ``42`` and ``"42"`` is the same, so salts
and hashes do not depend on whether an id arrived as a number or as text. Timestamps may be
``datetime`` (naive = UTC), ISO strings or epoch milliseconds; dates ``date`` or ISO strings.

Example:
    >>> t = RowKeyTemplate.parse("{customer_id}|{order_id:long}")
    >>> t.encode({"customer_id": "c1", "order_id": 1})
    b'c1|\\x80\\x00\\x00\\x00\\x00\\x00\\x00\\x01'
    >>> t.decode(t.encode({"customer_id": "c1", "order_id": 1}))
    {'customer_id': 'c1', 'order_id': 1}
"""

from __future__ import annotations

import hashlib
import itertools
import re
import struct
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from headwater.sinks.hbase.codec import (
    EPOCH,
    CodecError,
    string_form,
    to_date,
    to_float,
    to_int,
    to_timestamp,
)

__all__ = ["RowKeyError", "RowKeyTemplate", "salt_bucket", "salt_prefix"]

_LONG_MAX = 2**63 - 1
_EPOCH_DATE = EPOCH.date()
_MICRO = timedelta(microseconds=1)
_FIELD = r"[A-Za-z_][A-Za-z0-9_]*"
_FIELD_RE = re.compile(rf"({_FIELD})(?:\s*:\s*(.*))?", re.DOTALL)
_CALL_RE = re.compile(r"(\w+)\s*\((.*)\)", re.DOTALL)
_FIXED_STRING_RE = re.compile(r"string\s*\(\s*(\d+)\s*\)")
_WIDTH = {"int": 4, "long": 8, "double": 8, "date": 4, "timestamp": 8, "salt": 2, "reverse_ts": 8}
_HELP = (
    "valid encodings: string, string(N), int, long, double, date, timestamp; "
    "valid functions: salt(field, N), hash(field, N), reverse_ts(field)"
)


class RowKeyError(ValueError):
    """A row-key template is invalid, or a record/key does not fit it. The message names the culprit."""


def salt_bucket(value: Any, buckets: int) -> int:
    """The salt bucket in ``[0, buckets)`` of a value: ``crc32(string form) % buckets``.

    Example:
        >>> salt_bucket("customer-1", 8) == salt_bucket("customer-1", 8)
        True
    """
    return zlib.crc32(string_form(value)) % buckets


def salt_prefix(bucket: int) -> bytes:
    """The key prefix of a salt bucket: 2 lowercase ASCII hex digits, so split points are printable.

    Example:
        >>> salt_prefix(10)
        b'0a'
    """
    if not 0 <= bucket < 256:
        raise RowKeyError(f"salt bucket {bucket} out of range [0, 256)")
    return b"%02x" % bucket


def _flip(number: int, bits: int) -> bytes:
    """Signed integer -> big-endian bytes with the sign bit flipped (byte order == numeric order)."""
    return (number + (1 << (bits - 1))).to_bytes(bits // 8, "big")


def _unflip(data: bytes) -> int:
    return int.from_bytes(data, "big") - (1 << (len(data) * 8 - 1))


@dataclass(frozen=True)
class _Part:
    """One parsed part. ``kind`` is 'literal', an encoding, or a function name."""

    kind: str
    source: str
    field: str = ""
    arg: int = 0  # string(N) width, salt buckets or hash bytes
    literal: bytes = b""

    @property
    def width(self) -> int | None:
        """Encoded width in bytes, ``None`` for variable-length parts."""
        if self.kind == "literal":
            return len(self.literal)
        if self.kind in ("fixed_string", "hash"):
            return self.arg
        return _WIDTH.get(self.kind)

    def encode(self, value: Any, separator: bytes) -> bytes:
        kind = self.kind
        if kind in ("int", "long"):
            return _flip(to_int(value, kind), 32 if kind == "int" else 64)
        if kind == "double":
            number = to_float(value)
            if number != number:
                raise RowKeyError(f"row-key field {self.field!r}: NaN cannot be used in a row key")
            bits = int.from_bytes(struct.pack(">d", number), "big")
            return (bits ^ (0xFFFFFFFFFFFFFFFF if bits >> 63 else 1 << 63)).to_bytes(8, "big")
        if kind == "date":
            return _flip((to_date(value) - _EPOCH_DATE).days, 32)
        if kind == "timestamp":
            return _flip((to_timestamp(value) - EPOCH) // _MICRO, 64)
        if kind == "reverse_ts":
            millis = (to_timestamp(value) - EPOCH) // _MICRO // 1000
            return ((_LONG_MAX - millis) % 2**64).to_bytes(8, "big")
        if kind == "salt":
            return salt_prefix(salt_bucket(value, self.arg))
        if kind == "hash":
            return hashlib.md5(string_form(value), usedforsecurity=False).digest()[: self.arg]
        if isinstance(value, bytes | bytearray | memoryview):
            raise CodecError(f"cannot encode {value!r} as string: expected a str or a scalar")
        data = string_form(value)
        if kind == "fixed_string":
            if len(data) > self.arg:
                raise RowKeyError(
                    f"row-key field {self.field!r}: value {value!r} is {len(data)} bytes in UTF-8, "
                    f"longer than string({self.arg})"
                )
            if b"\x00" in data:
                raise RowKeyError(f"row-key field {self.field!r}: value {value!r} contains a NUL character")
            return data.ljust(self.arg, b"\x00")
        if separator and (data + separator).find(separator) != len(data):
            raise RowKeyError(
                f"row-key field {self.field!r}: value {value!r} contains the separator "
                f"{separator.decode()!r} that ends it"
            )
        return data

    def decode(self, data: bytes) -> Any:
        kind = self.kind
        if kind == "string":
            return data.decode("utf-8")
        if kind == "fixed_string":
            return data.rstrip(b"\x00").decode("utf-8")
        if kind in ("int", "long"):
            return _unflip(data)
        if kind == "double":
            bits = int.from_bytes(data, "big")
            bits ^= 1 << 63 if bits >> 63 else 0xFFFFFFFFFFFFFFFF
            number: float = struct.unpack(">d", bits.to_bytes(8, "big"))[0]
            return number
        if kind == "date":
            return _EPOCH_DATE + timedelta(days=_unflip(data))
        if kind == "timestamp":
            return EPOCH + timedelta(microseconds=_unflip(data))
        # reverse_ts
        return EPOCH + timedelta(milliseconds=_LONG_MAX - int.from_bytes(data, "big"))


@dataclass(frozen=True)
class RowKeyTemplate:
    """A parsed row-key template. Immutable and picklable; build it with :meth:`parse`.

    Example:
        >>> t = RowKeyTemplate.parse("{salt(customer_id, 8)}|{customer_id}|{reverse_ts(event_time)}")
        >>> t.fields, t.salt_buckets
        (['customer_id', 'event_time'], 8)
    """

    template: str
    parts: tuple[_Part, ...]

    @classmethod
    def parse(cls, template: str) -> RowKeyTemplate:
        """Parse a template string.

        Raises:
            RowKeyError: quoting the template and the offending part, listing valid encodings.

        Example:
            >>> RowKeyTemplate.parse("{a}#{b:int}").fields
            ['a', 'b']
        """

        def fail(part: str, problem: str) -> RowKeyError:
            return RowKeyError(f"invalid row-key template {template!r}: {problem} in part {part!r}; {_HELP}")

        parts: list[_Part] = []
        text: list[str] = []

        def flush() -> None:
            if text:
                literal = "".join(text)
                parts.append(_Part("literal", literal, literal=literal.encode("utf-8")))
                text.clear()

        i = 0
        while i < len(template):
            char = template[i]
            if char in "{}" and template.startswith(char * 2, i):
                text.append(char)
                i += 2
            elif char == "{":
                end = template.find("}", i)
                if end < 0:
                    raise fail(template[i:], "unclosed '{'")
                flush()
                parts.append(cls._parse_part(template[i : end + 1], fail))
                i = end + 1
            elif char == "}":
                raise fail(template[: i + 1], "unmatched '}'")
            else:
                text.append(char)
                i += 1
        flush()
        if not any(part.kind != "literal" for part in parts):
            raise RowKeyError(f"invalid row-key template {template!r}: it has no {{field}} part; {_HELP}")
        for part, following in itertools.pairwise(parts):
            if part.kind == "string" and following.kind != "literal":
                raise fail(
                    part.source,
                    "a variable-length string must be the last part or be followed by a literal separator",
                )
        return cls(template, tuple(parts))

    @staticmethod
    def _parse_part(source: str, fail: Callable[[str, str], RowKeyError]) -> _Part:
        body = source[1:-1].strip()
        call = _CALL_RE.fullmatch(body)
        if call:
            name, args = call.group(1), [arg.strip() for arg in call.group(2).split(",")]
            arity = {"salt": 2, "hash": 2, "reverse_ts": 1}
            if name not in arity:
                raise fail(source, f"unknown function {name!r}")
            if len(args) != arity[name]:
                raise fail(source, f"{name}() takes {arity[name]} argument(s), got {len(args)}")
            if not re.fullmatch(_FIELD, args[0]):
                raise fail(source, f"invalid field name {args[0]!r}")
            if name == "reverse_ts":
                return _Part(name, source, args[0])
            if not args[1].isdigit():
                raise fail(source, f"{name}() needs an integer N, got {args[1]!r}")
            n, bounds = int(args[1]), (2, 256) if name == "salt" else (1, 16)
            if not bounds[0] <= n <= bounds[1]:
                raise fail(source, f"{name}() needs {bounds[0]} <= N <= {bounds[1]}, got {n}")
            return _Part(name, source, args[0], n)
        match = _FIELD_RE.fullmatch(body)
        if not match:
            raise fail(source, f"invalid field name {body!r}")
        field, encoding = match.group(1), (match.group(2) or "string").strip()
        fixed = _FIXED_STRING_RE.fullmatch(encoding)
        if fixed:
            if int(fixed.group(1)) < 1:
                raise fail(source, "string(N) needs N >= 1")
            return _Part("fixed_string", source, field, int(fixed.group(1)))
        if encoding not in ("string", *_WIDTH) or encoding in ("salt", "reverse_ts"):
            raise fail(source, f"unknown encoding {encoding!r}")
        return _Part(encoding, source, field)

    @property
    def fields(self) -> list[str]:
        """Field names used by the template, in order of first use, without duplicates."""
        return list(dict.fromkeys(part.field for part in self.parts if part.kind != "literal"))

    @property
    def salt_buckets(self) -> int | None:
        """Number of salt buckets of the first ``salt()`` part, ``None`` if the key is not salted."""
        return next((part.arg for part in self.parts if part.kind == "salt"), None)

    def _encode_part(self, index: int, value: Any) -> bytes:
        part = self.parts[index]
        following = self.parts[index + 1] if index + 1 < len(self.parts) else None
        separator = following.literal if following is not None else b""
        try:
            return part.encode(value, separator)
        except CodecError as exc:
            raise RowKeyError(f"row-key field {part.field!r}: {exc}") from None

    def _missing(self, part: _Part) -> RowKeyError:
        return RowKeyError(f"row-key field {part.field!r} is missing or null (template {self.template!r})")

    def encode(self, record: Mapping[str, Any]) -> bytes:
        """Build the row key of a record.

        Raises:
            RowKeyError: naming the field that is missing, null or does not fit its part.

        Example:
            >>> RowKeyTemplate.parse("{a}#{b:int}").encode({"a": "x", "b": -1})
            b'x#\\x7f\\xff\\xff\\xff'
        """
        out = bytearray()
        for index, part in enumerate(self.parts):
            if part.kind == "literal":
                out += part.literal
                continue
            value = record.get(part.field)
            if value is None:
                raise self._missing(part)
            out += self._encode_part(index, value)
        return bytes(out)

    def prefix(self, partial: Mapping[str, Any]) -> bytes:
        """Encode the leading parts whose fields are given, for a prefix scan.

        Stops at the first part whose field is missing or null; the literal separator after the
        last complete part is included so ``c1`` does not match ``c10``. A leading ``salt(field)``
        is included when its field is given.

        Raises:
            RowKeyError: if the first part cannot be computed, or a given value does not fit.

        Example:
            >>> RowKeyTemplate.parse("{customer_id}|{order_id:long}").prefix({"customer_id": "c1"})
            b'c1|'
        """
        out = bytearray()
        for index, part in enumerate(self.parts):
            if part.kind == "literal":
                out += part.literal
                continue
            value = partial.get(part.field)
            if value is None:
                if not any(p.kind != "literal" for p in self.parts[:index]):
                    raise RowKeyError(
                        f"cannot build a row-key prefix for template {self.template!r}: "
                        f"the first part {part.source!r} needs field {part.field!r}"
                    )
                break
            out += self._encode_part(index, value)
        return bytes(out)

    def decode(self, key: bytes) -> dict[str, Any]:
        """Recover field values from a row key; ``salt`` and ``hash`` parts are skipped.

        ``reverse_ts`` gives a UTC ``datetime`` at millisecond precision. When a field appears in
        several invertible parts, the last one wins.

        Raises:
            RowKeyError: if the key does not match the template.

        Example:
            >>> t = RowKeyTemplate.parse("{a}#{b:int}")
            >>> t.decode(b"x#\\x80\\x00\\x00\\x05")
            {'a': 'x', 'b': 5}
        """
        key = bytes(key)
        values: dict[str, Any] = {}
        pos = 0
        for index, part in enumerate(self.parts):
            width = part.width
            if width is None:  # variable-length string: up to the next literal, or to the end
                if index + 1 == len(self.parts):
                    end = len(key)
                else:
                    separator = self.parts[index + 1]
                    end = key.find(separator.literal, pos)
                    if end < 0:
                        raise self._bad_key(key, f"separator {separator.source!r} not found after offset {pos}")
            else:
                end = pos + width
                if end > len(key):
                    raise self._bad_key(key, f"too short for part {part.source!r} at offset {pos}")
            chunk = key[pos:end]
            if part.kind == "literal" and chunk != part.literal:
                raise self._bad_key(key, f"expected {part.source!r} at offset {pos}")
            if part.kind == "salt" and not (re.fullmatch(rb"[0-9a-f]{2}", chunk) and int(chunk, 16) < part.arg):
                raise self._bad_key(key, f"invalid salt {chunk!r} at offset {pos}")
            if part.kind not in ("literal", "salt", "hash"):
                try:
                    values[part.field] = part.decode(chunk)
                except (ValueError, OverflowError) as exc:
                    raise self._bad_key(key, f"cannot decode {part.source!r}: {exc}") from None
            pos = end
        if pos != len(key):
            raise self._bad_key(key, f"{len(key) - pos} unexpected trailing byte(s)")
        return values

    def _bad_key(self, key: bytes, problem: str) -> RowKeyError:
        return RowKeyError(f"row key {key!r} does not match template {self.template!r}: {problem}")
