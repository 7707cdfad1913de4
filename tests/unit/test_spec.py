"""Tests of the pipeline spec: models, loader (interpolation, error messages) and JSON schema."""

from __future__ import annotations

import pickle
import textwrap
from collections.abc import Iterator
from typing import Any, Literal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from headwater import plugins
from headwater.errors import ConfigError
from headwater.sinks.base import SinkConfig
from headwater.sources.base import SourceConfig
from headwater.spec import PipelineSpec, SpecError, load_spec, load_spec_text, spec_json_schema
from headwater.transforms.base import TransformConfig


class FakeSource:
    class Config(SourceConfig):
        type: Literal["fake"]
        table: str
        batch: int = 10
        mode: Literal["full", "incremental"] = "incremental"


class FakeSql:
    class Config(TransformConfig):
        type: Literal["fakesql"]
        query: str


class FakeSelect:
    class Config(TransformConfig):
        type: Literal["fakeselect"]
        columns: list[str]


class FakeSink:
    class Config(SinkConfig):
        type: Literal["fakesink"]
        table: str
        row_key: list[str]


@pytest.fixture(autouse=True, scope="module")
def fake_plugins() -> Iterator[None]:
    saved = {kind: dict(registered) for kind, registered in plugins._registered.items()}
    plugins.register("source", "fake", FakeSource)
    plugins.register("transform", "fakesql", FakeSql)
    plugins.register("transform", "fakeselect", FakeSelect)
    plugins.register("sink", "fakesink", FakeSink)
    yield
    for kind, registered in saved.items():
        plugins._registered[kind].clear()
        plugins._registered[kind].update(registered)


@pytest.fixture(autouse=True)
def local_stack_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HOST", "KAFKA_PORT", "THRIFT_PORT", "METASTORE_PORT", "HOME"):
        monkeypatch.delenv(f"HEADWATER_{name}", raising=False)


GOOD = textwrap.dedent(
    """\
    name: orders
    source:
      type: fake
      table: db.orders
    topic:
      name: orders.v1
      key: [id]
    transforms:
      - type: fakesql
        query: select * from src
      - type: fakeselect
        columns: [id, amount]
    sink:
      type: fakesink
      table: ns:orders
      row_key: [id]
    dead_letter:
      topic: orders.dlq
    """
)


def load(text: str, env: dict[str, str] | None = None) -> PipelineSpec:
    return load_spec_text(text, "pipeline.yaml", env={} if env is None else env)


def error_of(text: str, env: dict[str, str] | None = None) -> SpecError:
    with pytest.raises(SpecError) as info:
        load(text, env)
    return info.value


def edit(old: str, new: str) -> str:
    assert old in GOOD
    return GOOD.replace(old, new, 1)


def known(kind: plugins.Kind) -> str:
    return ", ".join(plugins.names(kind))


# --- good specs ---------------------------------------------------------------------------------------


def test_good_spec_resolves_plugin_configs_and_defaults() -> None:
    spec = load(GOOD)
    assert isinstance(spec, PipelineSpec)
    assert isinstance(spec.source, FakeSource.Config)
    assert (spec.source.table, spec.source.batch, spec.source.mode) == ("db.orders", 10, "incremental")
    assert [type(t).__name__ for t in spec.transforms] == ["Config", "Config"]
    assert isinstance(spec.transforms[0], FakeSql.Config)
    assert isinstance(spec.transforms[1], FakeSelect.Config)
    assert isinstance(spec.sink, FakeSink.Config)
    assert spec.sink.row_key == ["id"]
    assert (spec.topic.name, spec.topic.partitions, spec.topic.replication, spec.topic.key) == (
        "orders.v1",
        2,
        None,  # the cluster's default.replication.factor
        ["id"],
    )
    assert (spec.dead_letter.topic, spec.dead_letter.partitions) == ("orders.dlq", 1)
    assert spec.schema_ is None
    assert spec.description == ""
    assert spec.state_topic == "_headwater_state"
    process = spec.process
    assert (process.trigger, process.trigger_ms, process.max_offsets_per_trigger) == (
        "500 milliseconds",
        500,
        200000,
    )
    assert (process.checkpoint, process.starting_offsets) == (None, "earliest")


