"""Each transform on a few rows, exact output. Stateful ones run on a real streaming source (files)."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from headwater.errors import ConfigError, NotFoundError
from headwater.streaming.watermarks import BatchWatermarks
from headwater.transforms.dedupe import DedupeConfig, DedupeTransform
from headwater.transforms.enrich import EnrichConfig, EnrichTransform
from headwater.transforms.filter import FilterConfig, FilterTransform
from headwater.transforms.python import PythonConfig, PythonTransform
from headwater.transforms.select import SelectConfig, SelectTransform
from headwater.transforms.sql import SqlConfig, SqlTransform
from headwater.transforms.window import WindowConfig, WindowTransform, parse_interval

pytestmark = pytest.mark.spark
# Python workers must run this interpreter (headwater, pandas); read when the SparkContext starts.
os.environ.setdefault("PYSPARK_PYTHON", sys.executable)

UDFS = Path(__file__).with_name("udfs.py")
ORDERS = "id bigint, customer_id string, amount decimal(12,2), ts timestamp"


def ts(text: str) -> datetime:
    return datetime.fromisoformat(f"2025-01-01T{text}")


@pytest.fixture(scope="module")
def udfs(spark):  # type: ignore[no-untyped-def]
    spark.sparkContext.addPyFile(str(UDFS))  # driver and Python workers can `import udfs`
    return "udfs"


class FileStream:
    """A MemoryStream stand-in: each ``push`` is one JSON file = one micro-batch, processed at once."""

    def __init__(self, spark: Any, root: Path, schema: str) -> None:
        self.spark, self.root, self.schema = spark, root, schema
        (root / "in").mkdir(parents=True)
        self.files = 0
        self.batches: list[list[dict[str, Any]]] = []
        self.query: Any = None

    def start(self, transform: Callable[[Any], Any], mode: str) -> FileStream:
        src = self.spark.readStream.schema(self.schema).option("maxFilesPerTrigger", 1).json(str(self.root / "in"))
        out = transform(src)

        def collect(df: Any, batch_id: int) -> None:
            self.batches.append([r.asDict() for r in df.collect()])

        self.query = (
            out.writeStream.foreachBatch(collect).outputMode(mode)
            .option("checkpointLocation", str(self.root / "ck")).start()
        )  # fmt: skip
        return self

    def push(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Write one file, process it; return what that micro-batch emitted."""
        path = self.root / "in" / f"{self.files:04d}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text("".join(json.dumps(r) + "\n" for r in rows))
        os.replace(tmp, path)
        self.files += 1
        before = len(self.batches)
        self.query.processAllAvailable()
        return [r for b in self.batches[before:] for r in b]

    def watermark(self) -> str:
        return self.query.lastProgress["eventTime"]["watermark"]

    def stop(self) -> None:
        self.query.stop()


@pytest.fixture
def stream(spark, tmp_path) -> Iterator[Callable[[str], FileStream]]:  # type: ignore[no-untyped-def]
    made: list[FileStream] = []

    def make(schema: str) -> FileStream:
        made.append(FileStream(spark, tmp_path / f"s{len(made)}", schema))
        return made[-1]

    yield make
    for s in made:
        s.stop()


def rows(spark, data: list[tuple[Any, ...]], schema: str = ORDERS):  # type: ignore[no-untyped-def]
    return spark.createDataFrame(data, schema)


# --- stateless: sql, select, filter --------------------------------------------------------------
def test_sql_select_filter(spark) -> None:  # type: ignore[no-untyped-def]
    df = rows(spark, [(1, "c1", Decimal("2.50"), ts("10:00")), (2, "c2", Decimal("-1.00"), ts("10:01"))])
    out = SqlTransform(SqlConfig(query="SELECT id, amount * 2 AS twice FROM input")).apply(df)
    assert sorted(map(tuple, out.collect())) == [(1, Decimal("5.00")), (2, Decimal("-2.00"))]
    out = FilterTransform(FilterConfig(where="amount > 0")).apply(df)
    assert [r.id for r in out.collect()] == [1]
    out = SelectTransform(SelectConfig(columns=["id", "amount"], rename={"amount": "eur"}, cast={"id": "string"}))
    assert sorted(map(tuple, out.apply(df).collect())) == [("1", Decimal("2.50")), ("2", Decimal("-1.00"))]


