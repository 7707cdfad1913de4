"""A Hive metastore service (Thrift, backed by Derby) run from pyspark's own jars.

Every Spark application is a client of it, so several Spark processes share one catalog. An
embedded Derby catalog inside one Spark app would lock every other app out.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from headwater.errors import StackError
from headwater.stack.service import Service

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
            "-cp", self.classpath(self.dir / "conf"),
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
