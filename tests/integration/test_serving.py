"""Serving over a real HBase table written by the sink's own writer path (no Spark): reader and HTTP API."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pytest
import schemathesis
import yaml
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyspark.sql import types as T
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from headwater.errors import NotFoundError, ServiceUnavailable
from headwater.serving import InvalidRequest, TableReader, type_of_ddl
from headwater.serving.api import create_app
from headwater.sinks.hbase import HBaseSink, HBaseSinkConfig
from headwater.sinks.hbase.admin import connect, ensure_table
from headwater.sinks.hbase.rowkey import salt_bucket, salt_prefix
from headwater.sinks.hbase.writer import make_writer
from headwater.spec import PipelineSpec, load_spec_text
from headwater.spec.connections import Connections, HBaseConnection

pytestmark = pytest.mark.integration

ROW_KEY = "{salt(customer_id, 4)}|{customer_id}|{reverse_ts(ts)}|{order_id:long}"
SCHEMA = {
    "customer_id": "string", "order_id": "bigint", "ts": "timestamp", "amount": "decimal(12,2)",
    "status": "string", "items": "array<struct<sku:string,qty:int>>",
}  # fmt: skip
SPARK = T.StructType([
    T.StructField("customer_id", T.StringType()), T.StructField("order_id", T.LongType()),
    T.StructField("ts", T.TimestampType()), T.StructField("amount", T.DecimalType(12, 2)),
    T.StructField("status", T.StringType()),
    T.StructField("items", T.ArrayType(T.StructType([T.StructField("sku", T.StringType()),
                                                     T.StructField("qty", T.IntegerType())]))),
])  # fmt: skip
ARROW = pa.schema([
    ("customer_id", pa.string()), ("order_id", pa.int64()), ("ts", pa.timestamp("us", tz="UTC")),
    ("amount", pa.decimal128(12, 2)), ("status", pa.string()),
    ("items", pa.list_(pa.struct([("sku", pa.string()), ("qty", pa.int32())]))),
])  # fmt: skip
T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
CUSTOMERS = [f"c{i:02d}" for i in range(12)]
PER_CUSTOMER = 25
TOKEN = "s3cret-token"


def write(config: HBaseSinkConfig, conn: HBaseConnection, spark_schema: T.StructType, arrow_schema: pa.Schema,
          rows: list[dict[str, Any]]) -> dict[str, Any]:  # fmt: skip
    """Write rows exactly as the sink's executors do: describe() -> make_writer() over Arrow batches."""
    desc = HBaseSink(config, Connections(hbase=conn)).describe(spark_schema)
    batches = [pa.RecordBatch.from_pylist(rows[i : i + 500], schema=arrow_schema) for i in range(0, len(rows), 500)]
    out = [r for b in make_writer(desc)(iter(batches)) for r in b.to_pylist()]
    stats = next(r for r in out if r["kind"] == "stats")
    assert [r for r in out if r["kind"] == "rejected"] == []
    assert stats["written"] == len(rows)
    return stats


def order(customer: str, k: int) -> dict[str, Any]:
    n = CUSTOMERS.index(customer) * 1000 + k
    return {"customer_id": customer, "order_id": n, "ts": T0 + timedelta(minutes=k, milliseconds=n % 997),
            "amount": Decimal(f"{n}.{k % 100:02d}"), "status": ["new", "paid", "shipped"][k % 3],
            "items": [{"sku": f"s{k}", "qty": k % 5 + 1}] if k % 4 else []}  # fmt: skip


@pytest.fixture(scope="module")
def conn(stack) -> HBaseConnection:  # type: ignore[no-untyped-def]
    return HBaseConnection(host=stack.config.host, port=stack.config.thrift2_port)


@pytest.fixture(scope="module")
def orders(conn: HBaseConnection) -> dict[str, Any]:
    table = f"serve_{uuid.uuid4().hex[:8]}"
    sink = {"type": "hbase", "table": table, "row_key": ROW_KEY, "version": "ts",
            "columns": {"d": ["amount", "status", "ts"], "x": {"items": "json"}}}  # fmt: skip
    config = HBaseSinkConfig(**sink)
    ensure_table(config, conn)
    rows = [order(c, k) for c in CUSTOMERS for k in range(PER_CUSTOMER)]
    write(config, conn, SPARK, ARROW, rows)
    spec_doc = {
        "name": "orders", "source": {"type": "hive", "table": "demo.orders_raw", "mode": "snapshot"},
        "schema": SCHEMA, "topic": {"name": "serve.orders", "key": ["order_id"]}, "sink": sink,
        "dead_letter": {"topic": "serve.orders.dlq"},
        "connections": {"hbase": {"host": conn.host, "port": conn.port}},
    }  # fmt: skip
    spec = load_spec_text(yaml.safe_dump(spec_doc))
    reader = TableReader(config, conn, {c: type_of_ddl(t) for c, t in SCHEMA.items()})
    yield {"config": config, "rows": rows, "reader": reader, "spec": spec}
    reader.close()
    with connect(conn) as client:
        client.delete_table(config.full_table)