# --- dedupe ----------------------------------------------------------------------------------------
def test_dedupe_across_batches_and_expiry(stream) -> None:  # type: ignore[no-untyped-def]
    t = DedupeTransform(DedupeConfig(keys=["id"], event_time="ts", within="10 minutes"))
    assert t.stateful
    s = stream("id bigint, v string, ts timestamp").start(t.apply, "append")
    out = s.push([{"id": 1, "v": "a", "ts": "2025-01-01T10:00:00"}, {"id": 2, "v": "b", "ts": "2025-01-01T10:01:00"},
                  {"id": 2, "v": "b", "ts": "2025-01-01T10:01:00"}])  # fmt: skip
    assert sorted((r["id"], r["v"]) for r in out) == [(1, "a"), (2, "b")]
    out = s.push([{"id": 1, "v": "dup", "ts": "2025-01-01T10:05:00"}, {"id": 3, "v": "c", "ts": "2025-01-01T10:06:00"}])
    assert [(r["id"], r["v"]) for r in out] == [(3, "c")]  # id 1 seen in an earlier batch
    out = s.push([{"id": 4, "v": "d", "ts": "2025-01-01T11:00:00"}])  # watermark -> 10:50
    assert [(r["id"], r["v"]) for r in out] == [(4, "d")]
    # id 1 was remembered until 10:00 + 10 minutes < watermark: it is forgotten, so it passes again.
    out = s.push([{"id": 1, "v": "again", "ts": "2025-01-01T11:01:00"},
                  {"id": 4, "v": "dup", "ts": "2025-01-01T11:02:00"}])  # fmt: skip
    assert [(r["id"], r["v"]) for r in out] == [(1, "again")]


def test_dedupe_config_errors(spark) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match="invalid duration"):
        DedupeConfig(keys=["id"], event_time="ts", within="soon")
    with pytest.raises(ConfigError, match="nope"):
        DedupeTransform(DedupeConfig(keys=["nope"], event_time="ts", within="1 minute")).apply(rows(spark, []))


# --- window ----------------------------------------------------------------------------------------
def _window(**kw: Any) -> WindowTransform:
    base = {"event_time": "ts", "size": "1 hour", "watermark": "10 minutes", "group_by": ["k"],
            "aggregates": {"total": "sum(v)", "n": "count(*)"}}  # fmt: skip
    return WindowTransform(WindowConfig(**{**base, **kw}))


def _key(r: dict[str, Any]) -> tuple[Any, ...]:
    return (r["k"], r["window_start"].isoformat(), r["window_end"].isoformat(), r["total"], r["n"])


def test_window_tumbling_update_and_late(stream) -> None:  # type: ignore[no-untyped-def]
    w = _window()
    assert w.stateful and w.size_us == 3_600_000_000
    s = stream("k string, v int, ts timestamp").start(w.apply, "update")
    out = s.push([{"k": "a", "v": 1, "ts": "2025-01-01T10:00:00"}, {"k": "a", "v": 2, "ts": "2025-01-01T10:59:59"},
                  {"k": "b", "v": 5, "ts": "2025-01-01T11:10:00"}])  # fmt: skip
    assert sorted(map(_key, out)) == [("a", "2025-01-01T10:00:00", "2025-01-01T11:00:00", 3, 2),
                                      ("b", "2025-01-01T11:00:00", "2025-01-01T12:00:00", 5, 1)]  # fmt: skip
    # Late rows are dropped against the watermark of the batch before (here the no-data batch that
    # followed batch 0): 11:10 - 10 minutes.
    assert s.watermark() == "2025-01-01T11:00:00.000Z"
    batch = [{"k": "a", "v": 100, "ts": "2025-01-01T10:30:00"},  # window ends 11:00 <= 11:00: late
             {"k": "b", "v": 7, "ts": "2025-01-01T11:20:00"}]  # fmt: skip
    out = s.push(batch)
    assert sorted(map(_key, out)) == [("b", "2025-01-01T11:00:00", "2025-01-01T12:00:00", 12, 2)]
    # The late-data rule of the side query predicts exactly that drop.
    spark = s.spark
    df = spark.createDataFrame([(r["k"], r["v"], ts(r["ts"][11:])) for r in batch], "k string, v int, ts timestamp")
    wm = int(datetime.fromisoformat("2025-01-01T11:00:00+00:00").timestamp() * 1000)
    from pyspark.sql import functions as F

    flagged = df.where(w.late_condition(F.lit(wm))).select("v", w.late_detail(F.lit(wm)).alias("d")).collect()
    assert [(r.v, r.d) for r in flagged] == [
        (100, "ts 2025-01-01T10:30:00.000000Z is behind the watermark 2025-01-01T11:00:00.000000Z "
              "(its last window ended 2025-01-01T11:00:00.000000Z)")
    ]  # fmt: skip


