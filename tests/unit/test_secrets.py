"""Secrets in a spec never reach output (errors, repr, JSON, progress files, summary, logs), yet reach the clients."""

from __future__ import annotations

import json
import logging
import pickle
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from headwater import kafka, redact
from headwater.cli import cli
from headwater.observability.progress import ProgressFile, read_progress
from headwater.observability.summary import progress_line, render, summarize
from headwater.redact import is_secret_name
from headwater.spec import SpecError, load_spec_text
from headwater.spec.connections import KafkaConnection

ORDERS = Path(__file__).resolve().parents[2] / "examples" / "orders.yaml"
PASSWORD = "pw-Kx81-unlikely"
KEY_PASSWORD = "kp-Zq42-unlikely"
JAAS = 'org.apache.kafka.common.security.plain.PlainLoginModule required username="app" password="jaas-Wm7"'
S3_SECRET = "s3-Yy93-unlikely"
TOKEN = "tok-Hd55-unlikely"
SECRETS = [PASSWORD, KEY_PASSWORD, JAAS, "jaas-Wm7", S3_SECRET]


def _doc(**connections: Any) -> dict[str, Any]:
    doc = yaml.safe_load(ORDERS.read_text())
    doc["connections"] = connections
    return doc


def _good_connections() -> dict[str, Any]:
    return {
        "kafka": {"bootstrap_servers": "broker:9093", "options": {
            "security.protocol": "SASL_SSL", "sasl.mechanism": "PLAIN", "sasl.username": "app",
            "sasl.password": PASSWORD, "ssl.key.password": KEY_PASSWORD, "sasl.jaas.config": JAAS,
            "key.serializer": "org.apache.kafka.common.serialization.StringSerializer", "linger.ms": 5,
        }},
        "spark": {"conf": {"spark.hadoop.fs.s3a.secret.key": S3_SECRET, "spark.sql.shuffle.partitions": 8}},
    }  # fmt: skip


def _assert_clean(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text


# --- the rule -------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", [
    "sasl.password", "ssl.key.password", "ssl.keystore.password", "ssl.truststore.password", "sasl.jaas.config",
    "sasl.oauthbearer.client.secret", "sasl.oauthbearer.config", "ssl.keystore.key", "ssl.key.pem",
    "sasl.oauthbearer.assertion.private.key.pem", "sasl.oauthbearer.assertion.private.key.passphrase",
    "api.key", "api_key", "apiKey", "spark.ssl.keyStorePassword", "spark.hadoop.fs.s3a.secret.key",
    "spark.hadoop.fs.s3a.access.key", "spark.hadoop.fs.s3a.session.token", "spark.authenticate.secret",
    "spark.kafka.clusters.a.sasl.jaas.config", "client_secret", "TOKEN",
])  # fmt: skip
def test_secret_names(name: str) -> None:
    assert is_secret_name(name)


@pytest.mark.parametrize("name", [
    "key", "key.serializer", "key.deserializer", "value.serializer", "row_key", "ssl.key.location",
    "ssl.keystore.location", "ssl.keystore.type", "ssl.certificate.pem", "ssl.ca.location", "sasl.username",
    "sasl.mechanism", "security.protocol", "sasl.oauthbearer.token.endpoint.url", "sasl.kerberos.keytab",
    "sasl.login.callback.handler.class", "spark.sql.shuffle.partitions", "bootstrap.servers", "partition.key",
    "keystore", "",
])  # fmt: skip
def test_not_secret_names(name: str) -> None:
    assert not is_secret_name(name)


