"""A Hive metastore service (Thrift, backed by Derby) run from pyspark's own jars.

Every Spark application is a client of it, so several Spark processes share one catalog. An
embedded Derby catalog inside one Spark app would lock every other app out.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
import tempfile
from importlib import resources
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from headwater.errors import StackError
from headwater.stack.service import Service, java

# The --add-opens list spark-submit adds on Java 17.
SPARK_JDK17_OPTS = [
    "-XX:+IgnoreUnrecognizedVMOptions",
    *(
        f"--add-opens=java.base/{p}=ALL-UNNAMED"
        for p in (
            "java.lang", "java.lang.invoke", "java.lang.reflect", "java.io", "java.net", "java.nio",
            "java.util", "java.util.concurrent", "java.util.concurrent.atomic", "jdk.internal.ref",
            "sun.nio.ch", "sun.nio.cs", "sun.security.action", "sun.util.calendar",
        )
    ),
    "--add-opens=java.security.jgss/sun.security.krb5=ALL-UNNAMED",
]  # fmt: skip

_BIND_PATCH = resources.files("headwater.stack") / "jvm" / "HiveAuthUtils.java"

_LOG4J2 = """\
appender.out.type = Console
appender.out.name = STDOUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.out.ref = STDOUT
logger.hms.name = org.apache.hadoop.hive.metastore
logger.hms.level = INFO
"""


def javac() -> str:
    """The Java compiler next to :func:`headwater.stack.service.java` (a JDK), or the one on PATH."""
    beside = Path(java()).resolve().parent / "javac"
    found = str(beside) if beside.exists() else shutil.which("javac")
    if not found:
        raise StackError("javac not found next to java or on PATH: the metastore needs a JDK 17, not a JRE")
    return found


def pyspark_jars() -> Path:
    """The ``jars/`` folder of the installed pyspark."""
    import pyspark

    return Path(os.path.dirname(pyspark.__file__)) / "jars"


class MetastoreService(Service):
    """``org.apache.hadoop.hive.metastore.HiveMetaStore`` with a Derby database in the state folder."""

    name = "metastore"
    component = "pyspark"

    @property
    def ports(self) -> list[int]:
        return [self.config.metastore_port]

    def _site(self) -> dict[str, str]:
        return {
            "javax.jdo.option.ConnectionURL": f"jdbc:derby:;databaseName={self.dir / 'derby'};create=true",
            "javax.jdo.option.ConnectionDriverName": "org.apache.derby.jdbc.EmbeddedDriver",
            "datanucleus.schema.autoCreateAll": "true",
            "hive.metastore.schema.verification": "false",
            # Hive 2.x defaults to BoneCP, which pyspark does not ship.
            "datanucleus.connectionPoolingType": "None",
            "hive.metastore.warehouse.dir": f"file://{self.config.warehouse_dir}",
            "hive.metastore.uris": "",
        }

    def prepare(self) -> None:
        conf = self.dir / "conf"
        conf.mkdir(parents=True, exist_ok=True)
        self.config.warehouse_dir.mkdir(parents=True, exist_ok=True)
        props = "".join(
            f"  <property><name>{k}</name><value>{escape(v)}</value></property>\n" for k, v in self._site().items()
        )
        (conf / "hive-site.xml").write_text(f"<configuration>\n{props}</configuration>\n")
        (conf / "log4j2.properties").write_text(_LOG4J2)
        self._compile_bind_patch()

    @property
    def bind_patch(self) -> Path:
        """Where the compiled loopback-bind class lives: the cache, one folder per version of its source."""
        digest = hashlib.sha256(_BIND_PATCH.read_bytes()).hexdigest()[:16]
        return self.config.cache_dir / "classes" / f"hive-bind-{digest}"

    def _compile_bind_patch(self) -> None:
        """Compile ``jvm/HiveAuthUtils.java`` (loopback bind, see there) once per machine and source version.

        Hive 2.3's metastore binds all interfaces and has no setting for the address; the class takes the
        place of hive-common's on the metastore's class path and binds ``headwater.bind.host``.
        """
        target = self.bind_patch
        if target.is_dir():
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=".hive-bind-", dir=target.parent))  # stacks may start side by side
        try:
            src = work / "HiveAuthUtils.java"
            src.write_bytes(_BIND_PATCH.read_bytes())
            cmd = [javac(), "-nowarn", "--release", "8", "-cp", str(pyspark_jars() / "*"), "-d", str(work / "out"),
                   str(src)]  # fmt: skip
            proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                raise StackError(f"metastore: compiling {_BIND_PATCH} failed:\n{proc.stdout}{proc.stderr}")
            with contextlib.suppress(OSError):  # another stack made it first: keep theirs
                os.rename(work / "out", target)
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def classpath(self, *extra: Path) -> str:
        jars = pyspark_jars()
        if not jars.is_dir():
            raise StackError(f"metastore: pyspark jars folder {jars} missing; reinstall pyspark")
        return os.pathsep.join([*(str(p) for p in extra), str(jars / "*")])

    def command(self) -> list[str]:
        selector = "org.apache.logging.log4j.core.selector.ClassLoaderContextSelector"
        return [
            *SPARK_JDK17_OPTS, f"-Xmx{self.config.metastore_heap}",
            # Without these Hive asks log4j2 for async loggers, whose LMAX Disruptor jar pyspark lacks.
            f"-Dlog4j2.contextSelector={selector}", f"-DLog4jContextSelector={selector}",
            f"-Dlog4j2.configurationFile=file:{self.dir / 'conf' / 'log4j2.properties'}",
            f"-Dderby.system.home={self.dir}",
            f"-Dheadwater.bind.host={self.config.host}",  # read by the HiveAuthUtils of bind_patch
            "-cp", self.classpath(self.bind_patch, self.dir / "conf"),
            "org.apache.hadoop.hive.metastore.HiveMetaStore", "-p", str(self.config.metastore_port),
        ]  # fmt: skip

    def probe(self) -> bool:
        return "default" in list_databases(self.config.host, self.config.metastore_port)


def list_databases(host: str, port: int, timeout_ms: int = 5000) -> list[str]:
    """Ask the metastore for its databases over Thrift (``get_all_databases``)."""
    import thriftpy2
    from thriftpy2.rpc import make_client

    idl = resources.files("headwater.stack") / "hive_metastore.thrift"
    module: Any = thriftpy2.load(str(idl), module_name="hive_metastore_thrift")
    client = make_client(module.ThriftHiveMetastore, host, port, timeout=timeout_ms)
    try:
        return list(client.get_all_databases())
    finally:
        client.close()