def test_window_sliding(stream) -> None:  # type: ignore[no-untyped-def]
    w = _window(size="1 hour", slide="30 minutes", group_by=[], aggregates={"total": "sum(v)"})
    s = stream("k string, v int, ts timestamp").start(w.apply, "update")
    out = s.push([{"k": "a", "v": 1, "ts": "2025-01-01T10:10:00"}, {"k": "a", "v": 2, "ts": "2025-01-01T10:40:00"}])
    got = sorted((r["window_start"].isoformat(), r["window_end"].isoformat(), r["total"]) for r in out)
    assert got == [("2025-01-01T09:30:00", "2025-01-01T10:30:00", 1), ("2025-01-01T10:00:00", "2025-01-01T11:00:00", 3),
                   ("2025-01-01T10:30:00", "2025-01-01T11:30:00", 2)]  # fmt: skip
    assert list(out[0]) == ["window_start", "window_end", "total"]


def test_window_config_errors(spark) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match="must not exceed"):
        _window(slide="2 hours")
    with pytest.raises(ValueError, match="reserved"):
        _window(aggregates={"window_start": "min(ts)"})
    assert parse_interval("1 hour 30 min") == ("1 hours 30 minutes", 5_400_000_000)
    df = spark.createDataFrame([], "k string, v int, ts string")
    with pytest.raises(ConfigError, match="need a timestamp"):
        _window().apply(df)
    with pytest.raises(ConfigError, match="invalid group_by/aggregates"):
        _window(aggregates={"x": "sum(nope)"}).apply(df.withColumn("ts", df.ts.cast("timestamp")))


def test_one_watermark_per_query(spark, tmp_path, udfs) -> None:  # type: ignore[no-untyped-def]
    """Spark allows one watermark per query: dedupe then window share it, or the spec is refused."""
    src = spark.readStream.schema("id bigint, k string, v int, ts timestamp, ts2 timestamp").json(str(tmp_path))
    deduped = DedupeTransform(DedupeConfig(keys=["id"], event_time="ts", within="10 minutes")).apply(src)
    assert _window().apply(deduped).isStreaming  # same column, same delay: the window reuses it
    with pytest.raises(ConfigError, match="already defined upstream"):
        _window(watermark="1 hour").apply(deduped)
    # A python transform in between passes the column (and its watermark mark) through.
    passed = PythonTransform(PythonConfig(function=f"{udfs}:passthrough", output_schema="id bigint, ts timestamp"))
    assert _window(group_by=[], aggregates={"n": "count(*)"}).apply(passed.apply(deduped)).isStreaming
    with pytest.raises(ConfigError, match="on another column"):
        _window(event_time="ts2").apply(deduped)


