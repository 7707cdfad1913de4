"""Column-wise JSON text of Arrow arrays, byte for byte what the ``json`` codec writes value by value.

The ``json`` codec is ``json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)``
over the Python value (maps as objects, decimals and times as strings). :func:`json_column` builds
the same text for a whole column with Arrow kernels: scalars are cast to text, strings escaped,
structs and maps assembled with their keys sorted, lists joined. Whatever it cannot reproduce
exactly (floats, whose ``repr`` Arrow does not print; binary; control characters other than
``\\n \\r \\t \\b \\f``; duplicate keys; years outside 1..9999) makes it return ``None``, and the
caller encodes that column value by value. ``tests/unit/test_arrow_json.py`` checks the bytes
against the codec with hypothesis.

Example:
    >>> import pyarrow as pa
    >>> json_column(pa.array([{"b": [1, 2], "a": "x"}, None]))
    [b'{"a":"x","b":[1,2]}', None]
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["json_column"]

_ESCAPES = (("\\", "\\\\"), ('"', '\\"'), ("\n", "\\n"), ("\r", "\\r"), ("\t", "\\t"), ("\b", "\\b"), ("\f", "\\f"))


def json_column(array: pa.Array) -> list[bytes | None] | None:
    """The JSON text of each value (None for a null), or None when the column needs the value-by-value path."""
    import pyarrow as pa
    import pyarrow.compute as pc

    text = _texts(array)
    if text is None:
        return None
    out: list[bytes | None] = (
        pc.if_else(array.is_valid(), text, pa.scalar(None, pa.string())).cast(pa.binary()).to_pylist()
    )
    return out


def _texts(array: pa.Array) -> pa.Array | None:
    """JSON text per element (``null`` for nulls), as a string array; None if not exactly reproducible."""
    import pyarrow as pa
    import pyarrow.compute as pc

    t = array.type
    text: pa.Array | None
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        text = _quoted(array.cast(pa.string()))
    elif pa.types.is_integer(t) or pa.types.is_boolean(t):
        text = array.cast(pa.string())
    elif pa.types.is_decimal(t) and t.scale >= 0:
        digits = array.cast(pa.string())
        text = None if pc.any(pc.match_substring(digits, "E")).as_py() else _wrap('"', digits, '"')
    elif (pa.types.is_date(t) or pa.types.is_timestamp(t)) and _years_ok(array):
        text = _wrap('"', _times(array), '"')
    elif pa.types.is_struct(t):
        text = _struct(array)
    elif pa.types.is_map(t):
        text = _map(array)
    elif pa.types.is_list(t) or pa.types.is_large_list(t):
        text = _list(array)
    else:  # floats (Python's repr), binary, intervals, ...
        return None
    if text is None:
        return None
    return pc.if_else(array.is_valid(), text, "null")


def _wrap(left: str, middle: pa.Array, right: str) -> pa.Array:
    import pyarrow.compute as pc

    return pc.binary_join_element_wise(left, middle, right, "")


def _quoted(strings: pa.Array) -> pa.Array | None:
    """``"…"`` with json.dumps' escapes (ensure_ascii=False); None if another control character occurs."""
    import pyarrow.compute as pc

    for raw, escaped in _ESCAPES:
        strings = pc.replace_substring(strings, raw, escaped)
    if pc.any(pc.match_substring_regex(strings, "[\\x00-\\x1f]")).as_py():
        return None  # json.dumps writes these as \u00XX
    return _wrap('"', strings, '"')


def _years_ok(array: pa.Array) -> bool:
    import pyarrow.compute as pc

    if array.null_count == len(array):
        return True
    low, high = pc.min_max(pc.year(array)).values()
    return bool(low.as_py() >= 1 and high.as_py() <= 9999)


def _times(array: pa.Array) -> pa.Array:
    """Dates as ``YYYY-MM-DD``; timestamps in UTC as ``YYYY-MM-DDTHH:MM:SS.ffffff+00:00`` (the codec's forms)."""
    import numpy as np
    import pyarrow as pa

    if pa.types.is_date(array.type):
        return array.cast(pa.date32()).cast(pa.string())
    micros = array.cast(pa.timestamp("us", tz=array.type.tz)).cast(pa.int64()).fill_null(0)
    text = np.datetime_as_string(micros.to_numpy().view("datetime64[us]"), unit="us")
    return pa.array(np.char.add(text, "+00:00"), pa.string())


def _struct(array: pa.Array) -> pa.Array | None:
    names = [f.name for f in array.type]
    if len(set(names)) != len(names):
        return None  # a dict keeps one of them
    children = dict(zip(names, array.flatten(), strict=True))
    pieces: list[pa.Array | str] = []
    for i, name in enumerate(sorted(names)):
        child = _texts(children[name])
        if child is None:
            return None
        pieces += [("{" if i == 0 else ",") + json.dumps(name, ensure_ascii=False) + ":", child]
    if not pieces:
        return _constant(len(array), "{}")
    return _join([*pieces, "}"])


def _join(pieces: list[pa.Array | str]) -> pa.Array:
    import pyarrow.compute as pc

    return pc.binary_join_element_wise(*pieces, "")


def _constant(n: int, value: str) -> pa.Array:
    import pyarrow as pa

    return pa.array([value] * n, pa.string())


def _values(array: pa.Array) -> tuple[pa.Array, pa.Array]:
    """(offsets from 0, the child values they index) of a list or map array, slice-aware."""
    import pyarrow.compute as pc

    offsets = array.offsets
    start = offsets[0].as_py()
    return pc.subtract(offsets, start), array.values.slice(start, offsets[-1].as_py() - start)


def _list(array: pa.Array) -> pa.Array | None:
    offsets, values = _values(array)
    items = _texts(values)
    return None if items is None else _joined(array, offsets, items, "[", "]")


def _joined(array: pa.Array, offsets: pa.Array, items: pa.Array, left: str, right: str) -> pa.Array:
    import pyarrow as pa
    import pyarrow.compute as pc

    lists = (pa.LargeListArray if pa.types.is_int64(offsets.type) else pa.ListArray).from_arrays(offsets, items)
    return _wrap(left, pc.binary_join(lists, ","), right)


def _map(array: pa.Array) -> pa.Array | None:
    """Objects with their keys as text, sorted per map; None for keys other than strings and ints, or repeated."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    offsets, entries = _values(array)
    keys, items = entries.flatten()
    if not (pa.types.is_string(keys.type) or pa.types.is_large_string(keys.type) or pa.types.is_integer(keys.type)):
        return None
    raw = keys.cast(pa.string())
    parent = np.repeat(np.arange(len(array)), np.diff(offsets.to_numpy()))
    order = pc.sort_indices(pa.table({"p": parent, "k": raw}), sort_keys=[("p", "ascending"), ("k", "ascending")])
    raw, items, parent = raw.take(order), items.take(order), parent[order.to_numpy()]
    if len(raw) > 1:
        same = pc.and_(pc.equal(raw[1:], raw[:-1]), pa.array(parent[1:] == parent[:-1]))
        if pc.any(same).as_py():
            return None
    key_text, value_text = _quoted(raw), _texts(items)
    if key_text is None or value_text is None:
        return None
    return _joined(array, offsets, _join([key_text, ":", value_text]), "{", "}")
