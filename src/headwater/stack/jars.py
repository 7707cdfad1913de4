"""Fetch the JVM jars of each component with Maven, into the project's own cache folder.

One small pom per component (``jvm/<component>.pom.xml``) declares what to fetch; nothing is
compiled or vendored. A stamp file holding the pom's hash makes a second run download nothing.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from importlib import resources
from pathlib import Path

from headwater.errors import StackError
from headwater.stack.config import StackConfig

COMPONENTS = ("kafka", "hbase", "spark-kafka", "hadoop")
_MAVEN_DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy-dependencies"


def pom_path(component: str) -> Path:
    """The pom that declares ``component``'s artifacts (shipped inside the package)."""
    return Path(str(resources.files("headwater.stack") / "jvm" / f"{component}.pom.xml"))


def _stamp(component: str) -> str:
    return hashlib.sha256(pom_path(component).read_bytes()).hexdigest()


def is_fetched(config: StackConfig, component: str) -> bool:
    """True if the component's jars match its current pom."""
    stamp = config.jars(component) / ".stamp"
    return stamp.is_file() and stamp.read_text() == _stamp(component)


def fetch(config: StackConfig, component: str, *, quiet: bool = True) -> Path:
    """Make sure ``component``'s jars are in the cache; return its lib folder."""
    lib = config.jars(component)
    if is_fetched(config, component):
        return lib
    mvn = shutil.which("mvn")
    if mvn is None:
        raise StackError(f"jars for {component}: 'mvn' (Apache Maven) is not on PATH; install Maven")
    tmp = lib.with_name(lib.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    cmd = [
        mvn, "-B", *(["-q"] if quiet else []),
        f"-Dmaven.repo.local={config.cache_dir / 'm2'}",
        "-f", str(pom_path(component)),
        _MAVEN_DEPENDENCY_PLUGIN, "-DincludeScope=runtime", f"-DoutputDirectory={tmp}",
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
        raise StackError(f"jars for {component}: mvn failed (exit {proc.returncode}):\n{tail}")
    shutil.rmtree(lib, ignore_errors=True)
    tmp.rename(lib)
    (lib / ".stamp").write_text(_stamp(component))
    return lib


def fetch_all(config: StackConfig) -> dict[str, Path]:
    """Fetch every component; return their lib folders."""
    return {c: fetch(config, c) for c in COMPONENTS}


def spark_kafka_jars(config: StackConfig) -> list[str]:
    """Jars to hand to Spark with ``spark.jars``: the connector and the few it needs beyond pyspark's own.

    pyspark ships Scala, Hadoop client and the rest; adding those again would put two versions on
    the classpath.
    """
    lib = fetch(config, "spark-kafka")
    wanted = ("spark-sql-kafka-0-10", "spark-token-provider-kafka-0-10", "kafka-clients", "commons-pool2")
    jars = sorted(str(p) for p in lib.glob("*.jar") if p.name.startswith(wanted))
    if len(jars) != len(wanted):
        raise StackError(f"spark-kafka jars incomplete in {lib}: found {jars}")
    return jars