def test_batch_watermarks_from_offset_log(spark, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Late rows are matched to the main query's batch by Kafka position, against the batch before."""
    offsets = tmp_path / "main" / "offsets"
    offsets.mkdir(parents=True)
    h10, h11 = (int(ts(x).timestamp() * 1000) for x in ("10:00", "11:00"))
    for bid, wm, ends in [(0, 0, {"0": 3, "1": 2}), (1, h10, {"0": 5, "1": 2}), (2, h11, {"0": 8, "1": 4})]:
        meta = json.dumps({"batchWatermarkMs": wm, "batchTimestampMs": 1, "conf": {}})
        (offsets / str(bid)).write_text(f"v1\n{meta}\n{json.dumps({'t': ends})}")
    (offsets / ".2.crc").write_bytes(b"\xd2\x00")
    bw = BatchWatermarks(spark, str(tmp_path / "main"), "t")
    assert bw.covers({0: 7, 1: 3}) and not bw.covers({0: 8})
    assert bw.ranges() == [(0, 0, 3, 0), (1, 0, 2, 0), (0, 3, 5, 0), (0, 5, 8, h10), (1, 2, 4, h10)]
    data = [(0, 1, "09:00"), (0, 4, "09:00"), (0, 6, "09:59"), (0, 7, "10:00"), (1, 3, "08:00"), (1, 9, "08:00")]
    df = spark.createDataFrame([(p, o, ts(t)) for p, o, t in data], "_hw_partition int, _hw_offset long, ts timestamp")
    late = bw.mark_late(df, _window())
    assert sorted((r._hw_partition, r._hw_offset, r._hw_error) for r in late.collect()) == [
        (0, 6, "late_data"), (1, 3, "late_data")]  # fmt: skip
    bw.KEEP = 1  # memory stays bounded: older entries are dropped (and not read again)
    bw.refresh()
    assert sorted(bw.batches) == [1, 2] and bw.ranges() == [(0, 5, 8, h10), (1, 2, 4, h10)]
    bw.wait({0: 7}, lambda: True)
    with pytest.raises(RuntimeError, match="main query stopped"):
        bw.wait({0: 100}, lambda: False)


# --- enrich ----------------------------------------------------------------------------------------
def test_enrich_join_and_refresh(spark, unique) -> None:  # type: ignore[no-untyped-def]
    view = f"dim_{unique}"
    spark.createDataFrame([("c1", "gold", "FR"), ("c2", "silver", "DE")], "id string, segment string, country string")\
        .createOrReplaceTempView(view)  # fmt: skip
    df = rows(spark, [(1, "c1", Decimal("1.00"), ts("10:00")), (2, "c9", Decimal("2.00"), ts("10:00"))])
    t = EnrichTransform(EnrichConfig(table=view, on={"customer_id": "id"}, columns=["segment"], refresh="1 hour"))
    assert not t.stateful
    out = t.apply(df)
    assert out.columns == ["id", "customer_id", "amount", "ts", "segment"]
    assert sorted((r.id, r.segment) for r in out.collect()) == [(1, "gold"), (2, None)]
    inner = EnrichTransform(EnrichConfig(table=view, on={"customer_id": "id"}, columns=["segment", "country"],
                                         how="inner"))  # fmt: skip
    assert [(r.id, r.segment, r.country) for r in inner.apply(df).collect()] == [(1, "gold", "FR")]
    # The table changes: the cached copy is used until it is older than `refresh`, then re-read.
    spark.createDataFrame([("c1", "platinum", "FR"), ("c9", "new", "IT")], "id string, segment string, country string")\
        .createOrReplaceTempView(view)  # fmt: skip
    assert sorted((r.id, r.segment) for r in t.apply(df).collect()) == [(1, "gold"), (2, None)]
    t._loaded_at -= 3600  # an hour later
    assert sorted((r.id, r.segment) for r in t.apply(df).collect()) == [(1, "platinum"), (2, "new")]
    assert t.loads == 2


def test_enrich_refresh_planned_sees_replaced_files(spark, unique, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A plan built once (as in a stateful query) joins with the new copy after ``refresh_planned``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    def write_dim(segment: str) -> None:  # as another process would: old files gone, new ones in place
        for old in (tmp_path / "dim").glob("*.parquet"):
            old.unlink()
        (tmp_path / "dim").mkdir(exist_ok=True)
        pq.write_table(pa.table({"id": ["c1", "c2"], "segment": [segment, segment]}),
                       tmp_path / "dim" / f"{segment}.parquet")  # fmt: skip

    write_dim("old")
    spark.read.parquet(str(tmp_path / "dim")).createOrReplaceTempView(f"pdim_{unique}")
    t = EnrichTransform(EnrichConfig(table=f"pdim_{unique}", on={"customer_id": "id"}, columns=["segment"],
                                     refresh="1 hour"))  # fmt: skip
    t.planned = True
    planned = t.apply(rows(spark, [(1, "c1", Decimal("1.00"), ts("10:00"))]))
    assert [r.segment for r in planned.collect()] == ["old"]
    write_dim("new")
    assert not t.refresh_planned()  # younger than `refresh`: nothing re-read
    t._loaded_at -= 3600
    assert t.refresh_planned() and t.loads == 2
    # The same plan, not re-applied; executed anew, as a micro-batch executes its plan.
    assert [r.segment for r in planned.select("*").collect()] == ["new"]


def test_enrich_errors(spark, unique) -> None:  # type: ignore[no-untyped-def]
    df = rows(spark, [])
    spark.createDataFrame([("c1", "gold")], "customer_id string, segment string").createOrReplaceTempView(f"d_{unique}")
    with pytest.raises(ConfigError, match="already in the records"):
        EnrichTransform(EnrichConfig(table=f"d_{unique}", on=["customer_id"], columns=["amount"])).apply(df)
    with pytest.raises(ConfigError, match="not in d_"):
        EnrichTransform(EnrichConfig(table=f"d_{unique}", on=["customer_id"], columns=["tier"])).apply(df)
    with pytest.raises(NotFoundError, match="not found"):
        EnrichTransform(EnrichConfig(table=f"missing_{unique}", on=["customer_id"], columns=["x"])).apply(df)


# --- python ----------------------------------------------------------------------------------------
def test_python_isolates_failing_rows(spark, udfs) -> None:  # type: ignore[no-untyped-def]
    data = [(i, f"c{i}", Decimal(-3 if i == 7 else i), ts("10:00")) for i in range(1, 11)]
    df = spark.createDataFrame([(*r, 100 + r[0]) for r in data], f"{ORDERS}, _hw_offset bigint").repartition(1)
    out = PythonTransform(PythonConfig(function=f"{udfs}:double_amount")).apply(df)
    assert out.columns == ["id", "customer_id", "amount", "ts", "_hw_offset", "_hw_error", "_hw_error_detail"]
    got = {r.id: r for r in out.collect()}
    assert sorted(got) == list(range(1, 11))
    for i, r in got.items():
        if i == 7:  # the failing row keeps its input values, position included
            assert (r.amount, r._hw_offset, r._hw_error) == (Decimal("-3.00"), 107, "transform_error")
            assert r._hw_error_detail == "ValueError: negative amount -3.00 for id 7 (function udfs:double_amount)"
        else:
            assert (r.amount, r._hw_offset, r._hw_error, r._hw_error_detail) == (Decimal(2 * i), 100 + i, None, None)


def test_python_output_schema(spark, udfs) -> None:  # type: ignore[no-untyped-def]
    df = spark.createDataFrame([(i, f"c{i}", Decimal(i), ts("10:00")) for i in (11, 12, 13)], ORDERS)
    t = PythonTransform(PythonConfig(function=f"{udfs}:score", output_schema="id bigint, score double"))
    got = sorted(tuple(r) for r in t.apply(df.coalesce(1)).collect())
    assert got == [(11, 5.5, None, None), (12, 6.0, None, None),
                   (13, None, "transform_error", "KeyError: 'unlucky' (function udfs:score)")]  # fmt: skip


def test_python_config_errors(spark, udfs) -> None:  # type: ignore[no-untyped-def]
    df = rows(spark, [])
    with pytest.raises(ValueError, match="function"):
        PythonConfig(function="no-colon")
    with pytest.raises(ConfigError, match="cannot import"):
        PythonTransform(PythonConfig(function="no_such_module:f")).apply(df)
    with pytest.raises(ConfigError, match="has no function"):
        PythonTransform(PythonConfig(function=f"{udfs}:nope")).apply(df)
    with pytest.raises(ConfigError, match="not Spark DDL"):
        PythonTransform(PythonConfig(function=f"{udfs}:score", output_schema="id bigint,,")).apply(df)
