"""Spark standalone for the cluster profile: one master and N workers, JVMs from pip's pyspark jars.

The same processes as ``spark-class org.apache.spark.deploy.master.Master --host 127.0.0.1 ...`` and
``... deploy.worker.Worker spark://127.0.0.1:7077 --host 127.0.0.1 --cores 1 --memory 1g``, started
directly (pip's pyspark has no ``sbin/start-*.sh``) with the JVM options Spark's launcher adds on
Java 17. Everything binds loopback; each worker keeps its applications' files in its own work
folder (``SPARK_WORKER_DIR``) under the service's state folder.

The workers, and so their executors and Python workers, run in an environment without the
project's virtualenv: no ``VIRTUAL_ENV``, ``PYTHONPATH`` or ``PYSPARK_PYTHON``, no venv ``bin`` on
``PATH``, no ``HEADWATER_*`` settings. An executor has only what Spark gives every Python worker
(pyspark.zip and py4j from ``SPARK_HOME``) and what the application ships (:mod:`headwater.ship`):
the same position as an executor on another machine.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import urllib.request
from pathlib import Path
from typing import Any

from headwater.errors import StackError
from headwater.stack.config import StackConfig
from headwater.stack.service import Service

# The JVM options Spark's launcher (org.apache.spark.launcher.JavaModuleOptions) adds for Java 17+.
_OPENS = (
    "java.base/java.lang", "java.base/java.lang.invoke", "java.base/java.lang.reflect", "java.base/java.io",
    "java.base/java.net", "java.base/java.nio", "java.base/java.util", "java.base/java.util.concurrent",
    "java.base/java.util.concurrent.atomic", "java.base/jdk.internal.ref", "java.base/sun.nio.ch",
    "java.base/sun.nio.cs", "java.base/sun.security.action", "java.base/sun.util.calendar",
    "java.security.jgss/sun.security.krb5",
)  # fmt: skip
JAVA_MODULE_OPTIONS = [
    "-XX:+IgnoreUnrecognizedVMOptions",
    *(f"--add-opens={m}=ALL-UNNAMED" for m in _OPENS),
    "-Dio.netty.tryReflectionSetAccessible=true",
]
#: Variables that would hand a worker the driver's Python environment.
_PYTHON_VARS = ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "PYSPARK_PYTHON", "PYSPARK_DRIVER_PYTHON", "CONDA_PREFIX")


def spark_home() -> Path:
    """pip's pyspark folder, which is a Spark distribution (``jars/``, ``bin/``, ``python/lib/pyspark.zip``)."""
    found = importlib.util.find_spec("pyspark")
    if found is None or not found.submodule_search_locations:
        raise StackError("pyspark is not installed: the Spark standalone services run from its jars")
    return Path(next(iter(found.submodule_search_locations))).resolve()


def scala_version(home: Path) -> str:
    """The Scala version of a Spark distribution (``2.13``), read from its spark-core jar's name."""
    for jar in (home / "jars").glob("spark-core_*.jar"):
        return jar.name.removeprefix("spark-core_").split("-")[0]
    raise StackError(f"no spark-core jar in {home / 'jars'}: not a Spark distribution")


def services(config: StackConfig) -> list[Service]:
    """The master, then ``config.spark_workers`` workers."""
    return [SparkMasterService(config), *(SparkWorkerService(config, i) for i in range(config.spark_workers))]


def master_state(config: StackConfig, timeout: float = 3.0) -> dict[str, Any]:
    """The master's own view (its web UI's ``/json``): status, workers with their state, applications."""
    url = f"http://{config.host}:{config.spark_master_webui_port}/json/"
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        data: dict[str, Any] = json.load(resp)
    return data