def _expected(rec: dict[str, Any]) -> dict[str, Any]:
    return {"amount": rec["amount"], "status": rec["status"], "ts": rec["ts"], "items": rec["items"]}


# --- reader ---------------------------------------------------------------------------------------
def test_get_by_key_fields_decodes_key_and_columns(orders: dict[str, Any]) -> None:
    rec = orders["rows"][37]
    row = orders["reader"].get({"customer_id": rec["customer_id"], "ts": rec["ts"].isoformat(),
                                "order_id": str(rec["order_id"])})  # fmt: skip
    assert row is not None
    assert row.key == {"customer_id": rec["customer_id"], "ts": rec["ts"], "order_id": rec["order_id"]}
    assert row.columns == _expected(rec)
    assert row.timestamp == rec["ts"]
    epoch_ms = str(int(rec["ts"].timestamp() * 1000))  # timestamps may also be given as epoch millis
    same = orders["reader"].get({"customer_id": rec["customer_id"], "ts": epoch_ms, "order_id": rec["order_id"]})
    assert same == row
    as_json = row.to_dict()
    assert as_json["columns"]["amount"] == str(rec["amount"]) and as_json["timestamp"] == rec["ts"].isoformat()
    missing = {"customer_id": rec["customer_id"], "ts": rec["ts"], "order_id": 999_999}
    assert orders["reader"].get(missing) is None


def test_prefix_scan_in_key_order_with_pagination(orders: dict[str, Any]) -> None:
    reader = orders["reader"]
    everything, token = reader.scan({"customer_id": "c03"}, limit=1000)
    assert token is None and len(everything) == PER_CUSTOMER
    assert [r.row_key for r in everything] == sorted(r.row_key for r in everything)
    own = [r["ts"] for r in orders["rows"] if r["customer_id"] == "c03"]
    assert [r.key["ts"] for r in everything] == sorted(own, reverse=True)
    pages, token, calls = [], None, 0
    while True:
        page, token = reader.scan({"customer_id": "c03"}, limit=7, page_token=token)
        pages += page
        calls += 1
        if token is None:
            break
    assert calls == 4 and [r.row_key for r in pages] == [r.row_key for r in everything]
    ts10 = everything[10].key["ts"]
    window, _ = reader.scan({"customer_id": "c03"}, start={"customer_id": "c03", "ts": ts10}, limit=5)
    assert [r.row_key for r in window] == [r.row_key for r in everything[10:15]]
    # a full-table scan is in key order too: salt bucket first
    table, _ = reader.scan(limit=1000)
    assert len(table) == len(orders["rows"]) and [r.row_key for r in table] == sorted(r.row_key for r in table)


def test_latest_n_per_entity_newest_first(orders: dict[str, Any]) -> None:
    for customer in ("c00", "c07"):
        latest = orders["reader"].latest({"customer_id": customer}, 5)
        recs = sorted((r for r in orders["rows"] if r["customer_id"] == customer), key=lambda r: r["ts"])
        assert [r.key["order_id"] for r in latest] == [r["order_id"] for r in reversed(recs[-5:])]
        assert all(r.key["customer_id"] == customer for r in latest)


def test_salted_keys_land_in_all_four_pre_split_regions(orders: dict[str, Any], conn: HBaseConnection) -> None:
    table = orders["config"].full_table
    with connect(conn) as client:
        regions = client._client.getAllRegionLocations(table.encode())
        starts = sorted(r.regionInfo.startKey or b"" for r in regions)
        assert starts == [b"", b"01", b"02", b"03"]
        t = client.t
        counts = []
        for bucket in range(4):
            stop = salt_prefix(bucket + 1) if bucket < 3 else None
            counts.append(sum(1 for _ in client.scan(table, t.TScan(startRow=salt_prefix(bucket), stopRow=stop))))
    expected = [PER_CUSTOMER * sum(1 for c in CUSTOMERS if salt_bucket(c, 4) == b) for b in range(4)]
    assert counts == expected and all(counts) and sum(counts) == len(orders["rows"])


