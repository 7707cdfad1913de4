"""Pure logic of serving: type mapping, page tokens, key handling, request parsing, auth, CLI parsing."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st

from headwater.cli import cli
from headwater.errors import ConfigError, ServiceUnavailable
from headwater.serving import (
    InvalidRequest,
    Row,
    TableReader,
    decode_page_token,
    encode_page_token,
    jsonable,
    type_of_ddl,
    types_from_schema,
)
from headwater.serving.api import create_app, key_params, scan_params
from headwater.serving.reader import _prefix_end
from headwater.sinks.hbase import HBaseSinkConfig
from headwater.sinks.hbase.rowkey import RowKeyTemplate
from headwater.spec import load_spec
from headwater.spec.connections import HBaseConnection

ORDERS = Path(__file__).resolve().parents[2] / "examples" / "orders.yaml"
ROW_KEY = "{salt(customer_id, 4)}|{customer_id}|{reverse_ts(ts)}|{order_id:long}"
CONN = HBaseConnection(host="127.0.0.1", port=1)
TS = datetime(2024, 5, 1, 12, 0, 0, 123000, tzinfo=UTC)


def _reader(columns: Any = None, types: dict[str, str] | None = None, row_key: str = ROW_KEY) -> TableReader:
    config = HBaseSinkConfig(type="hbase", table="t", row_key=row_key, version="ts",
                             columns=columns or {"d": ["amount", "ts"]})  # fmt: skip
    return TableReader(config, CONN, types)


# --- types ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(("ddl", "codec"), [
    ("bigint", "long"), ("BIGINT", "long"), ("int", "int"), ("smallint", "int"), ("tinyint", "int"),
    ("decimal(12,2)", "decimal"), ("decimal", "decimal"), ("timestamp", "timestamp"),
    ("timestamp_ntz", "timestamp"), ("date", "date"), ("double", "double"), ("float", "double"),
    ("boolean", "boolean"), ("string", "string"),
    ("varchar(10)", "string"), ("binary", "bytes"), ("array<struct<sku:string,qty:int>>", "json"),
    ("map<string,string>", "json"), ("struct<a:int>", "json"), (" array <int>", "json"),
])  # fmt: skip
def test_type_of_ddl(ddl: str, codec: str) -> None:
    assert type_of_ddl(ddl) == codec


def test_types_from_the_example_schema_leave_transform_columns_out() -> None:
    types = types_from_schema(load_spec(ORDERS))
    assert types["amount"] == "decimal" and types["order_id"] == "long" and types["items"] == "json"
    assert types["attrs"] == "json" and types["updated_at"] == "timestamp" and "total" not in types


def test_column_types_config_then_given_then_string() -> None:
    reader = _reader({"d": ["amount", "note"], "x": {"items": "json", "amount": "long"}}, {"amount": "decimal"})
    assert sorted(reader.cells.values()) == [("d:amount", "decimal"), ("items", "json"), ("note", "string"),
                                             ("x:amount", "long")]  # fmt: skip
    with pytest.raises(ConfigError, match="unknown type 'money'"):
        _reader(types={"amount": "money"})


# --- page tokens and prefixes ---------------------------------------------------------------------
@given(st.binary(min_size=1, max_size=64))
def test_page_token_round_trip(key: bytes) -> None:
    token = encode_page_token(key)
    assert decode_page_token(token) == key
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


@pytest.mark.parametrize("token", ["", "a b", "abc=", "x" * 5, "+/"])
def test_bad_page_token(token: str) -> None:
    with pytest.raises(InvalidRequest, match="page_token"):
        decode_page_token(token)


def test_prefix_end() -> None:
    assert _prefix_end(b"ab|") == b"ab}"
    assert _prefix_end(b"a\xff\xff") == b"b"
    assert _prefix_end(b"\xff") is None


# --- key fields -----------------------------------------------------------------------------------
def test_string_key_values_are_converted_for_their_part() -> None:
    reader = _reader()
    template = RowKeyTemplate.parse(ROW_KEY)
    want = template.encode({"customer_id": "c1", "ts": TS, "order_id": 42})
    for ts in (TS.isoformat(), "2024-05-01T12:00:00.123Z", str(int(TS.timestamp() * 1000))):
        assert reader._leading({"customer_id": "c1", "ts": ts, "order_id": " 42"}, "get") == (want, True)
    assert reader._leading({"customer_id": "c1"}, "prefix") == (template.prefix({"customer_id": "c1"}), False)
    assert reader._leading({}, "prefix") == (b"", False)


@pytest.mark.parametrize(("fields", "message"), [
    ({"customer": "c1"}, "unknown key field 'customer'; key fields: customer_id, ts, order_id"),
    ({"customer_id": "c1", "ts": TS, "order_id": "4.5"}, "key field 'order_id': '4.5' is not an integer"),
    ({"customer_id": "c1", "ts": "soon"}, "'ts'.*'soon'"),
    ({"customer_id": "c1", "order_id": 5}, "key field 'ts' is missing; a prefix needs the leading"),
    ({"ts": TS}, "key field 'customer_id' is missing"),
    ({"customer_id": "a|b"}, "contains the separator"),
])  # fmt: skip
def test_bad_key_fields_name_field_and_value(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidRequest, match=message):
        _reader()._leading(fields, "prefix")


def test_double_key_values_and_scan_limits() -> None:
    reader = _reader(row_key="{score:double}")
    assert reader._leading({"score": "1.5"}, "get")[1]
    with pytest.raises(InvalidRequest, match="'score': 'high' is not a number"):
        reader._leading({"score": "high"}, "get")
    with pytest.raises(InvalidRequest, match="limit must be >= 1"):
        reader.scan(limit=0)
    with pytest.raises(InvalidRequest, match="latest: give the entity"):
        reader.latest({}, 3)


def test_unreachable_server_names_the_address() -> None:
    with pytest.raises(ServiceUnavailable, match=r"127\.0\.0\.1:1"):
        _reader().get({"customer_id": "c1", "ts": TS, "order_id": 1})


def test_jsonable() -> None:
    columns = {"m": Decimal("1E-7"), "f": math.inf, "b": b"\x00", "j": {"a": [Decimal("2.50")]}}
    row = Row({"ts": TS, "d": date(2024, 1, 2)}, b"\x01\xff", columns, None)
    assert row.to_dict() == {
        "key": {"ts": "2024-05-01T12:00:00.123000+00:00", "d": "2024-01-02"}, "row_key_hex": "01ff",
        "columns": {"m": "0.0000001", "f": "inf", "b": "AA==", "j": {"a": ["2.50"]}}, "timestamp": None,
    }  # fmt: skip
    assert jsonable(datetime(2024, 1, 1)) == "2024-01-01T00:00:00+00:00"


# --- request parsing ------------------------------------------------------------------------------
def test_key_params() -> None:
    assert key_params([("customer_id", "c1"), ("key.n", "7"), ("n", "3")], reserved=["n"]) == {
        "customer_id": "c1", "n": "7"}  # fmt: skip
    with pytest.raises(InvalidRequest, match="'a' given more than once"):
        key_params([("a", "1"), ("key.a", "2")])


def test_scan_params() -> None:
    got = scan_params([("prefix.customer_id", "c1"), ("start.ts", "x"), ("stop.ts", "y"), ("limit", "5")],
                      reserved=["limit", "page_token"])  # fmt: skip
    assert got == {"prefix": {"customer_id": "c1"}, "start": {"ts": "x"}, "stop": {"ts": "y"}}
    for bad in ("customer_id", "prefix.", "end.ts"):
        with pytest.raises(InvalidRequest, match=f"unknown parameter '{bad}'; use prefix.<field>"):
            scan_params([(bad, "1")], reserved=["limit"])
    with pytest.raises(InvalidRequest, match="given more than once"):
        scan_params([("prefix.a", "1"), ("prefix.a", "2")])


# --- API with a stand-in reader -------------------------------------------------------------------
class FakeReader:
    """Stands in for TableReader: records calls, returns canned rows."""

    def __init__(self) -> None:
        self.key_fields = ["customer_id", "order_id"]
        self.calls: list[tuple[str, Any]] = []
        self.row = Row({"customer_id": "c1", "order_id": 7}, b"k", {"amount": Decimal("1.50")}, TS)

    def field_kind(self, name: str) -> str:
        return "long" if name == "order_id" else "string"

    def get(self, fields: dict[str, str]) -> Row | None:
        self.calls.append(("get", fields))
        if set(fields) - set(self.key_fields):
            raise InvalidRequest(f"unknown key field {sorted(set(fields) - set(self.key_fields))[0]!r}")
        return self.row if fields.get("order_id") == "7" else None

    def scan(self, prefix: Any, start: Any, stop: Any, limit: int, token: str | None) -> Any:
        self.calls.append(("scan", (prefix, start, stop, limit, token)))
        return [self.row], "next"

    def latest(self, fields: dict[str, str], n: int) -> list[Row]:
        self.calls.append(("latest", (fields, n)))
        return [self.row] * n

    def freshness(self) -> dict[str, Any]:
        return {
            "newest_event_time": TS.isoformat(),
            "rows_examined": 1,
            "complete": True,
            "version_field": "ts",
        }


@pytest.fixture
def fake() -> FakeReader:
    return FakeReader()


@pytest.fixture
def spec() -> Any:
    return load_spec(ORDERS)


def test_api_routes_and_parsing(spec: Any, fake: FakeReader, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HEADWATER_API_TOKEN", raising=False)
    client = TestClient(create_app(spec, reader=fake))
    ok = client.get("/v1/orders/rows/get", params={"customer_id": "c1", "order_id": "7"})
    assert ok.status_code == 200
    assert ok.json() == {"key": {"customer_id": "c1", "order_id": 7}, "row_key_hex": "6b",
                         "columns": {"amount": "1.50"}, "timestamp": TS.isoformat()}  # fmt: skip
    assert client.get("/v1/orders/rows/get", params={"customer_id": "c1", "order_id": "8"}).status_code == 404
    bad = client.get("/v1/orders/rows/get", params={"customer": "c1"})
    assert bad.status_code == 400 and bad.json() == {"error": "unknown key field 'customer'"}
    scan = client.get("/v1/orders/rows/scan?prefix.customer_id=c1&stop.customer_id=c2&limit=5&page_token=abc")
    assert scan.json()["next_page_token"] == "next"
    assert fake.calls[-1] == ("scan", ({"customer_id": "c1"}, {}, {"customer_id": "c2"}, 5, "abc"))
    assert client.get("/v1/orders/rows/scan?customer_id=c1").status_code == 400
    for query in ("limit=0", "limit=1001", "limit=many"):
        wrong = client.get(f"/v1/orders/rows/scan?{query}")
        assert wrong.status_code == 422 and "limit" in wrong.json()["error"]
    latest = client.get("/v1/orders/rows/latest?customer_id=c1&n=2")
    assert len(latest.json()["rows"]) == 2 and fake.calls[-1] == ("latest", ({"customer_id": "c1"}, 2))
    assert client.get("/v1/orders/freshness").json()["table"] == "demo:orders"
    unknown = client.get("/v1/shipments/freshness")
    assert unknown.status_code == 404 and "this server serves 'orders'" in unknown.json()["error"]
    assert client.get("/nowhere").json() == {"error": "Not Found"}


def test_openapi_documents_key_fields(spec: Any, fake: FakeReader) -> None:
    doc = TestClient(create_app(spec, reader=fake, token="")).get("/openapi.json").json()
    get_params = {p["name"]: p for p in doc["paths"]["/v1/{pipeline}/rows/get"]["get"]["parameters"]}
    assert get_params["order_id"]["required"] and "integer" in get_params["order_id"]["description"]
    assert get_params["order_id"]["schema"] == {"type": "integer", "minimum": -(2**63), "maximum": 2**63 - 1}
    assert get_params["customer_id"]["schema"] == {"type": "string"}
    scan_params_doc = {p["name"] for p in doc["paths"]["/v1/{pipeline}/rows/scan"]["get"]["parameters"]}
    assert {"prefix.customer_id", "start.order_id", "stop.order_id", "limit", "page_token"} <= scan_params_doc


@pytest.mark.parametrize("from_env", [False, True])
def test_bearer_token(spec: Any, fake: FakeReader, monkeypatch: pytest.MonkeyPatch, from_env: bool) -> None:
    monkeypatch.setenv("HEADWATER_API_TOKEN", "t0k" if from_env else "")
    client = TestClient(create_app(spec, reader=fake, token=None if from_env else "t0k"))
    url = "/v1/orders/freshness"
    for headers in (
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": "Basic t0k"},
        {"Authorization": "t0k"},
    ):
        denied = client.get(url, headers=headers)
        assert denied.status_code == 401 and denied.headers["www-authenticate"] == "Bearer"
    assert client.get(url, headers={"Authorization": "Bearer t0k"}).status_code == 200
    assert client.get("/healthz").status_code == 200
    assert client.get("/v1/other/freshness").status_code == 401  # auth first: no probing without a token
    assert "HTTPBearer" in client.get("/openapi.json").json()["components"]["securitySchemes"]


def test_no_token_means_no_auth(spec: Any, fake: FakeReader, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HEADWATER_API_TOKEN", raising=False)
    assert TestClient(create_app(spec, reader=fake)).get("/v1/orders/freshness").status_code == 200


# --- CLI ------------------------------------------------------------------------------------------
def test_query_needs_exactly_one_mode() -> None:
    runner = CliRunner()
    none = runner.invoke(cli, ["query", str(ORDERS)])
    assert none.exit_code == 2 and "exactly one of --key, --prefix or --latest" in none.output
    both = runner.invoke(cli, ["query", str(ORDERS), "--key", "a=1", "--prefix", "a=1"])
    assert both.exit_code == 2
    bad_pair = runner.invoke(cli, ["query", str(ORDERS), "--key", "customer_id"])
    assert bad_pair.exit_code == 2 and "expected FIELD=VALUE" in bad_pair.output
    bad_type = runner.invoke(cli, ["query", str(ORDERS), "--key", "a=1", "--type", "total=money"])
    assert bad_type.exit_code == 2 and "unknown type 'money'" in bad_type.output


def test_query_reports_bad_key_and_unreachable_hbase_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEADWATER_THRIFT2_PORT", "1")  # the spec's hbase connection defaults to the stack's
    runner = CliRunner()
    bad = runner.invoke(cli, ["query", str(ORDERS), "--key", "customer_id=c1", "--key", "order_id=x"])
    assert bad.exit_code == 2 and "error: get: key field 'order_id': 'x' is not an integer" in bad.output
    down = runner.invoke(cli, ["query", str(ORDERS), "--latest", "customer_id=c1"])
    assert down.exit_code == 4 and "not reachable at 127.0.0.1:1" in down.output


def test_hbase_plan_offline() -> None:
    out = CliRunner().invoke(cli, ["hbase", "plan", "--offline", str(ORDERS)])
    assert out.exit_code == 0, out.output
    assert "table demo:orders (not checked)" in out.output
    assert "regions: 4, split points: 01 02 03" in out.output and "row key: {salt(customer_id, 4)}" in out.output


# --- serve: no open port without a token ------------------------------------------------------------
@pytest.mark.parametrize(("host", "loopback"), [
    ("127.0.0.1", True), ("127.8.0.1", True), ("localhost", True), ("LOCALHOST", True), ("::1", True),
    ("[::1]", True), ("0.0.0.0", False), ("::", False), ("10.1.2.3", False), ("example.org", False),
])  # fmt: skip
def test_is_loopback(host: str, loopback: bool) -> None:
    from headwater.cli.serve import is_loopback

    assert is_loopback(host) is loopback


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """uvicorn.run replaced by a recorder: the calls ``serve`` would have made."""
    import uvicorn

    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: calls.append({"app": app, **kwargs}))
    monkeypatch.delenv("HEADWATER_API_TOKEN", raising=False)
    return calls


def test_serve_refuses_a_public_address_without_a_token(served: list[dict[str, Any]]) -> None:
    out = CliRunner().invoke(cli, ["serve", str(ORDERS), "--host", "0.0.0.0"])
    assert out.exit_code == 2 and served == []
    assert "error: --host 0.0.0.0: refusing to serve on a non-loopback address without a bearer token" in out.output
    assert "--token-env VAR or HEADWATER_API_TOKEN" in out.output and "--insecure" in out.output
    ok = CliRunner().invoke(cli, ["serve", str(ORDERS), "--host", "0.0.0.0", "--insecure", "--port", "8181"])
    assert ok.exit_code == 0, ok.output
    assert [(c["host"], c["port"]) for c in served] == [("0.0.0.0", 8181)] and "(no auth)" in ok.output
    local = CliRunner().invoke(cli, ["serve", str(ORDERS)])  # the default, 127.0.0.1, needs neither
    assert local.exit_code == 0 and served[-1]["host"] == "127.0.0.1"


@pytest.mark.parametrize("via", ["default", "token-env"])
def test_serve_with_a_token_on_a_public_address(served: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch,
                                                via: str) -> None:  # fmt: skip
    secret = "serve-token-Qv3"
    monkeypatch.setenv("HEADWATER_API_TOKEN" if via == "default" else "MY_TOKEN", secret)
    args = ["serve", str(ORDERS), "--host", "0.0.0.0", *(["--token-env", "MY_TOKEN"] if via == "token-env" else [])]
    out = CliRunner().invoke(cli, args)
    assert out.exit_code == 0, out.output
    assert "(bearer token required)" in out.output and secret not in out.output
    client = TestClient(served[-1]["app"])
    assert client.get("/v1/orders/freshness").status_code == 401  # refused before any HBase call
    assert secret not in client.get("/openapi.json").text


def test_serve_token_env_must_be_set(served: list[dict[str, Any]]) -> None:
    out = CliRunner().invoke(cli, ["serve", str(ORDERS), "--token-env", "HW_UNSET_TOKEN_VAR"])
    assert out.exit_code == 2 and "--token-env HW_UNSET_TOKEN_VAR: the environment variable is not set" in out.output
    assert served == []


@pytest.mark.parametrize(("fields", "message"), [
    ({"customer_id": "c1", "ts": "1" * 5000}, r"'ts': '1111.*\(5000 characters\) is out of range for a 64-bit"),
    ({"customer_id": "c1", "ts": TS, "order_id": "9" * 5000}, r"'order_id': .*out of range for a 64-bit integer"),
    ({"customer_id": "c1", "ts": TS, "order_id": "9" * 30}, "out of range for a 64-bit signed integer"),
    ({"customer_id": "c1", "ts": "0001-01-01T00:00:00+05:00"}, "'ts'.*outside the years 1-9999 in UTC"),
    ({"customer_id": "c1", "ts": "9999-12-31T23:59:59-05:00"}, "outside the years 1-9999 in UTC"),
    # 2 salt digits + "|" + 40000 + "|": over HBase's limit
    ({"customer_id": "x" * 40000}, "the key is 40004 bytes; HBase row keys are at most 32767"),
    ({"c" * 5000: "1"}, r"unknown key field 'ccc.*\(5000 characters\); key fields"),
])  # fmt: skip
def test_client_input_that_cannot_be_a_key_is_invalid_not_a_crash(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidRequest, match=message) as err:
        _reader().get(fields) if len(fields) == 3 else _reader()._leading(fields, "prefix")
    assert len(str(err.value)) <= 500


def test_long_client_values_are_answered_with_400(spec: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HEADWATER_API_TOKEN", raising=False)
    reader = _reader(row_key="{customer_id}|{order_id:long}")
    client = TestClient(create_app(spec, reader=reader), raise_server_exceptions=False)
    for params in (
        {"customer_id": "c1", "order_id": "7" * 5000},
        {"prefix.customer_id": "c", "page_token": "A" * 50000},
    ):
        url = "/v1/orders/rows/get" if "order_id" in params else "/v1/orders/rows/scan"
        got = client.get(url, params=params)
        assert got.status_code == 400 and len(got.json()["error"]) <= 500, got.text