def clean_environment(config: StackConfig) -> dict[str, str]:
    """This process's environment without the driver's Python (see the module docstring), for Spark daemons."""
    venv_bins = {str(Path(sys.prefix) / "bin")}
    if os.environ.get("VIRTUAL_ENV"):
        venv_bins.add(str(Path(os.environ["VIRTUAL_ENV"]) / "bin"))
    env = {
        k: v for k, v in os.environ.items()
        if k not in _PYTHON_VARS and not k.startswith(("HEADWATER_", "SPARK_", "PYSPARK_"))
    }  # fmt: skip
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if p and p not in venv_bins)
    home = spark_home()
    env["SPARK_HOME"] = str(home)
    # What bin/load-spark-env.sh exports: the worker's launcher needs it to build an executor's class path.
    env["SPARK_SCALA_VERSION"] = scala_version(home)
    env["SPARK_LOCAL_IP"] = config.host
    return env


class _SparkDaemon(Service):
    """A Spark standalone JVM (master or worker)."""

    component = "spark"

    def _jvm(self, main: str, *args: str, props: tuple[str, ...] = ()) -> list[str]:
        heap = self.config.spark_daemon_heap
        jars = spark_home() / "jars"
        return [
            f"-Xms{heap}", f"-Xmx{heap}", "-XX:+UseSerialGC", *JAVA_MODULE_OPTIONS, *props,
            "-cp", f"{jars / '*'}", main, *args,
        ]  # fmt: skip

    def prepare(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)


class SparkMasterService(_SparkDaemon):
    """The standalone master; ready when its ``/json`` says ALIVE."""

    name = "spark-master"

    @property
    def ports(self) -> list[int]:
        c = self.config
        return [c.spark_master_port, c.spark_master_webui_port, c.spark_master_rest_port]

    def environment(self) -> dict[str, str]:
        return clean_environment(self.config)

    def command(self) -> list[str]:
        c = self.config
        # The REST submission server (spark-submit --deploy-mode cluster) on a port of this stack, not 6066 for all.
        # An application that sets no spark.cores.max gets one core per worker, not every core: the two stages of
        # a pipeline (two applications) then run side by side instead of one waiting for the other's cores.
        props = (
            "-Dspark.master.rest.enabled=true", f"-Dspark.master.rest.port={c.spark_master_rest_port}",
            f"-Dspark.deploy.defaultCores={c.spark_workers}",
        )  # fmt: skip
        return self._jvm("org.apache.spark.deploy.master.Master", "--host", c.host, "--port", str(c.spark_master_port),
                         "--webui-port", str(c.spark_master_webui_port), props=props)  # fmt: skip

    def probe(self) -> bool:
        return master_state(self.config).get("status") == "ALIVE"


class SparkWorkerService(_SparkDaemon):
    """Worker ``index``: its own port, web UI and work folder; ready when the master lists it ALIVE."""

    def __init__(self, config: StackConfig, index: int) -> None:
        super().__init__(config)
        self.index = index
        self.name = f"spark-worker-{index + 1}"

    @property
    def ports(self) -> list[int]:
        return [self.config.spark_worker_port + self.index, self.config.spark_worker_webui_port + self.index]

    @property
    def work_dir(self) -> Path:
        """Where the worker puts each application's executors (``app-*/<executor id>/``, the unpacked archives)."""
        return self.dir / "work"

    def prepare(self) -> None:
        super().prepare()
        self.work_dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "local").mkdir(parents=True, exist_ok=True)

    def environment(self) -> dict[str, str]:
        return {
            **clean_environment(self.config),
            "SPARK_WORKER_DIR": str(self.work_dir),
            "SPARK_LOCAL_DIRS": str(self.dir / "local"),
        }

    def command(self) -> list[str]:
        c = self.config
        port, webui = self.ports
        return self._jvm(
            "org.apache.spark.deploy.worker.Worker", c.spark_master_url, "--host", c.host, "--port", str(port),
            "--webui-port", str(webui), "--cores", str(c.spark_worker_cores), "--memory", c.spark_worker_memory,
            "--work-dir", str(self.work_dir),
        )  # fmt: skip

    def probe(self) -> bool:
        port = self.ports[0]
        return any(w.get("port") == port and w.get("state") == "ALIVE" for w in master_state(self.config)["workers"])
