"""Bad input through the CLI: a clear one-line error naming the file/field/value or the address tried."""

from __future__ import annotations

import pytest

from kit import run_cli, write_spec

pytestmark = pytest.mark.e2e


def test_invalid_spec_starts_nothing(tmp_path) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "name: bad\nsource: {type: hive, table: demo.x, mode: sometimes}\n"
        "topic: {name: t, key: [id]}\nsink: {type: hbse}\ndead_letter: {topic: t.dlq}\nextra: 1\n"
    )
    for cmd in (["validate", str(bad)], ["run", str(bad)]):
        out = run_cli(*cmd)
        assert out.returncode == 2
        err = out.stderr
        assert f"{bad}:2: source.mode: Input should be 'snapshot' or 'incremental' (got 'sometimes')" in err
        assert f"{bad}:4: sink.type: unknown sink type 'hbse'; known: hbase" in err
        assert f"{bad}:6: extra: unknown field 'extra'" in err
        assert "Traceback" not in err


def test_missing_hive_table_is_one_line(stack, unique, tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = write_spec(tmp_path, unique)  # its Hive table was never created
    out = run_cli("run", str(path), "--stage", "ingest")
    assert out.returncode == 5, out.stderr[-2000:]
    assert f"error: source.table: Hive database 'db_{unique}' not found in the metastore" in out.stderr
    assert "Traceback" not in out.stderr


@pytest.mark.parametrize(
    ("override", "stage", "message"),
    [
        ("kafka: {bootstrap_servers: '127.0.0.1:1'}", "ingest", "Kafka not reachable at 127.0.0.1:1"),
        (
            "hive: {metastore_uri: 'thrift://127.0.0.1:1'}",
            "ingest",
            "Hive metastore not reachable at thrift://127.0.0.1:1",
        ),
    ],
)
def test_service_down_names_the_address(stack, unique, tmp_path, override, stage, message) -> None:  # type: ignore[no-untyped-def]
    path = write_spec(tmp_path, unique)
    path.write_text(path.read_text() + f"connections:\n  {override}\n")
    out = run_cli("run", str(path), "--stage", stage, timeout=120)
    assert out.returncode == 4, out.stderr[-2000:]
    assert message in out.stderr
    assert "Traceback" not in out.stderr