def test_connections_default_to_local_stack(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEADWATER_KAFKA_PORT", "19092")
    monkeypatch.setenv("HEADWATER_THRIFT2_PORT", "19091")
    connections = load(GOOD).connections
    assert connections.kafka.bootstrap_servers == "127.0.0.1:19092"
    assert (connections.hbase.host, connections.hbase.port) == ("127.0.0.1", 19091)
    assert connections.hbase.transport == "buffered"
    assert connections.hive.metastore_uri == "thrift://127.0.0.1:9083"
    assert connections.hive.warehouse_dir is not None
    assert connections.hive.warehouse_dir.endswith("warehouse")
    assert connections.spark.master == "local[2]"


def test_given_connections_are_used_unchanged() -> None:
    text = GOOD + textwrap.dedent(
        """\
        connections:
          kafka:
            bootstrap_servers: k1:9092,k2:9092
            options: {security.protocol: SASL_SSL, enable.idempotence: true}
          hbase: {host: thrift.prod, transport: framed, protocol: compact}
          spark:
            master: yarn
            conf: {spark.sql.shuffle.partitions: 8}
        """
    )
    connections = load(text).connections
    assert connections.kafka.client_config() == {
        "bootstrap.servers": "k1:9092,k2:9092",
        "security.protocol": "SASL_SSL",
        "enable.idempotence": "true",
    }
    assert connections.kafka.spark_options()["kafka.security.protocol"] == "SASL_SSL"
    assert (connections.hbase.host, connections.hbase.port, connections.hbase.transport) == (
        "thrift.prod",
        9091,
        "framed",
    )
    assert connections.spark.conf == {"spark.sql.shuffle.partitions": "8"}
    assert connections.hive.metastore_uri.startswith("thrift://")  # left out: local stack


def test_schema_trigger_and_process_settings() -> None:
    text = edit("name: orders\n", "name: orders\nschema: {id: bigint, amount: ' decimal(12,2) '}\n")
    text += "process: {trigger: 500 ms, max_offsets_per_trigger: null, starting_offsets: latest}\n"
    spec = load(text)
    assert spec.schema_ == {"id": "bigint", "amount": "decimal(12,2)"}
    assert (spec.process.trigger, spec.process.trigger_ms) == ("500 milliseconds", 500)
    assert spec.process.max_offsets_per_trigger is None
    assert spec.model_dump(by_alias=True)["schema"] == spec.schema_


def test_load_spec_from_file(tmp_path: Any) -> None:
    path = tmp_path / "pipeline.yaml"
    path.write_text(GOOD.replace("orders.dlq", "orders dlq"))
    with pytest.raises(ConfigError) as info:
        load_spec(path)
    assert str(info.value).startswith(f"{path}:18: dead_letter.topic: invalid Kafka topic name")
    path.write_text(GOOD)
    assert load_spec(path).name == "orders"
    with pytest.raises(ConfigError, match="cannot read spec"):
        load_spec(tmp_path / "missing.yaml")


def test_only_named_plugins_are_imported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(plugins._BUILTINS["sink"], "hbase", "headwater_no_such_module:Nope")
    monkeypatch.delitem(plugins._registered["sink"], "hbase", raising=False)
    assert load(GOOD).name == "orders"  # never touched the broken hbase entry
    message = str(error_of(edit("type: fakesink", "type: hbase")))
    assert message.startswith(
        "pipeline.yaml:14: sink.type: sink plugin 'hbase' could not be imported "
        "(headwater_no_such_module:Nope): No module named 'headwater_no_such_module'"
    )


def test_spec_pickles() -> None:
    spec = load(GOOD)
    again = pickle.loads(pickle.dumps(spec))
    assert again == spec
    assert type(again) is type(spec)


# --- bad specs: exact messages ----------------------------------------------------------------------------

VALID_TOP = ", ".join(
    [
        "connections",
        "dead_letter",
        "description",
        "expectations",
        "ingest",
        "metrics",
        "name",
        "process",
        "schema",
        "sink",
        "sinks",
        "source",
        "state_topic",
        "topic",
        "transforms",
    ]
)

BAD = {
    "unknown top-level key": (
        GOOD + "sinkz: {}\n",
        f"pipeline.yaml:19: sinkz: unknown field 'sinkz' (did you mean 'sink'?); valid: {VALID_TOP} (got {{}})",
    ),
    "unknown field in source": (
        edit("  table: db.orders", "  tabel: db.orders"),
        "pipeline.yaml:2: source.table: Field required\n"
        "pipeline.yaml:4: source.tabel: unknown field 'tabel' (did you mean 'table'?); "
        "valid: batch, mode, table, type (got 'db.orders')",
    ),
    "wrong type": (
        edit("  table: db.orders", "  table: db.orders\n  batch: many"),
        "pipeline.yaml:5: source.batch: Input should be a valid integer, "
        "unable to parse string as an integer (got 'many')",
    ),
    "bad enum": (
        GOOD + "process: {starting_offsets: middle}\n",
        "pipeline.yaml:19: process.starting_offsets: Input should be 'earliest' or 'latest' (got 'middle')",
    ),
    "bad enum in plugin": (
        edit("  table: db.orders", "  table: db.orders\n  mode: half"),
        "pipeline.yaml:5: source.mode: Input should be 'full' or 'incremental' (got 'half')",
    ),
    "missing required field": (
        GOOD.replace("dead_letter:\n  topic: orders.dlq\n", ""),
        "pipeline.yaml: dead_letter: Field required",
    ),
    "missing field in plugin": (
        edit("  row_key: [id]\n", ""),
        "pipeline.yaml:13: sink.row_key: Field required",
    ),
    "bad topic name": (
        edit("name: orders.v1", "name: orders v1"),
        "pipeline.yaml:6: topic.name: invalid Kafka topic name: use 1 to 249 of the characters "
        "a-z A-Z 0-9 . _ - (got 'orders v1')",
    ),
    "bad trigger": (
        GOOD + "process:\n  trigger: 1 fortnight\n",
        "pipeline.yaml:20: process.trigger: expected '<number> <unit>' with unit ms, millisecond(s), s, sec, "
        "second(s), min, minute(s) (got '1 fortnight')",
    ),
    "bad pipeline name": (
        edit("name: orders\n", "name: Orders\n"),
        "pipeline.yaml:1: name: must be a lowercase letter followed by up to 62 of a-z 0-9 _ - (got 'Orders')",
    ),
    "empty key": (
        edit("key: [id]", "key: []"),
        "pipeline.yaml:7: topic.key: List should have at least 1 item after validation, not 0 (got [])",
    ),
    "key not in schema": (
        edit("name: orders\n", "name: orders\nschema: {order_id: bigint}\n"),
        "pipeline.yaml:6: topic: key columns not in the declared schema: id",
    ),
    "bad schema column": (
        edit("name: orders\n", "name: orders\nschema: {id: bigint, 2nd: int, x: ''}\n"),
        "pipeline.yaml:2: schema: column names must be identifiers (letters, digits, _; not starting with "
        "a digit): 2nd (got {'id': 'bigint', '2nd': 'int', 'x': ''})",
    ),
    "same topic twice": (
        edit("topic: orders.dlq", "topic: orders.v1"),
        "pipeline.yaml:17: dead_letter: dead-letter topic must differ from topic.name",
    ),
    "not a string in conf": (
        GOOD + "connections:\n  spark:\n    conf: {spark.x: [1]}\n",
        "pipeline.yaml:21: connections.spark.conf['spark.x']: Input should be a valid string (got [1])",
    ),
    "yaml syntax error": (
        edit("  table: db.orders", "  table: [db.orders"),
        "pipeline.yaml:5:6: invalid YAML: while parsing a flow sequence; expected ',' or ']', but got ':'",
    ),
    "duplicate key": (
        edit("  table: db.orders", "  table: db.orders\n  table: db.other"),
        "pipeline.yaml:5: source.table: duplicate key 'table'",
    ),
    "top level not a mapping": ("- 1\n", "pipeline.yaml: top level must be a mapping, got list"),
    "empty document": ("", "pipeline.yaml: top level must be a mapping, got an empty document"),
    "unset env var": (
        edit("table: ns:orders", "table: ${HBASE_NS}:orders"),
        "pipeline.yaml:15: sink.table: environment variable HBASE_NS is not set",
    ),
    "malformed variable": (
        edit("table: ns:orders", "table: ${HBASE NS}"),
        "pipeline.yaml:15: sink.table: bad variable reference: use ${NAME}, ${NAME:-default} or $${",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_spec_message(case: str) -> None:
    text, expected = BAD[case]
    assert str(error_of(text)) == expected


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            "type: fake\n",
            "type: hvie\n",
            "pipeline.yaml:3: source.type: unknown source type 'hvie'; known: {source}",
        ),
        (
            "  - type: fakeselect",
            "  - type: selcet",
            "pipeline.yaml:11: transforms[1].type: unknown transform type 'selcet'; known: {transform}",
        ),
        ("type: fakesink", "kind: fakesink", "pipeline.yaml:13: sink.type: missing sink type; known: {sink}"),
        (
            "  - type: fakesql\n    query: select * from src\n",
            "  - 5\n",
            "pipeline.yaml:9: transforms[0]: expected a mapping with a 'type' naming a transform plugin "
            "(known: {transform}) (got 5)",
        ),
    ],
)
def test_bad_plugin_type(old: str, new: str, expected: str) -> None:
    names = {kind: known(kind) for kind in ("source", "transform", "sink")}
    assert str(error_of(edit(old, new))) == expected.format(**names)


