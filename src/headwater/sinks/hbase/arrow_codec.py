"""Column-wise fast paths of :mod:`headwater.sinks.hbase.codec` over Arrow arrays, for the sink's writer.

:func:`encode_column` gives, for a whole Arrow column, exactly the bytes that
:func:`~headwater.sinks.hbase.codec.encode_value` gives value by value (property-tested in
``tests/unit/test_arrow_codec.py``), but lets Arrow and numpy do the formatting where the Arrow type
allows it: integers, booleans, dates, decimals, strings and timestamps, and ``json`` through
:mod:`headwater.sinks.hbase.arrow_json`. ``double``, JSON it cannot reproduce exactly, and any column
whose Arrow type does not match its declared type go value by value through ``encode_value``.

Errors never abort a column: a value that cannot be encoded is reported by row index with the
codec's message, and the writer rejects that one record.

Example:
    >>> import pyarrow as pa
    >>> cells = encode_column(pa.array([1, None, 3], pa.int64()), "long")
    >>> cells.values, cells.errors
    ([b'1', None, b'3'], {})
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from headwater.sinks.hbase.arrow_json import json_column
from headwater.sinks.hbase.codec import EPOCH, CodecError, encode_value, to_int, to_timestamp

if TYPE_CHECKING:
    import pyarrow as pa

    from headwater.sinks.hbase.rowkey import RowKeyTemplate

__all__ = [
    "CONSTANT_TS", "EncodedColumn", "cell_timestamp", "encode_column", "encode_keys", "typed_plain", "version_millis",
]  # fmt: skip

_INT_RANGE = {"int": (-(2**31), 2**31 - 1), "long": (-(2**63), 2**63 - 1)}
CONSTANT_TS = 1  # cell timestamp when no `version` field is configured: deterministic, never the clock


def cell_timestamp(value: Any, type_name: str | None) -> int:
    """Milliseconds for HBase from the record's version value (one value; see :func:`version_millis`)."""
    if type_name is None:
        return CONSTANT_TS
    if value is None:
        raise CodecError("version field is null")
    if type_name == "timestamp":
        ms = (to_timestamp(value) - EPOCH) // timedelta(milliseconds=1)
    elif type_name == "date":
        d = value if isinstance(value, date) else date.fromisoformat(str(value))
        ms = (d - date(1970, 1, 1)).days * 86_400_000
    else:
        ms = to_int(value)
    if ms < 0:
        raise CodecError(f"version {ms} ms is before 1970: HBase cell timestamps cannot be negative")
    return ms


@dataclass
class EncodedColumn:
    """Cell bytes of one column (``None`` for a null: no cell) and the rows that failed, by index."""

    values: list[bytes | None]
    errors: dict[int, str] = field(default_factory=dict)


def _binary_list(array: pa.Array) -> list[bytes | None]:
    import pyarrow as pa

    target = pa.large_binary() if pa.types.is_large_string(array.type) else pa.binary()
    out: list[bytes | None] = array.cast(target).to_pylist()
    return out


def typed_plain(value: Any, arrow_type: pa.DataType) -> Any:
    """A Python value from Arrow as JSON wants it: maps (lists of pairs in Arrow) become dicts, led by
    the Arrow type, so an empty map is ``{}`` and not ``[]``."""
    import pyarrow as pa

    if value is None:
        return None
    if pa.types.is_map(arrow_type):
        return {str(k): typed_plain(v, arrow_type.item_type) for k, v in value}
    if pa.types.is_list(arrow_type) or pa.types.is_large_list(arrow_type) or pa.types.is_fixed_size_list(arrow_type):
        return [typed_plain(v, arrow_type.value_type) for v in value]
    if pa.types.is_struct(arrow_type):
        return {f.name: typed_plain(value.get(f.name), f.type) for f in arrow_type}
    return value


def _one_by_one(array: pa.Array, type_name: str) -> EncodedColumn:
    values: list[bytes | None] = []
    errors: dict[int, str] = {}
    for index, value in enumerate(array.to_pylist()):
        try:
            values.append(encode_value(typed_plain(value, array.type) if type_name == "json" else value, type_name))
        except CodecError as exc:
            values.append(None)
            errors[index] = str(exc)
    return EncodedColumn(values, errors)


def _timestamps(array: pa.Array) -> list[bytes | None]:
    """ISO-8601 in UTC with microseconds and ``+00:00``, as ``codec`` writes them."""
    import numpy as np
    import pyarrow as pa

    micros = array.cast(pa.timestamp("us", tz=array.type.tz)).cast(pa.int64())
    text = np.datetime_as_string(micros.fill_null(0).to_numpy().view("datetime64[us]"), unit="us").tolist()
    valid = micros.is_valid().to_pylist() if micros.null_count else None
    if valid is None:
        return [(t + "+00:00").encode("ascii") for t in text]
    return [(t + "+00:00").encode("ascii") if ok else None for t, ok in zip(text, valid, strict=True)]


def _years_ok(array: pa.Array) -> bool:
    """Arrow and numpy print years 1..9999 as ``datetime.isoformat`` does; outside that, go one by one."""
    import pyarrow.compute as pc

    if array.null_count == len(array):
        return True
    low, high = pc.min_max(pc.year(array)).values()
    return bool(low.as_py() >= 1 and high.as_py() <= 9999)


