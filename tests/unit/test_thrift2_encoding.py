"""The hand-written binary TPut is byte for byte what thriftpy2 writes for the same objects."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from thriftpy2.protocol import TBinaryProtocol
from thriftpy2.transport import TMemoryBuffer

from headwater.sinks.hbase import thrift2

names = st.binary(min_size=1, max_size=12)
cells = st.lists(st.tuples(names, names, st.binary(max_size=40)), min_size=1, max_size=6)


def serialize(obj: object) -> bytes:
    buf = TMemoryBuffer()
    obj.write(TBinaryProtocol(buf))  # type: ignore[attr-defined]
    return bytes(buf.getvalue())


@settings(max_examples=200, deadline=None)
@given(row=st.binary(min_size=1, max_size=30), cells=cells, ts=st.integers(0, 2**63 - 1),
       durability=st.sampled_from([1, 2, 3, 4]))  # fmt: skip
def test_encode_put_equals_thriftpy2(row: bytes, cells: list[tuple[bytes, bytes, bytes]], ts: int,
                                     durability: int) -> None:  # fmt: skip
    suffix = thrift2.cell_suffix(ts)
    raw = thrift2.encode_put(row, [thrift2.encode_cell(thrift2.cell_prefix(f, q), v, suffix) for f, q, v in cells],
                             durability)  # fmt: skip
    assert raw == serialize(thrift2.put_object(row, cells, ts, durability))


def test_put_multiple_args_frame() -> None:
    """The call's argument struct around the puts, as putMultiple_args would be written."""
    t = thrift2.idl()
    put = thrift2.put_object(b"r", [(b"d", b"q", b"v")], 7, 3)
    args = t.THBaseService.putMultiple_args(table=b"ns:t", tputs=[put, put])
    raw = thrift2.encode_put(
        b"r", [thrift2.encode_cell(thrift2.cell_prefix(b"d", b"q"), b"v", thrift2.cell_suffix(7))], 3
    )
    assert serialize(args) == thrift2.put_multiple_args("ns:t", [raw, raw])


@settings(max_examples=150, deadline=None)
@given(data=st.data(), families=st.lists(st.tuples(names, names), min_size=1, max_size=5),
       durability=st.sampled_from([1, 2, 3, 4]))  # fmt: skip
def test_encode_puts_column_wise_equals_row_by_row(data: st.DataObject, families: list[tuple[bytes, bytes]],
                                                   durability: int) -> None:  # fmt: skip
    n = data.draw(st.integers(1, 15))
    rows = data.draw(st.lists(st.binary(min_size=1, max_size=30), min_size=n, max_size=n))
    stamps = data.draw(st.lists(st.integers(0, 2**63 - 1), min_size=n, max_size=n))
    values = [data.draw(st.lists(st.one_of(st.none(), st.binary(max_size=40)), min_size=n, max_size=n))
              for _ in families]  # fmt: skip
    prefixes = [thrift2.cell_prefix(f, q) for f, q in families]
    got = thrift2.encode_puts(rows, list(zip(prefixes, values, strict=True)), stamps, durability)
    for i in range(n):
        cells = [thrift2.encode_cell(p, col[i], thrift2.cell_suffix(stamps[i]))
                 for p, col in zip(prefixes, values, strict=True) if col[i] is not None]  # fmt: skip
        assert got[i] == thrift2.encode_put(rows[i], cells, durability)