def test_freshness_reports_newest_event_time(orders: dict[str, Any]) -> None:
    fresh = orders["reader"].freshness()
    newest = max(r["ts"] for r in orders["rows"])
    assert fresh == {"newest_event_time": newest.isoformat(), "rows_examined": len(orders["rows"]),
                     "complete": True, "version_field": "ts"}  # fmt: skip
    partial = orders["reader"].freshness(max_rows=10)
    assert partial["rows_examined"] == 10 and partial["complete"] is False


def test_bad_input_names_the_field_and_value(orders: dict[str, Any]) -> None:
    reader = orders["reader"]
    with pytest.raises(InvalidRequest, match=r"unknown key field 'customer'.*key fields: customer_id, ts, order_id"):
        reader.get({"customer": "c1"})
    with pytest.raises(InvalidRequest, match="'order_id': 'x1' is not an integer"):
        reader.get({"customer_id": "c01", "ts": T0, "order_id": "x1"})
    with pytest.raises(InvalidRequest, match=r"'ts'.*'yesterday'"):
        reader.get({"customer_id": "c01", "ts": "yesterday", "order_id": 1})
    with pytest.raises(InvalidRequest, match="field 'order_id' is missing or null"):
        reader.get({"customer_id": "c01", "ts": T0})
    with pytest.raises(InvalidRequest, match="key field 'customer_id' is missing; a prefix needs the leading"):
        reader.scan({"ts": T0})
    with pytest.raises(InvalidRequest, match="page_token"):
        reader.scan({"customer_id": "c01"}, page_token="not a token!")


def test_missing_table_and_unreachable_server(orders: dict[str, Any], conn: HBaseConnection) -> None:
    config = orders["config"].model_copy(update={"table": f"nope_{uuid.uuid4().hex[:6]}"})
    with pytest.raises(NotFoundError, match="not found"):
        TableReader(config, conn).scan(limit=1)
    dead = HBaseConnection(host="127.0.0.1", port=1, timeout_ms=2000)
    with pytest.raises(ServiceUnavailable, match=r"127\.0\.0\.1:1"):
        TableReader(orders["config"], dead).get({"customer_id": "c1", "ts": T0, "order_id": 1})


# --- HTTP API -------------------------------------------------------------------------------------
def test_api_get_scan_latest_freshness(orders: dict[str, Any]) -> None:
    spec: PipelineSpec = orders["spec"]
    rec = orders["rows"][3]
    with TestClient(create_app(spec, token="")) as client:
        assert client.get("/healthz").json()["status"] == "ok"
        key = {"customer_id": rec["customer_id"], "ts": rec["ts"].isoformat(), "order_id": rec["order_id"]}
        got = client.get("/v1/orders/rows/get", params=key)
        assert got.status_code == 200, got.text
        body = got.json()
        assert body["key"] == {**key, "order_id": rec["order_id"]}
        assert body["columns"] == {"amount": str(rec["amount"]), "status": rec["status"],
                                   "ts": rec["ts"].isoformat(), "items": rec["items"]}  # fmt: skip
        rows, token = [], None
        while True:
            params = {"prefix.customer_id": "c05", "limit": 10, **({"page_token": token} if token else {})}
            page = client.get("/v1/orders/rows/scan", params=params).json()
            rows += page["rows"]
            token = page["next_page_token"]
            if token is None:
                break
        assert len(rows) == PER_CUSTOMER and [r["row_key_hex"] for r in rows] == sorted(r["row_key_hex"] for r in rows)
        latest = client.get("/v1/orders/rows/latest", params={"customer_id": "c05", "n": 3}).json()["rows"]
        assert [r["row_key_hex"] for r in latest] == [r["row_key_hex"] for r in rows[:3]]
        fresh = client.get("/v1/orders/freshness").json()
        assert fresh["newest_event_time"] == max(r["ts"] for r in orders["rows"]).isoformat()
        assert "/v1/{pipeline}/rows/scan" in client.get("/openapi.json").json()["paths"]