def encode_column(array: pa.Array | pa.ChunkedArray, type_name: str) -> EncodedColumn:
    """Encode a column as ``encode_value(value, type_name)`` would, value by value, but faster."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    typ = array.type
    if type_name == "string" and (pa.types.is_string(typ) or pa.types.is_large_string(typ)):
        return EncodedColumn(_binary_list(array))
    if type_name == "bytes" and (pa.types.is_binary(typ) or pa.types.is_large_binary(typ)):
        return EncodedColumn(array.to_pylist())
    if type_name == "boolean" and pa.types.is_boolean(typ):
        return EncodedColumn(_binary_list(array.cast(pa.string())))
    if type_name in _INT_RANGE and pa.types.is_integer(typ):
        low, high = _INT_RANGE[type_name]
        lo, hi = pc.min_max(array).values()
        if lo.is_valid and (lo.as_py() < low or hi.as_py() > high):
            return _one_by_one(array, type_name)  # names the offending values
        return EncodedColumn(_binary_list(array.cast(pa.string())))
    if type_name == "decimal" and pa.types.is_decimal(typ) and typ.scale >= 0:
        text = array.cast(pa.string())
        if pc.any(pc.match_substring(text, "E")).as_py():  # Arrow's exponent form; codec writes plain digits
            return _one_by_one(array, type_name)
        return EncodedColumn(_binary_list(text))
    if type_name == "date" and pa.types.is_date(typ) and _years_ok(array):
        return EncodedColumn(_binary_list(array.cast(pa.date32()).cast(pa.string())))
    if type_name == "timestamp" and pa.types.is_timestamp(typ) and _years_ok(array):
        return EncodedColumn(_timestamps(array))
    if type_name == "json" and (text := json_column(array)) is not None:
        return EncodedColumn(text)
    return _one_by_one(array, type_name)


def version_millis(array: pa.Array | pa.ChunkedArray, type_name: str) -> tuple[list[int | None], dict[int, str]]:
    """Cell timestamps (epoch milliseconds) from a record field, with errors by row index.

    Timestamps floor to the millisecond, dates are their midnight UTC, ints/longs are taken as
    milliseconds. A null or negative value is an error: the cell time must come from the record.
    """
    import pyarrow as pa

    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    typ = array.type
    raw: list[Any]
    if type_name == "timestamp" and pa.types.is_timestamp(typ):
        micros = array.cast(pa.timestamp("us", tz=typ.tz)).cast(pa.int64()).to_pylist()
        raw = [None if m is None else m // 1000 for m in micros]
    elif type_name == "date" and pa.types.is_date(typ):
        raw = [None if d is None else d * 86_400_000 for d in array.cast(pa.date32()).cast(pa.int32()).to_pylist()]
    elif type_name in ("int", "long") and pa.types.is_integer(typ):
        raw = array.to_pylist()
    else:
        out: list[int | None] = []
        errors: dict[int, str] = {}
        for index, value in enumerate(array.to_pylist()):
            try:
                out.append(cell_timestamp(value, type_name))
            except (CodecError, ValueError, TypeError) as exc:
                out.append(None)
                errors[index] = str(exc)
        return out, errors
    errors = {}
    for index, ms in enumerate(raw):
        if ms is None:
            errors[index] = "version field is null"
        elif ms < 0:
            errors[index] = f"version {ms} ms is before 1970: HBase cell timestamps cannot be negative"
            raw[index] = None
    return raw, errors


def encode_keys(template: RowKeyTemplate, batch: pa.RecordBatch) -> list[bytes] | None:
    """The row keys of a batch as ``template.encode`` gives them, or None to build them row by row.

    Covers literals, ``{field}`` over strings and integers, and ``{field:int|long}`` over integers,
    when no key field is null and no value contains its separator; any other part or case is left
    to ``template.encode``, which names the row and field that fail.
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    parts: list[pa.Array | pa.Scalar] = []
    for index, part in enumerate(template.parts):
        if part.kind == "literal":
            parts.append(pa.scalar(part.literal, pa.binary()))
            continue
        column = batch.column(part.field)
        typ = column.type
        if column.null_count:
            return None
        if part.kind == "string" and (pa.types.is_string(typ) or pa.types.is_integer(typ)):
            data = column.cast(pa.string()).cast(pa.binary())
            following = template.parts[index + 1] if index + 1 < len(template.parts) else None
            sep = following.literal if following is not None else b""
            if sep:  # the separator must first occur right after the value (see _Part.encode)
                found = pc.find_substring(pc.binary_join_element_wise(data, sep, b""), sep)
                if not pc.all(pc.equal(found, pc.binary_length(data))).as_py():
                    return None
            parts.append(data)
        elif part.kind in _INT_RANGE and pa.types.is_integer(typ):
            low, high = _INT_RANGE[part.kind]
            lo, hi = pc.min_max(column).values()
            if lo.as_py() < low or hi.as_py() > high:
                return None
            width = 4 if part.kind == "int" else 8
            signed = column.cast(pa.int32() if width == 4 else pa.int64()).to_numpy()
            flipped = signed.view(f"u{width}") ^ np.array(1 << (width * 8 - 1), f"u{width}")
            raw = pa.py_buffer(flipped.astype(f">u{width}").tobytes())
            fixed = pa.FixedSizeBinaryArray.from_buffers(pa.binary(width), len(signed), [None, raw])
            parts.append(fixed.cast(pa.binary()))
        else:
            return None
    if not any(isinstance(p, pa.Array) for p in parts):
        return None
    keys: list[bytes] = pc.binary_join_element_wise(*parts, b"").to_pylist()
    return keys
