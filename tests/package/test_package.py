"""headwater as a user gets it: the built wheel, installed in a fresh virtualenv, used from an empty folder.

The suite's other tiers run on an editable install inside the repository, where every file of the
source tree is at hand. This tier builds the sdist and the wheel (the wheel from the sdist, as
``python -m build`` does), checks both against what the code opens, installs the wheel with only its
declared dependencies (pinned by requirements.lock) into a new virtualenv in a temporary folder
outside the repository, and from an empty folder runs what a new user runs: ``headwater stack up``,
a snapshot pipeline from a spec written there (a Hive table the test creates, through Kafka and
Spark to HBase), ``headwater query``, ``headwater stack down``.

The installed stack has its own ports (below) and its home in the empty folder (the default
``.headwater``), so it runs beside the suite's test stack; it reuses the jars of the suite's cache
(``HEADWATER_CACHE``), so nothing is fetched again, and makes its own Spark class-data archive, as
``stack up`` does for a new user. The virtualenv is created from the base Python
without system site-packages and without ``PYTHONPATH``: it cannot see the repository's ``src`` or the
development virtualenv.
"""

from __future__ import annotations

import ast
import email.parser
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import psutil
import pytest
from resource_scan import ResourceUse, missing_from, scan, scan_source

pytestmark = pytest.mark.package

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src"

# Ports of the installed package's stack: none of the developer defaults, the suite's test stack
# (tests/conftest.py) or a developer's second stack.
PACKAGE_PORTS = {
    "HEADWATER_KAFKA_PORT": "29092",
    "HEADWATER_KAFKA_CONTROLLER_PORT": "29093",
    "HEADWATER_ZOOKEEPER_PORT": "29181",
    "HEADWATER_HBASE_MASTER_PORT": "16300",
    "HEADWATER_HBASE_REGIONSERVER_PORT": "16320",
    "HEADWATER_THRIFT_PORT": "29090",
    "HEADWATER_THRIFT2_PORT": "29091",
    "HEADWATER_METASTORE_PORT": "29083",
}

# The Hive table the pipeline reads, and so the oracle of what `headwater query` must return.
CUSTOMERS = ("c0", "c1", "c2", "c3")
EVENTS = [
    {
        "event_id": i,
        "customer": CUSTOMERS[i % 4],
        "amount": Decimal(i * 125) / 100,
        "kind": ("view", "cart", "buy")[i % 3],
    }
    for i in range(1, 41)
]

SPEC = """\
# A user's own pipeline, in their own folder: read a Hive table once, store it in HBase.
name: events
source: {type: hive, table: shop.events, mode: snapshot}
topic: {name: shop.events, partitions: 2, key: [event_id]}
schema: {event_id: bigint, customer: string, amount: "decimal(10,2)", kind: string}
sink:
  type: hbase
  table: shop:events
  row_key: "{customer}|{event_id:long}"
  columns: {d: [amount, kind]}
dead_letter: {topic: shop.events.dlq}
"""

MAKE_TABLE = """\
# Creates the Hive table the pipeline reads, with the installed headwater's Spark session helper.
import sys

from headwater.stack import StackConfig
from headwater.stack.spark import build_session

cfg = StackConfig.from_env()
spark = build_session("make-table", master="local[1]", metastore_uri=cfg.metastore_uri,
                      warehouse_dir=f"file://{cfg.warehouse_dir}", jars=[])
spark.sql("CREATE DATABASE IF NOT EXISTS shop")
spark.sql("CREATE TABLE shop.events (event_id BIGINT, customer STRING, amount DECIMAL(10,2), kind STRING) "
          "STORED AS PARQUET")
spark.sql("INSERT INTO shop.events VALUES " + open(sys.argv[1]).read())
print(spark.sql("SELECT count(*) FROM shop.events").collect()[0][0])
spark.stop()
"""


@dataclass
class Dists:
    """The built distributions and what each build step took."""

    wheel: Path
    sdist: Path
    seconds: dict[str, float] = field(default_factory=dict)