def test_all_problems_reported_with_structure() -> None:
    text = edit("name: orders\n", "name: Orders\n").replace("query: select * from src", "qeury: x")
    long_value = "x " * 60
    error = error_of(text + "process: {trigger: soon}\n" + f"state_topic: '{long_value}'\n")
    lines = str(error).splitlines()
    assert len(lines) == len(error.problems) == 5
    assert lines[0].startswith("pipeline.yaml:1: name: ")
    by_path = {problem["path"]: problem for problem in error.problems}
    assert set(by_path) == {
        "name",
        "state_topic",
        "transforms[0].query",
        "transforms[0].qeury",
        "process.trigger",
    }
    assert by_path["transforms[0].query"]["line"] == 9
    assert by_path["transforms[0].qeury"]["line"] == 10
    assert by_path["transforms[0].qeury"]["type"] == "extra_forbidden"
    assert by_path["process.trigger"]["input"] == "soon"
    assert by_path["state_topic"]["text"].endswith(f"(got {repr(long_value)[:77]}...)")


def test_every_problem_is_a_config_error() -> None:
    assert issubclass(SpecError, ConfigError)
    assert error_of("- 1\n").exit_code == 2


# --- interpolation ----------------------------------------------------------------------------------------


def test_env_default_and_value() -> None:
    text = edit("table: ns:orders", "table: ${HBASE_NS:-dev}:orders")
    assert load(text).sink.table == "dev:orders"  # type: ignore[attr-defined]
    assert load(text, {"HBASE_NS": "prod"}).sink.table == "prod:orders"  # type: ignore[attr-defined]
    assert load(text, {"HBASE_NS": ""}).sink.table == "dev:orders"  # type: ignore[attr-defined]


