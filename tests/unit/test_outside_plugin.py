"""A sink from an outside package, registered through a real entry point of an installed distribution:
headwater lists it, validates specs against its config model and publishes it in the JSON Schema,
with no change to headwater itself (tests/fixtures/outside_plugin)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "outside_plugin"
SPEC = """
name: outside
source: {type: hive, table: db.orders, mode: snapshot}
topic: {name: outside.orders, key: [id]}
sink: {type: jsonl, %s}
dead_letter: {topic: outside.dlq}
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fixture package installed (built by pip in an isolated build, as a user would) into a folder of its own."""
    target = tmp_path_factory.mktemp("site")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                    "--target", str(target), str(FIXTURE)], check=True, capture_output=True)  # fmt: skip
    assert list(target.glob("headwater_jsonl_sink-0.1.0.dist-info/entry_points.txt"))
    return target


def cli(site: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "headwater.cli", *args], capture_output=True, text=True,
                          env=env, check=False)  # fmt: skip


def test_listed_validated_and_in_the_schema(site: Path, tmp_path: Path) -> None:
    listed = cli(site, "plugins")
    assert listed.returncode == 0, listed.stderr
    assert "  jsonl      Writes every micro-batch to" in listed.stdout

    good = tmp_path / "good.yaml"
    good.write_text(SPEC % "path: out")
    out = cli(site, "validate", str(good))
    assert out.returncode == 0, out.stderr
    assert "-> jsonl)" in out.stdout

    bad = tmp_path / "bad.yaml"
    bad.write_text(SPEC % "folder: out")
    out = cli(site, "validate", str(bad))
    assert out.returncode == 2
    assert "sink.path: Field required" in out.stderr and "sink.folder: unknown field 'folder'" in out.stderr

    schema = json.loads(cli(site, "schema").stdout)
    assert any(d.get("properties", {}).get("type", {}).get("const") == "jsonl" for d in schema["$defs"].values())


def test_unknown_without_the_package(tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC % "path: out")
    out = subprocess.run([sys.executable, "-m", "headwater.cli", "validate", str(spec)], capture_output=True,
                         text=True, check=False)  # fmt: skip
    assert out.returncode == 2 and "unknown sink type 'jsonl'; known: hbase, kafka" in out.stderr