def test_api_errors_are_json_with_the_right_status(orders: dict[str, Any]) -> None:
    rec = orders["rows"][3]
    key = {"customer_id": rec["customer_id"], "ts": rec["ts"].isoformat(), "order_id": rec["order_id"]}
    with TestClient(create_app(orders["spec"], token="")) as client:
        bad = client.get("/v1/orders/rows/get", params={**key, "order_id": "twelve"})
        assert bad.status_code == 400 and "'order_id': 'twelve' is not an integer" in bad.json()["error"]
        missing = client.get("/v1/orders/rows/get", params={**key, "order_id": 123456789})
        assert missing.status_code == 404 and "no row with key" in missing.json()["error"]
        assert client.get("/v1/other/rows/get", params=key).status_code == 404
        assert client.get("/v1/orders/rows/scan", params={"customer_id": "c1"}).status_code == 400
        assert client.get("/v1/orders/rows/scan", params={"limit": "lots"}).status_code == 422
    config = orders["config"].model_copy(update={"table": f"nope_{uuid.uuid4().hex[:6]}"})
    with TestClient(create_app(orders["spec"], token="", reader=TableReader(config, HBaseConnection(
            host="127.0.0.1", port=orders["spec"].connections.hbase.port)))) as client:  # fmt: skip
        assert client.get("/v1/orders/freshness").status_code == 404
    dead = TableReader(orders["config"], HBaseConnection(host="127.0.0.1", port=1, timeout_ms=2000))
    with TestClient(create_app(orders["spec"], token="", reader=dead)) as client:
        down = client.get("/v1/orders/rows/get", params=key)
        assert down.status_code == 503 and "127.0.0.1:1" in down.json()["error"]


