"""Code travels to executors: a packed Python environment with headwater, and a zip of the user's modules.

Executors of a Spark cluster need not have headwater, its dependencies or the user's ``python``
transform modules installed. Spark ships them the way its "Python Package Management" guide shows:

- a packed virtual environment (venv-pack) holding headwater and its runtime dependencies, sent
  with ``spark.archives`` and unpacked by every executor as ``./hwenv``; executors run
  ``./hwenv/bin/python``. The env is assembled by copying the distributions the driver itself
  runs (no index is asked), so driver and executors run the same versions;
- pyspark and py4j are left out: every Spark installation puts its own ``python/lib/pyspark.zip``
  and py4j on the Python workers' path (``PythonUtils.sparkPythonPath``), which matches the
  cluster's JVM side, and pyspark alone is ~480 MB;
- the user's modules (the top-level package or module of every ``python`` transform's function)
  are zipped and sent with ``spark.submit.pyFiles``.

The packed env's ``bin/python`` is a link to the base interpreter the driver's venv was made from
(venv-pack's documented limitation): every cluster node needs that Python at the same path.

Both artifacts are cached under ``<cache>/ship``, keyed by a hash of what they hold: for the env the
Python version, the name and version of every packed distribution (the runtime part of
requirements.lock, as installed) and headwater's own source; for the user zip, its files.
A second run with nothing changed reuses them.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

from headwater.errors import ConfigError, StackError

if TYPE_CHECKING:
    from headwater.spec.models import PipelineSpec

#: Name executors unpack the env under (``spark.archives`` fragment) and its Python, relative to their work dir.
ENV_NAME = "hwenv"
ENV_PYTHON = f"./{ENV_NAME}/bin/python"
#: Distributions Spark itself provides on every worker (see the module docstring).
PROVIDED_BY_SPARK = frozenset({"pyspark", "py4j"})
#: Parts of installed packages an executor never needs (C headers, Cython sources, test suites).
_SKIP_DIRS = frozenset({"tests", "include"})
_SKIP_SUFFIXES = (".pyx", ".pxd", ".pxi", ".h", ".hpp", ".cc", ".cpp")
#: pyarrow's Flight RPC libraries (~34 MB), loaded only by ``pyarrow.flight``, which PySpark does not use.
#: (Substrait must stay: libarrow_python links it.)
_SKIP_PREFIXES = ("libarrow_flight", "libarrow_python_flight", "_flight.")
_KEEP = 3  # packed envs kept in the cache (newest first); older ones are deleted after a build
_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def shipping_conf(spec: PipelineSpec, cache_dir: Path) -> dict[str, str]:
    """The Spark conf entries that ship headwater, its dependencies and ``spec``'s user modules to executors.

    Builds (or reuses from ``cache_dir/ship``) the packed env and the user-module zip. The entries:
    ``spark.archives`` (the env, unpacked as ``hwenv``), ``spark.pyspark.python`` (executors run
    ``./hwenv/bin/python``), ``spark.executorEnv.PYSPARK_PYTHON`` (the same, for Python workers a
    JVM-side component starts) and ``spark.submit.pyFiles`` (the zip; absent when the spec has no
    ``python`` transform of its own).

    Raises:
        ConfigError: a ``python`` transform's module cannot be found on the driver.
        StackError: packing the environment failed.
    """
    conf = {
        "spark.archives": f"{packed_env(cache_dir)}#{ENV_NAME}",
        "spark.pyspark.python": ENV_PYTHON,
        "spark.executorEnv.PYSPARK_PYTHON": ENV_PYTHON,
    }
    modules = user_modules_zip(spec, cache_dir)
    if modules is not None:
        conf["spark.submit.pyFiles"] = str(modules)
    return conf


# -- the packed environment ---------------------------------------------------------------------------------


def runtime_distributions() -> list[metadata.Distribution]:
    """headwater's installed runtime dependencies, transitively (extras and Spark's own left out), by name."""
    found: dict[str, metadata.Distribution] = {}
    todo = list(_requirements(_headwater_distribution()))
    while todo:
        name = _canonical(todo.pop())
        if name in found or name in PROVIDED_BY_SPARK or name == "headwater":
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue  # a dependency for another platform or Python (its marker excluded it)
        found[name] = dist
        todo += _requirements(dist)
    return [found[n] for n in sorted(found)]


def _headwater_distribution() -> metadata.Distribution | None:
    try:
        return metadata.distribution("headwater")
    except metadata.PackageNotFoundError:
        return None


def _requirements(dist: metadata.Distribution | None) -> Iterator[str]:
    """Names of ``dist``'s requirements that apply without extras (markers naming an extra are skipped)."""
    if dist is None:  # headwater run from a source tree that is not installed: pyproject's list
        yield from _pyproject_dependencies()
        return
    for req in dist.requires or []:
        requirement, _, marker = req.partition(";")
        if "extra" in marker:
            continue
        m = _NAME.match(requirement)
        if m:
            yield m.group(1)


def _pyproject_dependencies() -> Iterator[str]:
    import tomllib

    pyproject = _package_dir().parent.parent / "pyproject.toml"
    for req in tomllib.loads(pyproject.read_text())["project"]["dependencies"]:
        m = _NAME.match(req)
        if m:
            yield m.group(1)


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _package_dir() -> Path:
    import headwater

    return Path(headwater.__file__).resolve().parent