# --- the spec model -------------------------------------------------------------------------------
def test_spec_holds_secrets_hidden_but_clients_get_the_real_values() -> None:
    spec = load_spec_text(yaml.safe_dump(_doc(**_good_connections())))
    conn = spec.connections.kafka
    for text in (repr(spec), str(spec), spec.model_dump_json(), json.dumps(spec.model_dump(mode="json")),
                 repr(conn), str(conn.options), repr(spec.connections.spark)):  # fmt: skip
        _assert_clean(text)
    assert spec.model_dump(mode="json")["connections"]["kafka"]["options"]["sasl.password"] == "***"
    assert "Secret('***')" in repr(conn)
    # what the clients are configured with: the real values, untouched; non-secrets stay plain strings
    config = kafka.client_config(conn, **{"group.id": "g"})
    assert config["sasl.password"] == PASSWORD and config["ssl.key.password"] == KEY_PASSWORD
    assert config["sasl.jaas.config"] == JAAS and config["group.id"] == "g" and config["linger.ms"] == "5"
    assert config["bootstrap.servers"] == "broker:9093" and config["sasl.username"] == "app"
    assert all(type(v) is str for v in config.values() if v != "g")
    spark = kafka.spark_options(conn)
    assert spark["kafka.sasl.password"] == PASSWORD and spark["kafka.sasl.jaas.config"] == JAAS
    assert spark["kafka.key.serializer"].endswith("StringSerializer")
    assert spec.connections.spark.spark_conf() == {"spark.hadoop.fs.s3a.secret.key": S3_SECRET,
                                                   "spark.sql.shuffle.partitions": "8"}  # fmt: skip
    # the spec goes to Spark executors pickled: the value survives, still hidden
    again = pickle.loads(pickle.dumps(spec))
    assert kafka.client_config(again.connections.kafka)["sasl.password"] == PASSWORD
    _assert_clean(repr(again))


