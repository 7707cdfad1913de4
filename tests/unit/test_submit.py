"""``headwater submit``'s spark-submit command line and the checkpoint location (no JVM, no services)."""

from __future__ import annotations

from pathlib import Path

import pytest

from headwater import submit
from headwater.context import PipelineContext
from headwater.errors import ConfigError
from headwater.spec import load_spec

EXAMPLE = Path(__file__).parents[2] / "examples" / "orders.yaml"
ROOT = "hdfs://nn.example:8020/hw/checkpoints"


def _spec(tmp_path: Path, extra: str = "") -> Path:
    text = EXAMPLE.read_text()
    assert "\nconnections:" not in text
    path = tmp_path / "orders.yaml"
    path.write_text(text + extra)
    return path


@pytest.fixture(autouse=True)
def _no_packing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # Packing the env and fetching jars is tested elsewhere (test_ship.py, the stack tiers).
    monkeypatch.setenv("HEADWATER_HOME", str(tmp_path / "home"))
    monkeypatch.setattr("headwater.ship.shipping_conf", lambda spec, cache: {"spark.archives": "/c/env.tgz#hwenv"})
    monkeypatch.setattr("headwater.stack.jars.spark_kafka_jars", lambda cfg: ["/j/a.jar", "/j/b.jar"])


def test_checkpoint_root_names_each_pipeline(tmp_path: Path) -> None:
    spec = load_spec(_spec(tmp_path, f"connections:\n  spark: {{checkpoint_root: {ROOT}/}}\n"))
    assert PipelineContext(spec).checkpoint == f"{ROOT}/{spec.name}"


def test_yarn_cluster_command(tmp_path: Path) -> None:
    path = _spec(tmp_path, f"connections:\n  spark: {{checkpoint_root: {ROOT}}}\n")
    sub = submit.build(str(path), stage="process", master="yarn", deploy_mode="cluster", wait=False)
    argv = sub.argv
    assert Path(argv[0]).name == "spark-submit"
    assert argv[1:5] == ["--master", "yarn", "--deploy-mode", "cluster"]
    assert argv[argv.index("--jars") + 1] == "/j/a.jar,/j/b.jar"
    assert argv[argv.index("--files") + 1] == str(path.resolve())
    confs = {argv[i + 1].split("=", 1)[0]: argv[i + 1].split("=", 1)[1] for i, a in enumerate(argv) if a == "--conf"}
    assert confs["spark.archives"] == "/c/env.tgz#hwenv"
    assert confs["spark.yarn.appMasterEnv.PYSPARK_PYTHON"] == "./hwenv/bin/python"
    assert confs["spark.yarn.appMasterEnv.HEADWATER_SUBMITTED"] == "1"
    assert confs["spark.yarn.submit.waitAppCompletion"] == "false"
    assert argv[-5:] == [str(Path(submit.__file__).with_name("driver.py")), "orders.yaml", "--stage", "process",
                         "--until-drained"]  # fmt: skip
    assert sub.env["HADOOP_CONF_DIR"]


def test_cluster_mode_needs_a_hadoop_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"connections\.spark\.checkpoint_root .* must be a Hadoop filesystem URL"):
        submit.build(str(_spec(tmp_path)), stage="process", master="yarn", deploy_mode="cluster", wait=False)


def test_standalone_runs_python_drivers_in_client_mode_only(tmp_path: Path) -> None:
    path = str(_spec(tmp_path, f"connections:\n  spark: {{checkpoint_root: {ROOT}}}\n"))
    with pytest.raises(ConfigError, match="--deploy-mode client"):
        submit.build(path, stage="process", master="spark://h:7077", deploy_mode="cluster", wait=False)
    sub = submit.build(path, stage="process", master="spark://h:7077", deploy_mode="client", wait=False)
    assert sub.env["HEADWATER_SUBMITTED"] == "1" and sub.argv[-4] == str(Path(path).resolve())