def test_env_from_os_environ_and_typed_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HW_PARTITIONS", "6")
    monkeypatch.setenv("HW_SOURCE", "fake")
    text = edit("key: [id]", "key: [id]\n  partitions: ${HW_PARTITIONS}").replace(
        "type: fake\n", "type: ${HW_SOURCE}\n"
    )
    spec = load_spec_text(text)
    assert spec.topic.partitions == 6
    assert isinstance(spec.source, FakeSource.Config)


def test_dollar_escape() -> None:
    spec = load(GOOD + "description: 'cost $${HOME} and ${A:-$5} $$ $X'\n", {"HOME": "/root"})
    assert spec.description == "cost ${HOME} and $5 $$ $X"


def test_env_value_cannot_inject_yaml() -> None:
    spec = load(GOOD + "description: ${D}\n", {"D": "x\nsink: {type: other}"})
    assert spec.description == "x\nsink: {type: other}"
    assert isinstance(spec.sink, FakeSink.Config)


@given(value=st.text(), prefix=st.text(alphabet="abc -:/"), suffix=st.text(alphabet="abc -:/"))
def test_interpolation_round_trips(value: str, prefix: str, suffix: str) -> None:
    text = GOOD + f"description: '{prefix}${{HW_VALUE}}{suffix}'\n"
    assert load(text, {"HW_VALUE": value}).description == prefix + value + suffix