def test_confluent_kafka_accepts_the_config() -> None:
    from confluent_kafka.admin import AdminClient

    conn = KafkaConnection(bootstrap_servers="127.0.0.1:1", options={"sasl.password": PASSWORD,
                           "sasl.username": "u", "security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "PLAIN"})  # fmt: skip
    AdminClient(kafka.client_config(conn))  # librdkafka refuses a value that is not a plain string


# --- validation errors ----------------------------------------------------------------------------
def test_a_wrong_spec_with_secrets_shows_them_as_stars() -> None:
    conns = _good_connections()
    options = conns["kafka"]["options"]
    options["sasl.password"] = [PASSWORD]  # wrong type: the error shows the value, masked
    options["api.key"] = {"nested": KEY_PASSWORD}  # a mapping where a string belongs
    options["retries"] = [{"password": S3_SECRET}]  # a secret-named key inside another value
    conns["kafka"]["bootstrap_servers"] = 9093.5  # wrong, not a secret: shown
    conns["kafka"]["bogus"] = PASSWORD  # an unknown field carrying a secret value
    conns["spark"]["conf"] = f"spark.hadoop.fs.s3a.secret.key={S3_SECRET}"  # not a mapping at all
    doc = _doc(**conns)
    doc["description"] = ["see", KEY_PASSWORD]  # a secret pasted elsewhere is masked too
    doc["name"] = "Bad Name"
    with pytest.raises(SpecError) as err:
        load_spec_text(yaml.safe_dump(doc), "pipeline.yaml")
    text = str(err.value)
    _assert_clean(text)
    _assert_clean(repr(err.value.problems))
    by_path = {p["path"]: p for p in err.value.problems}
    assert "(got 'Bad Name')" in by_path["name"]["text"]  # other values are still shown
    assert "(got 9093.5)" in by_path["connections.kafka.bootstrap_servers"]["text"]
    assert by_path["connections.kafka.options['sasl.password']"]["text"].endswith("(got '***')")
    assert by_path["connections.kafka.options['sasl.password']"]["input"] == "***"
    assert by_path["connections.kafka.options['api.key']"]["text"].endswith("(got '***')")
    assert "(got [{'password': '***'}])" in by_path["connections.kafka.options.retries"]["text"]
    assert "(got '***')" in by_path["connections.kafka.bogus"]["text"]
    assert by_path["connections.spark.conf"]["text"].endswith("(got '***')")
    assert "(got ['see', '***'])" in by_path["description"]["text"]
    assert len(err.value.problems) == 8


def test_cli_validate_prints_no_secret(tmp_path: Path) -> None:
    conns = _good_connections()
    conns["kafka"]["options"]["sasl.password"] = {"x": PASSWORD}
    conns["kafka"]["extra"] = JAAS
    spec = tmp_path / "bad.yaml"
    spec.write_text(yaml.safe_dump(_doc(**conns)))
    out = CliRunner().invoke(cli, ["validate", str(spec)])
    assert out.exit_code == 2 and "connections.kafka.options['sasl.password']" in out.output
    assert "(got '***')" in out.output
    _assert_clean(out.output)


# --- progress, summary, logs ----------------------------------------------------------------------
def test_progress_file_and_summary_never_hold_a_secret(tmp_path: Path) -> None:
    load_spec_text(yaml.safe_dump(_doc(**_good_connections())))  # registers the spec's secrets
    progress = ProgressFile(tmp_path / "process.progress.json", "process")
    progress.set(state="retrying", last_error=f"SASL authentication failed with password {PASSWORD}",
                 last={"sasl.jaas.config": "anything", "detail": [KEY_PASSWORD]})  # fmt: skip
    progress.add(rows_in=5)
    progress.flush()
    raw = (tmp_path / "process.progress.json").read_text()
    _assert_clean(raw)
    data = read_progress(tmp_path / "process.progress.json")
    assert data is not None and data["last_error"] == "SASL authentication failed with password ***"
    assert data["last"] == {"sasl.jaas.config": "***", "detail": ["***"]} and data["counters"]["rows_in"] == 5
    # a progress file written by an older version, with the secret in it: the summary masks it
    (tmp_path / "ingest.progress.json").write_text(json.dumps({"state": f"failed: {PASSWORD}", "counters": {}}))
    summary = summarize(tmp_path)
    for text in (render(summary), progress_line(tmp_path), json.dumps(summary)):
        _assert_clean(text)
    assert "ingest[failed: ***]" in progress_line(tmp_path)


def test_log_records_are_redacted(caplog: pytest.LogCaptureFixture) -> None:
    load_spec_text(yaml.safe_dump(_doc(**_good_connections())))
    log = logging.getLogger("headwater.test_secrets")
    with caplog.at_level(logging.INFO, logger="headwater.test_secrets"):
        log.info("connecting with %s and %s", PASSWORD, {"jaas": JAAS})
        try:
            raise RuntimeError(f"client said: bad password {KEY_PASSWORD}")
        except RuntimeError:
            log.exception("failed")
    assert len(caplog.records) == 2
    assert caplog.records[0].getMessage() == "connecting with *** and {'jaas': '***'}"
    _assert_clean(caplog.text)
    assert "client said: bad password ***" in caplog.text


def test_cli_error_line_is_redacted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from headwater.errors import ServiceUnavailable

    spec = tmp_path / "ok.yaml"
    spec.write_text(yaml.safe_dump(_doc(**_good_connections())))

    def refuse(conn: KafkaConnection, timeout: float = 10.0) -> None:
        raise ServiceUnavailable(f"Kafka refused {kafka.client_config(conn)}")  # the worst case: a config echoed

    monkeypatch.setattr(kafka, "check_reachable", refuse)
    out = CliRunner().invoke(cli, ["dlq", "show", str(spec)])
    assert out.exit_code == 4 and "error: Kafka refused" in out.output
    assert "'sasl.password': '***'" in out.output
    _assert_clean(out.output)


def test_redact_helpers() -> None:
    redact.register(["abc", TOKEN])  # too short to search for: "abc" stays
    assert redact.redact(f"abc {TOKEN}!") == "abc ***!"
    assert redact.redact("x-y-z-w", ["y-z-"]) == "x-***w"
    assert redact.mask_secrets({"a": [{"sasl.password": 1}], "b": (1,)}) == {"a": [{"sasl.password": "***"}],
                                                                             "b": (1,)}  # fmt: skip


def test_a_formatter_reading_the_exception_itself_sees_it_redacted() -> None:
    """Formatters that format ``record.exc_info`` themselves (PySpark's JSON one does) get the redacted exception."""
    load_spec_text(yaml.safe_dump(_doc(**_good_connections())))
    seen: list[str] = []

    class Own(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            assert record.exc_info is not None
            seen.append(f"{record.exc_info[0].__name__}: {record.exc_info[1]}")

    log = logging.getLogger("headwater.test_secrets_exc")
    handler = Own()
    log.addHandler(handler)
    try:
        try:
            raise ValueError(f"client said: bad password {KEY_PASSWORD}")
        except ValueError:
            log.exception("failed")
    finally:
        log.removeHandler(handler)
    assert seen == ["ValueError: client said: bad password ***"]
