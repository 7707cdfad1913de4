"""headwater.ship without a cluster: what goes into the packed env, and the zip of the user's modules."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from headwater import ship
from headwater.errors import ConfigError
from headwater.spec import load_spec
from kit import write_spec

FILTER = """  - {type: filter, where: "status <> 'test'"}\n"""


def _spec(tmp_path: Path, function: str):  # type: ignore[no-untyped-def]
    path = write_spec(tmp_path, "ship0001")
    path.write_text(path.read_text().replace(FILTER, FILTER + f'  - {{type: python, function: "{function}"}}\n'))
    return load_spec(path)


def test_the_env_holds_the_runtime_dependencies_but_not_what_spark_provides() -> None:
    names = {ship._canonical(d.metadata["Name"]) for d in ship.runtime_distributions()}
    assert {"pandas", "pyarrow", "pydantic", "confluent-kafka", "happybase", "thriftpy2"} <= names
    assert not names & {"pyspark", "py4j", "headwater", "pytest", "fastapi"}  # Spark's own, the package, extras


def test_user_module_is_zipped_by_content_and_cached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mods = tmp_path / "mods"
    (mods / "scorepkg").mkdir(parents=True)
    (mods / "scorepkg" / "__init__.py").write_text("")
    (mods / "scorepkg" / "rules.py").write_text("def score(pdf):\n    return pdf\n")
    monkeypatch.syspath_prepend(str(mods))
    spec = _spec(tmp_path, "scorepkg.rules:score")
    first = ship.user_modules_zip(spec, tmp_path / "cache")
    assert first is not None
    assert sorted(zipfile.ZipFile(first).namelist()) == ["scorepkg/__init__.py", "scorepkg/rules.py"]
    assert ship.user_modules_zip(spec, tmp_path / "cache") == first
    (mods / "scorepkg" / "rules.py").write_text("def score(pdf):\n    return pdf.copy()\n")
    assert ship.user_modules_zip(spec, tmp_path / "cache") != first  # new content, new zip


def test_modules_in_the_env_are_not_zipped_and_a_missing_one_is_named(tmp_path: Path) -> None:
    assert ship.user_modules_zip(_spec(tmp_path, "headwater.testing:identity"), tmp_path) is None
    with pytest.raises(ConfigError, match="module 'no_such_mod_x' is not importable"):
        ship.user_modules_zip(_spec(tmp_path, "no_such_mod_x:f"), tmp_path)


def test_conf_points_executors_at_the_shipped_python(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ship, "packed_env", lambda cache: cache / "ship" / "hwenv-k.tar.gz")
    conf = ship.shipping_conf(_spec(tmp_path, "headwater.testing:identity"), tmp_path)
    assert conf == {
        "spark.archives": f"{tmp_path / 'ship' / 'hwenv-k.tar.gz'}#hwenv",
        "spark.pyspark.python": "./hwenv/bin/python",
        "spark.executorEnv.PYSPARK_PYTHON": "./hwenv/bin/python",
    }