def test_api_bearer_token(orders: dict[str, Any]) -> None:
    with TestClient(create_app(orders["spec"], token=TOKEN)) as client:
        url, params = "/v1/orders/rows/latest", {"customer_id": "c02", "n": 1}
        assert client.get(url, params=params).status_code == 401
        wrong = client.get(url, params=params, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401 and wrong.json() == {"error": "missing or invalid bearer token"}
        assert client.get(url, params=params, headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
        assert client.get("/healthz").status_code == 200


# --- fuzzing every endpoint from its OpenAPI document ---------------------------------------------
ROUTES = ["/healthz", "/v1/{pipeline}/rows/get", "/v1/{pipeline}/rows/scan", "/v1/{pipeline}/rows/latest",
          "/v1/{pipeline}/freshness"]  # fmt: skip
FUZZ_CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture(scope="module")
def openapi_schema(orders: dict[str, Any]) -> Any:
    """The API of the orders table (real HBase behind it), as schemathesis loads it from /openapi.json."""
    return schemathesis.openapi.from_asgi("/openapi.json", create_app(orders["spec"], token=""))


def test_the_fuzzed_routes_are_all_the_routes(openapi_schema: Any) -> None:
    assert sorted(op.ok().path for op in openapi_schema.get_all_operations()) == sorted(ROUTES)


@pytest.mark.parametrize("path", ROUTES)
def test_fuzzed_requests_get_no_5xx_and_documented_responses(openapi_schema: Any, path: str) -> None:
    """Whatever a client sends, schema-valid or not, the answer is no 5xx and conforms to the document.

    Most cases name the served pipeline, so they reach the table rather than stopping at the 404 of an
    unknown pipeline; the rest fuzz the pipeline name too.
    """
    operation = openapi_schema[path]["GET"]
    modes = [GenerationMode.POSITIVE] + ([GenerationMode.NEGATIVE] if operation.query else [])
    fixed = {"path_parameters": {"pipeline": "orders"}} if "{pipeline}" in path else {}
    cases = st.one_of(
        *(operation.as_strategy(generation_mode=mode, **fixed) for mode in modes),
        operation.as_strategy(generation_mode=GenerationMode.POSITIVE),
    )
    statuses: list[int] = []

    @settings(max_examples=50, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(case=cases)
    def call(case: Any) -> None:
        statuses.append(case.call_and_validate(checks=FUZZ_CHECKS).status_code)

    call()
    assert statuses and max(statuses) < 500


# Inputs a generator rarely makes: each was a 500 once.
HOSTILE = {
    "huge integer": {"customer_id": "c01", "ts": "1" * 5000, "order_id": "9" * 5000},
    "instant before year 1 in UTC": {"customer_id": "c01", "ts": "0001-01-01T00:00:00+05:00", "order_id": "1"},
    "instant after year 9999 in UTC": {"customer_id": "c01", "ts": "9999-12-31T23:59:59-05:00", "order_id": "1"},
    "key longer than HBase allows": {"customer_id": "c" * 40000, "ts": "1", "order_id": "1"},
}  # fmt: skip


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_key_values_get_400_on_every_key_route(openapi_schema: Any, name: str) -> None:
    fields = HOSTILE[name]
    queries = {
        "/v1/{pipeline}/rows/get": fields,
        "/v1/{pipeline}/rows/latest": fields,
        "/v1/{pipeline}/rows/scan": {f"{group}.{k}": v for group in ("prefix", "start", "stop") for k, v in fields.items()},
    }  # fmt: skip
    for path, query in queries.items():
        case = openapi_schema[path]["GET"].Case(path_parameters={"pipeline": "orders"}, query=query)
        response = case.call_and_validate(checks=FUZZ_CHECKS)
        assert response.status_code == 400, (path, response.text[:300])
        assert len(response.json()["error"]) <= 500


# --- every type round-trips -----------------------------------------------------------------------
ALL_TYPES = {
    "s": "string", "i": "int", "l": "bigint", "d": "double", "b": "boolean", "m": "decimal(18,4)",
    "dt": "date", "t": "timestamp", "j": "map<string,bigint>", "updated_at": "timestamp",
}  # fmt: skip
ALL_SPARK = T.StructType([T.StructField("id", T.LongType())] + [
    T.StructField(n, t) for n, t in {
        "s": T.StringType(), "i": T.IntegerType(), "l": T.LongType(), "d": T.DoubleType(),
        "b": T.BooleanType(), "m": T.DecimalType(18, 4), "dt": T.DateType(), "t": T.TimestampType(),
        "j": T.MapType(T.StringType(), T.LongType()), "updated_at": T.TimestampType(),
    }.items()
])  # fmt: skip
ALL_ARROW = pa.schema([
    ("id", pa.int64()), ("s", pa.string()), ("i", pa.int32()), ("l", pa.int64()), ("d", pa.float64()),
    ("b", pa.bool_()), ("m", pa.decimal128(18, 4)), ("dt", pa.date32()), ("t", pa.timestamp("us", tz="UTC")),
    ("j", pa.map_(pa.string(), pa.int64())), ("updated_at", pa.timestamp("us", tz="UTC")),
])  # fmt: skip
_IDS = itertools.count(1)
T2001 = datetime(2001, 1, 1, tzinfo=UTC)
_utc = st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC))
RECORDS = st.fixed_dictionaries({
    "s": st.none() | st.text(max_size=20), "i": st.none() | st.integers(-(2**31), 2**31 - 1),
    "l": st.none() | st.integers(-(2**63), 2**63 - 1), "d": st.none() | st.floats(allow_nan=False),
    "b": st.none() | st.booleans(),
    "m": st.none() | st.decimals(min_value=-(10**13), max_value=10**13, places=4, allow_nan=False),
    "dt": st.none() | st.dates(min_value=date(1, 1, 1)), "t": st.none() | _utc,
    # min_size=1: the writer stores an empty map as [] (Arrow gives maps as lists of pairs)
    "j": st.none() | st.dictionaries(st.text(max_size=5), st.integers(-(2**63), 2**63 - 1), min_size=1),
    "updated_at": st.integers(0, 2**40).map(lambda ms: T2001 + timedelta(milliseconds=ms)),
})  # fmt: skip


@pytest.fixture(scope="module")
def typed_table(conn: HBaseConnection) -> dict[str, Any]:
    columns = {"c": [n for n in ALL_TYPES if n != "j"], "x": ["j"]}
    table = f"serve_types_{uuid.uuid4().hex[:8]}"
    config = HBaseSinkConfig(table=table, row_key="{id:long}", version="updated_at", columns=columns)
    ensure_table(config, conn)
    reader = TableReader(config, conn, {n: type_of_ddl(t) for n, t in ALL_TYPES.items()})
    yield {"config": config, "reader": reader}
    reader.close()
    with connect(conn) as client:
        client.delete_table(config.full_table)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(record=RECORDS)
def test_what_the_reader_returns_equals_what_was_written(typed_table: dict[str, Any], conn: HBaseConnection,
                                                         record: dict[str, Any]) -> None:  # fmt: skip
    rec = {"id": next(_IDS), **record}
    write(typed_table["config"], conn, ALL_SPARK, ALL_ARROW, [rec])
    row = typed_table["reader"].get({"id": str(rec["id"])})
    assert row is not None
    assert row.key == {"id": rec["id"]}
    assert row.columns == {n: rec[n] for n in ALL_TYPES}
    assert row.timestamp == rec["updated_at"]
    scanned, _ = typed_table["reader"].scan({"id": rec["id"]}, limit=2)
    assert scanned == [row]