# --- JSON schema -------------------------------------------------------------------------------------------


def test_json_schema_has_real_plugins() -> None:
    pytest.importorskip("headwater.sources.hive")
    pytest.importorskip("headwater.sinks.hbase")
    schema = spec_json_schema()
    defs = schema["$defs"]

    def config_of(kind: str) -> dict[str, Any]:
        matches = [d for d in defs.values() if d.get("properties", {}).get("type", {}).get("const") == kind]
        assert len(matches) == 1, kind
        return dict(matches[0])

    assert config_of("hive")["additionalProperties"] is False
    assert config_of("hbase")["additionalProperties"] is False
    assert config_of("fake")  # registered plugins are in the unions too
    assert "schema" in schema["properties"]
    assert set(schema["required"]) >= {"name", "source", "dead_letter"}  # `topic`: unless the source is one
    assert schema["anyOf"] == [{"required": ["sink"]}, {"required": ["sinks"]}]
    assert "oneOf" in schema["properties"]["transforms"]["items"]


def test_several_sinks_by_name() -> None:
    """`sinks:` lists several sinks; `sink` is the first; names must differ; not both forms at once."""
    from headwater.errors import ConfigError

    listed = ("sinks:\n  - {type: fakesink, name: serving, table: 'ns:orders', row_key: [id]}\n"
              "  - {type: fakesink, name: archive, table: 'ns:archive', row_key: [id]}\n")  # fmt: skip
    two = GOOD.replace("sink:\n  type: fakesink\n  table: ns:orders\n  row_key: [id]\n", listed)
    assert listed in two
    spec = load(two)
    assert [s.name for s in spec.sinks] == ["serving", "archive"] and spec.sink is spec.sinks[0]
    with pytest.raises(ConfigError, match="sink names must differ: serving used twice"):
        load(two.replace("name: archive", "name: serving"))
    with pytest.raises(ConfigError, match="give `sink` or `sinks`, not both"):
        load(two + "sink: {type: fakesink, table: 'ns:x', row_key: [id]}\n")
    with pytest.raises(ConfigError, match="a pipeline needs a sink"):
        load(two.replace(listed, ""))


def test_a_kafka_source_is_the_pipelines_topic() -> None:
    """A source that is a Kafka topic gives the spec its topic (no ingest stage, no `topic:` needed)."""
    from headwater.errors import ConfigError

    text = GOOD.replace("source:\n  type: fake\n  table: db.orders\ntopic:\n  name: orders.v1\n  key: [id]\n",
                        "source: {type: kafka, topic: app.events, key_fields: [id]}\n")  # fmt: skip
    assert "app.events" in text and "orders.v1" not in text
    spec = load(text)
    assert (spec.topic.name, spec.topic.key) == ("app.events", ["id"])
    with pytest.raises(ConfigError, match=r"the source is topic app\.events"):
        load(text + "topic: {name: other, key: [id]}\n")
    with pytest.raises(ConfigError, match="`topic` is required"):
        load(GOOD.replace("topic:\n  name: orders.v1\n  key: [id]\n", ""))