@dataclass
class Installed:
    """The fresh virtualenv with the wheel installed, the user's empty folder and their environment."""

    venv: Path
    project: Path
    env: dict[str, str]

    def run(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        """A command as the user types it in their folder (``headwater`` is the venv's console script)."""
        return subprocess.run(list(args), cwd=self.project, env=self.env, capture_output=True, text=True,
                              timeout=timeout, check=False, start_new_session=True)  # fmt: skip


def _check(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 0, f"{proc.args} exited {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


def _source_version() -> str:
    """``__version__`` as written in the source (read, not imported: the test process may import another copy)."""
    tree = ast.parse((SRC / "headwater" / "__init__.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "__version__" for t in node.targets):
            assert isinstance(node.value, ast.Constant)
            return str(node.value.value)
    raise AssertionError("no __version__ in src/headwater/__init__.py")


def _project_files(dest: Path) -> None:
    """Copy the project as a fresh clone has it (tracked and new, not ignored, files): no build/ or egg-info leftovers."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, check=True).stdout.decode().split("\0")  # fmt: skip
    for rel in filter(None, listed):
        src = ROOT / rel
        if src.is_file():  # a file deleted in the work tree is still listed as cached
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A temporary folder outside the repository; removed at the end (the virtualenv is ~900 MB)."""
    path = tmp_path_factory.mktemp("headwater-package")
    assert ROOT not in path.resolve().parents
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def dists(workdir: Path) -> Dists:
    """sdist and wheel built by ``python -m build`` (isolated build env; the wheel is built from the sdist)."""
    seconds = {}
    t0 = time.monotonic()
    tree = workdir / "checkout"
    _project_files(tree)
    tools = workdir / "build-tools"
    _check(subprocess.run([sys.executable, "-m", "venv", str(tools)], capture_output=True, text=True, check=False))
    _check(subprocess.run([str(tools / "bin" / "pip"), "install", "-q", "build"], capture_output=True, text=True,
                          check=False, timeout=600))  # fmt: skip
    seconds["build tools"] = time.monotonic() - t0
    t0 = time.monotonic()
    out = workdir / "dist"
    _check(subprocess.run([str(tools / "bin" / "python"), "-m", "build", "--outdir", str(out), str(tree)],
                          capture_output=True, text=True, check=False, timeout=600))  # fmt: skip
    seconds["build sdist + wheel"] = time.monotonic() - t0
    (wheel,) = out.glob("headwater-*.whl")
    (sdist,) = out.glob("headwater-*.tar.gz")
    return Dists(wheel, sdist, seconds)


def _jar_cache(workdir: Path) -> Path:
    """A cache folder whose jars are the suite's (links to each entry of HEADWATER_CACHE, which conftest sets) and
    whose Spark class-data archive is its own: an archive made by this venv's JVM (other jar paths) would be the
    one the suite's sessions find under the same key, and ignore."""
    shared = Path(os.environ["HEADWATER_CACHE"]).resolve()
    cache = workdir / "cache"
    if not cache.exists():
        cache.mkdir()
        for entry in shared.iterdir():
            if entry.name != "cds":
                (cache / entry.name).symlink_to(entry)
    return cache


def _user_env(venv: Path) -> dict[str, str]:
    """The environment of a user with the fresh venv activated: nothing of the suite's headwater, Python or Spark."""
    dev_bin = Path(sys.executable).parent.resolve()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("HEADWATER_", "PYTHON", "PYSPARK_", "SPARK_", "VIRTUAL_ENV", "PYTEST_"))}  # fmt: skip
    path = [p for p in os.environ.get("PATH", "").split(os.pathsep) if p and Path(p).resolve() != dev_bin]
    env["PATH"] = os.pathsep.join([str(venv / "bin"), *path])
    env["VIRTUAL_ENV"] = str(venv)
    env.update(PACKAGE_PORTS)
    env["HEADWATER_CACHE"] = str(_jar_cache(venv.parent))  # the jars the suite fetched: no second download
    return env


@pytest.fixture(scope="module")
def installed(workdir: Path, dists: Dists) -> Installed:
    """The wheel in a new virtualenv (no system site-packages), dependencies pinned by requirements.lock."""
    venv = workdir / "venv"
    t0 = time.monotonic()
    base = getattr(sys, "_base_executable", sys.executable)
    _check(subprocess.run([base, "-m", "venv", str(venv)], capture_output=True, text=True, check=False))
    pip = [str(venv / "bin" / "pip"), "install", "-q", str(dists.wheel), "-c", str(ROOT / "requirements.lock")]
    _check(subprocess.run(pip, capture_output=True, text=True, check=False, timeout=1200, env=_user_env(venv)))
    dists.seconds["install wheel in fresh venv"] = time.monotonic() - t0
    project = workdir / "my-project"
    project.mkdir()
    return Installed(venv, project, _user_env(venv))


def _leftovers(workdir: Path) -> list[str]:
    """Processes whose command line or working folder is in the tier's temporary folder."""
    out = []
    for proc in psutil.process_iter(["pid", "cmdline", "cwd"]):
        try:
            text = " ".join(proc.info["cmdline"] or []) + " " + (proc.info["cwd"] or "")
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        if str(workdir) in text and proc.pid != os.getpid():
            out.append(f"{proc.pid}: {text[:200]}")
    return out


@pytest.fixture(scope="module")
def package_stack(installed: Installed, workdir: Path, dists: Dists) -> Iterator[Installed]:
    """``headwater stack up`` of the installed package; stopped (and purged) at the end whatever happened."""
    t0 = time.monotonic()
    up = installed.run("headwater", "stack", "up", timeout=900)
    dists.seconds["stack up"] = time.monotonic() - t0
    try:
        _check(up)
        yield installed
    finally:
        installed.run("headwater", "stack", "down", "--purge", timeout=300)


# -- the scan of package-relative paths (the check the wheel test relies on) ------------------------


def test_scan_finds_every_form_of_package_relative_path() -> None:
    source = """
from importlib import resources
import importlib.resources, os, pkgutil
from pathlib import Path

a = resources.files("pkg.sub") / "idl" / "x.thrift"
b = Path(str(importlib.resources.files("pkg") / "jvm" / f"{name}.pom.xml"))
c = resources.files(__package__).joinpath("templates", "page.html")
d = resources.read_text("pkg.sub", "schema.json")
e = pkgutil.get_data("pkg", "data/table.csv")
f = Path(__file__).parent / "static" / "app.js"
g = Path(__file__).resolve().parents[1] / "assets" / "logo.svg"
h = os.path.join(os.path.dirname(__file__), "conf", name)
i = Path(pyspark.__file__).parent / "jars"     # another package's folder: not ours
j = Path("relative") / "to" / "cwd"             # not package-relative
"""
    uses = scan_source(source, "pkg.sub.mod")
    assert sorted(u.pattern for u in uses) == sorted([
        "pkg/sub/idl/x.thrift", "pkg/jvm/*.pom.xml", "pkg/sub/templates/page.html", "pkg/sub/schema.json",
        "pkg/data/table.csv", "pkg/sub/static/app.js", "pkg/assets/logo.svg", "pkg/sub/conf/*",
    ])  # fmt: skip
    assert [u.line for u in uses if u.pattern == "pkg/sub/idl/x.thrift"] == [6]
    names = ["pkg/sub/idl/x.thrift", "pkg/jvm/kafka.pom.xml", "pkg/sub/conf/a.ini", "pkg/__init__.py"]
    assert [u.pattern for u in missing_from(uses, names)] == [
        "pkg/sub/templates/page.html", "pkg/sub/schema.json", "pkg/data/table.csv", "pkg/sub/static/app.js",
        "pkg/assets/logo.svg",
    ]  # fmt: skip
    init = scan_source(
        "from importlib import resources\nx = resources.files(__name__) / 'a.txt'", "pkg", is_package=True
    )
    assert [u.pattern for u in init] == ["pkg/a.txt"]


# -- the distributions ---------------------------------------------------------------------------------


def _source_resources() -> list[ResourceUse]:
    uses = scan(SRC)
    assert uses, "the scan found no package-relative path in src/: the scanner is broken"
    return uses


def _data_files() -> list[str]:
    """Every non-Python file of the package in the source tree (IDL, poms, templates, assets, py.typed)."""
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "src/headwater"],
                            cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()  # fmt: skip
    return sorted(p.removeprefix("src/") for p in listed if not p.endswith(".py") and (ROOT / p).is_file())


def test_wheel_has_every_file_the_code_opens(dists: Dists) -> None:
    names = zipfile.ZipFile(dists.wheel).namelist()
    missing = missing_from(_source_resources(), names)
    assert not missing, "the wheel lacks files the code opens:\n" + "\n".join(map(str, missing))
    assert not [f for f in _data_files() if f not in names], "data files of src/headwater missing from the wheel"
    assert not [n for n in names if n.startswith(("tests/", "headwater/tests", "build/"))]


def test_sdist_has_sources_resources_tests_and_licence(dists: Dists) -> None:
    with tarfile.open(dists.sdist) as tar:
        names = tar.getnames()
    top = names[0].split("/")[0] + "/"
    missing = missing_from(_source_resources(), names, prefix=top + "src/")
    assert not missing, "the sdist lacks files the code opens:\n" + "\n".join(map(str, missing))
    rel = {n.removeprefix(top) for n in names}
    assert {f"src/{f}" for f in _data_files()} <= rel
    assert {"LICENSE", "CHANGELOG.md", "README.md", "pyproject.toml", "requirements.lock", "tests/conftest.py"} <= rel


def test_wheel_metadata(dists: Dists) -> None:
    version = _source_version()
    assert dists.wheel.name.startswith(f"headwater-{version}-")
    with zipfile.ZipFile(dists.wheel) as whl:
        info = f"headwater-{version}.dist-info/"
        meta = email.parser.Parser().parsestr(whl.read(info + "METADATA").decode())
        licence = whl.read(info + "licenses/LICENSE").decode()
    assert meta["Version"] == version and meta["Name"] == "headwater"
    assert meta["License-Expression"] == "Apache-2.0" and meta["License-File"] == "LICENSE"
    assert licence == (ROOT / "LICENSE").read_text() and "Apache License" in licence
    classifiers = meta.get_all("Classifier")
    assert "Programming Language :: Python :: 3.11" in classifiers and "Typing :: Typed" in classifiers
    assert {u.split(",")[0] for u in meta.get_all("Project-URL")} >= {"Homepage", "Documentation", "Changelog"}
    requires = meta.get_all("Requires-Dist")
    # The serve extra brings exactly the modules headwater.extras names for it; nothing of it is a base dependency.
    from headwater.extras import EXTRAS

    serve = {re.split(r"[<>=!~; \[]", r)[0] for r in requires if 'extra == "serve"' in r}
    assert serve == set(EXTRAS["serve"])
    base = {re.split(r"[<>=!~; \[]", r)[0] for r in requires if "extra ==" not in r}
    assert not base & serve and {"pyspark", "thriftpy2", "confluent-kafka"} <= base
    assert set(meta.get_all("Provides-Extra")) >= {"serve", "dev"}


# -- the installed package, from an empty folder ----------------------------------------------------------


def test_installed_cli_is_the_wheel_not_the_repository(installed: Installed) -> None:
    assert not any(installed.project.iterdir())
    out = _check(installed.run("headwater", "--version"))
    assert out.strip() == f"headwater {_source_version()}"
    where = _check(installed.run("python", "-c", "import headwater, sys; print(headwater.__file__); print(sys.path)"))
    module, path = where.splitlines()
    assert Path(module).is_relative_to(installed.venv), module
    assert str(ROOT) not in path  # neither src/ nor the development venv
    no_extra = installed.run("python", "-c", "import fastapi")
    assert no_extra.returncode != 0 and "No module named 'fastapi'" in no_extra.stderr


def test_stack_up_pipeline_query_from_empty_folder(package_stack: Installed, workdir: Path, dists: Dists) -> None:
    user = package_stack
    status = json.loads(_check(user.run("headwater", "stack", "status", "--json")))
    assert status["healthy"], status
    assert all(s["state"] == "running" for s in status["services"])
    assert (user.project / ".headwater" / "stack").is_dir()  # the default home: the user's folder
    assert list((workdir / "cache" / "cds").glob("spark-*.jsa"))  # stack up made the class-data archive

    (user.project / "events.yaml").write_text(SPEC)
    values = ", ".join(f"({e['event_id']}, '{e['customer']}', {e['amount']}, '{e['kind']}')" for e in EVENTS)
    (user.project / "events.sql").write_text(values)
    (user.project / "make_table.py").write_text(MAKE_TABLE)
    t0 = time.monotonic()
    assert _check(user.run("python", "make_table.py", "events.sql")).strip().splitlines()[-1] == str(len(EVENTS))
    dists.seconds["create Hive table"] = time.monotonic() - t0

    assert "events.yaml: ok" in _check(user.run("headwater", "validate", "events.yaml"))
    t0 = time.monotonic()
    run = _check(user.run("headwater", "run", "events.yaml", "--until-drained", timeout=900))
    dists.seconds["run --until-drained"] = time.monotonic() - t0
    assert re.search(rf"rows read from source\s+{len(EVENTS)}\n", run), run

    got = {}
    t0 = time.monotonic()
    for customer in CUSTOMERS:
        out = _check(user.run("headwater", "query", "events.yaml", "--prefix", f"customer={customer}", "--json",
                              "--limit", "100"))  # fmt: skip
        for line in out.splitlines():
            row = json.loads(line)
            got[(row["key"]["customer"], row["key"]["event_id"])] = (Decimal(row["columns"]["amount"]),
                                                                     row["columns"]["kind"])  # fmt: skip
    dists.seconds["query x4"] = time.monotonic() - t0
    assert got == {(e["customer"], e["event_id"]): (e["amount"], e["kind"]) for e in EVENTS}

    serve = user.run("headwater", "serve", "events.yaml", "--port", "29080")
    assert serve.returncode == 2, serve.stderr
    assert "pip install 'headwater[serve]'" in serve.stderr and "fastapi" in serve.stderr


def test_stack_down_leaves_nothing_running(package_stack: Installed, workdir: Path, dists: Dists) -> None:
    t0 = time.monotonic()
    _check(package_stack.run("headwater", "stack", "down", "--purge", timeout=300))
    dists.seconds["stack down"] = time.monotonic() - t0
    assert not _leftovers(workdir)
    print("package tier phases (s): " + ", ".join(f"{k} {v:.1f}" for k, v in dists.seconds.items()))
    print(f"wheel {dists.wheel.name} {dists.wheel.stat().st_size:,} B; sdist {dists.sdist.stat().st_size:,} B")