def _source_files() -> list[Path]:
    """headwater's own files as the driver runs them (bytecode left out)."""
    root = _package_dir()
    return sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts)


def env_key() -> str:
    """The cache key of the packed env: Python version, packed distributions and headwater's source."""
    h = hashlib.sha256()
    h.update(f"{sys.version}\n{sys.platform}\n".encode())
    for dist in runtime_distributions():
        h.update(f"{dist.metadata['Name']}=={dist.version}\n".encode())
    root = _package_dir()
    for path in _source_files():
        h.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def packed_env(cache_dir: Path) -> Path:
    """The packed env (``.tar.gz``) for the code the driver runs now: from the cache, or built and cached."""
    key = env_key()
    folder = cache_dir / "ship"
    target = folder / f"{ENV_NAME}-{key}.tar.gz"
    if target.is_file():
        os.utime(target)  # most recently used: kept by the pruning below
        return target
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process packing the same env: wait for it
        if target.is_file():
            return target
        build_env(target)
    _prune(folder)
    return target


def build_env(target: Path) -> float:
    """Assemble a venv of headwater's runtime and pack it into ``target`` with venv-pack; returns seconds taken."""
    try:
        import venv_pack
    except ImportError:
        raise StackError(
            "shipping code to a Spark cluster needs venv-pack: pip install 'headwater[cluster]' (or venv-pack)"
        ) from None
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="hwenv-", dir=target.parent) as tmp:
        prefix = Path(tmp) / ENV_NAME
        made = subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(prefix)],
                              capture_output=True, text=True, check=False)  # fmt: skip
        if made.returncode != 0:
            raise StackError(f"packing the executors' env: python -m venv {prefix} failed: {made.stderr.strip()}")
        site = prefix / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
        for dist in runtime_distributions():
            _copy_distribution(dist, site)
        shutil.copytree(_package_dir(), site / "headwater", ignore=shutil.ignore_patterns("__pycache__"))
        partial = target.with_suffix(f".{os.getpid()}.partial")
        try:
            venv_pack.pack(prefix=str(prefix), output=str(partial), format="tar.gz", compress_level=1, force=True)
        except Exception as exc:
            partial.unlink(missing_ok=True)
            raise StackError(f"packing the executors' env with venv-pack failed: {type(exc).__name__}: {exc}") from None
        partial.rename(target)
    return time.monotonic() - t0


def _copy_distribution(dist: metadata.Distribution, site: Path) -> None:
    """Copy ``dist``'s installed files (its RECORD) that live in site-packages into ``site``."""
    base = Path(str(dist.locate_file(""))).resolve()
    for file in dist.files or []:
        rel = Path(str(file))
        if rel.parts[0] == ".." or rel.is_absolute():  # console scripts and data outside site-packages
            continue
        if _SKIP_DIRS.intersection(rel.parts[1:-1]) or rel.name.endswith(_SKIP_SUFFIXES):
            continue
        if rel.parts[0] == "pyarrow" and rel.name.startswith(_SKIP_PREFIXES):
            continue
        src = base / rel
        if not src.is_file():
            continue
        dst = site / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dst)


def _prune(folder: Path) -> None:
    envs = sorted(folder.glob(f"{ENV_NAME}-*.tar.gz"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in envs[_KEEP:]:
        old.unlink(missing_ok=True)


# -- the user's modules ---------------------------------------------------------------------------------------


def user_module_names(spec: PipelineSpec) -> list[str]:
    """Top-level modules of the spec's ``python`` transforms that the packed env does not hold."""
    from headwater.transforms.python import PythonConfig

    packed = {"headwater", *_top_levels()}
    names = []
    for t in spec.transforms:
        if isinstance(t, PythonConfig):
            top = t.function.partition(":")[0].split(".")[0]
            if top not in packed and top not in names:
                names.append(top)
    return names


def _top_levels() -> set[str]:
    out: set[str] = set()
    for dist in runtime_distributions():
        for file in dist.files or []:
            first = Path(str(file)).parts[0]
            if first != ".." and not first.endswith((".dist-info", ".egg-info", ".pth")):
                out.add(first.removesuffix(".py"))
    return out


def user_modules_zip(spec: PipelineSpec, cache_dir: Path) -> Path | None:
    """A zip of the spec's user modules (packages whole), cached by content; None if there are none.

    Raises:
        ConfigError: a module is not importable on the driver.
    """
    entries: list[tuple[str, Path]] = []
    for name in user_module_names(spec):
        found = importlib.util.find_spec(name)
        if found is None or (found.origin is None and not found.submodule_search_locations):
            raise ConfigError(f"python.function: module '{name}' is not importable on the driver; is it on PYTHONPATH?")
        if found.submodule_search_locations:  # a package: every file of it
            for location in found.submodule_search_locations:
                root = Path(location)
                for path in sorted(root.rglob("*")):
                    if path.is_file() and "__pycache__" not in path.parts:
                        entries.append((f"{name}/{path.relative_to(root)}", path))
        else:
            assert found.origin is not None
            entries.append((f"{name}.py", Path(found.origin)))
    if not entries:
        return None
    h = hashlib.sha256()
    for arcname, path in entries:
        h.update(arcname.encode() + b"\0" + path.read_bytes() + b"\0")
    target = cache_dir / "ship" / f"user-{h.hexdigest()[:16]}.zip"
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(f".{os.getpid()}.partial")
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as zf:
        for arcname, path in entries:
            zf.write(path, arcname)
    partial.rename(target)
    return target
