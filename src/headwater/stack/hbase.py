"""Apache HBase 2.6 standalone (master, region server and ZooKeeper in one JVM) and its Thrift1 server."""

from __future__ import annotations

import os
from xml.sax.saxutils import escape

from headwater.stack.service import Service
from headwater.stack.supervisor import port_open

# The flags HBase's own bin/hbase adds on JDK 11+ (HBASE-28259); without them: InaccessibleObjectException.
_JDK17_OPTS = [
    "-XX:+IgnoreUnrecognizedVMOptions",
    "-Dorg.apache.hbase.thirdparty.io.netty.tryReflectionSetAccessible=true",
    "--add-modules", "jdk.unsupported",
    "--add-opens", "java.base/java.io=ALL-UNNAMED",
    "--add-opens", "java.base/java.nio=ALL-UNNAMED",
    "--add-opens", "java.base/sun.nio.ch=ALL-UNNAMED",
    "--add-opens", "java.base/java.lang=ALL-UNNAMED",
    "--add-opens", "java.base/jdk.internal.ref=ALL-UNNAMED",
    "--add-opens", "java.base/java.lang.reflect=ALL-UNNAMED",
    "--add-opens", "java.base/java.util=ALL-UNNAMED",
    "--add-opens", "java.base/java.util.concurrent=ALL-UNNAMED",
    "--add-exports", "java.base/jdk.internal.misc=ALL-UNNAMED",
    "--add-exports", "java.security.jgss/sun.security.krb5=ALL-UNNAMED",
    "--add-exports", "java.base/sun.net.dns=ALL-UNNAMED",
    "--add-exports", "java.base/sun.net.util=ALL-UNNAMED",
]  # fmt: skip

# hbase-server's Maven dependencies bind SLF4J to reload4j (log4j 1.x API), so the config is log4j 1 syntax.
_LOG4J = """\
log4j.rootLogger=INFO,console
log4j.appender.console=org.apache.log4j.ConsoleAppender
log4j.appender.console.layout=org.apache.log4j.PatternLayout
log4j.appender.console.layout.ConversionPattern=%d{ISO8601} %-5p [%t] %c{2}: %m%n
log4j.logger.org.apache.zookeeper=WARN
log4j.logger.org.apache.hadoop=WARN
log4j.logger.org.apache.hadoop.hbase=INFO
log4j.logger.org.apache.hadoop.hbase.zookeeper=WARN
log4j.logger.org.apache.hadoop.hbase.ipc=WARN
log4j.logger.org.apache.hadoop.metrics2=ERROR
"""


class HBaseService(Service):
    """HMaster in local mode: also runs one region server and an embedded ZooKeeper."""

    name = "hbase"
    component = "hbase"

    @property
    def ports(self) -> list[int]:
        c = self.config
        return [c.zookeeper_port, c.hbase_master_port, c.hbase_regionserver_port]

    @property
    def conf_dir(self) -> str:
        return str(self.dir / "conf")

    def _site(self) -> dict[str, str]:
        c = self.config
        return {
            "hbase.cluster.distributed": "false",
            "hbase.tmp.dir": str(self.dir / "tmp"),
            "hbase.rootdir": f"file://{self.dir / 'root'}",
            "hbase.zookeeper.quorum": c.host,
            "hbase.zookeeper.property.clientPort": str(c.zookeeper_port),
            "hbase.zookeeper.property.dataDir": str(self.dir / "zk"),
            "hbase.master.port": str(c.hbase_master_port),
            "hbase.regionserver.port": str(c.hbase_regionserver_port),
            "hbase.master.hostname": c.host,
            "hbase.unsafe.regionserver.hostname": c.host,
            # The local filesystem has no hflush/hsync; WAL creation refuses without this.
            "hbase.unsafe.stream.capability.enforce": "false",
            # No web UIs: they need hbase-webapps on the classpath, and cost memory and ports.
            "hbase.master.info.port": "-1",
            "hbase.regionserver.info.port": "-1",
            "hbase.thrift.info.port": "-1",
            "hbase.regionserver.thrift.port": str(c.thrift_port),
            "hbase.regionserver.thrift.ipaddress": c.host,
            # Thrift drops connections idle for 60 s by default; pipelines may idle longer between batches.
            "hbase.thrift.server.socket.read.timeout": "3600000",
            "hbase.master.wait.on.regionservers.mintostart": "1",
        }

    def prepare(self) -> None:
        conf = self.dir / "conf"
        conf.mkdir(parents=True, exist_ok=True)
        props = "".join(
            f"  <property><name>{k}</name><value>{escape(v)}</value></property>\n" for k, v in self._site().items()
        )
        # Written whole then renamed: the Thrift servers share this folder and prepare it again while the HBase
        # master may be reading it (a loaded machine once caught an empty hbase-site.xml mid-write).
        for name, text in (
            ("hbase-site.xml", f"<configuration>\n{props}</configuration>\n"),
            ("log4j.properties", _LOG4J),
        ):
            partial = conf / f".{name}.{os.getpid()}"
            partial.write_text(text)
            partial.replace(conf / name)

    def _jvm(self, heap: str) -> list[str]:
        return [
            *_JDK17_OPTS, f"-Xmx{heap}", "-XX:+UseG1GC",
            f"-Dlog4j.configuration=file:{self.dir / 'conf' / 'log4j.properties'}",
            f"-Dhbase.log.dir={self.config.state_dir / 'logs'}",
            "-cp", self.classpath(self.dir / "conf"),
        ]  # fmt: skip

    def command(self) -> list[str]:
        return [*self._jvm(self.config.hbase_heap), "org.apache.hadoop.hbase.master.HMaster", "start"]

    def probe(self) -> bool:
        return all(port_open(self.config.host, p) for p in self.ports)


class HBaseThriftService(HBaseService):
    """The HBase Thrift1 server (what happybase speaks), default thread-pool server, buffered binary."""

    name = "hbase-thrift"

    @property
    def dir(self):  # type: ignore[no-untyped-def]
        # Shares the HBase conf folder: the Thrift server is an HBase client of the same cluster.
        return self.config.state_dir / "hbase"

    main_class = "org.apache.hadoop.hbase.thrift.ThriftServer"

    @property
    def ports(self) -> list[int]:
        return [self.config.thrift_port]

    def command(self) -> list[str]:
        c = self.config
        return [
            *self._jvm(c.thrift_heap), self.main_class,
            "-p", str(self.ports[0]), "-b", c.host, "-threadpool", "start",
        ]  # fmt: skip

    def probe(self) -> bool:
        import happybase

        conn = happybase.Connection(self.config.host, self.config.thrift_port, timeout=5000, autoconnect=True)
        try:
            conn.tables()
            return True
        finally:
            conn.close()


class HBaseThrift2Service(HBaseThriftService):
    """The HBase Thrift2 server: per-cell timestamps in one ``putMultiple`` call, pre-split table creation.

    Thrift1 (happybase) can send only one timestamp per call, so deterministic per-record cell
    timestamps would cost one round trip per row; the sink writes through Thrift2 instead.
    """

    name = "hbase-thrift2"

    main_class = "org.apache.hadoop.hbase.thrift2.ThriftServer"

    @property
    def ports(self) -> list[int]:
        return [self.config.thrift2_port]

    def probe(self) -> bool:
        return thrift2_lists_tables(self.config.host, self.config.thrift2_port)


def thrift2_lists_tables(host: str, port: int, timeout: float = 5.0) -> bool:
    """Whether the Thrift2 server at ``host:port`` answers ``getTableNamesByNamespace("default")`` with a list.

    Spoken in Thrift's binary protocol by hand: the stack knows no client of the sink's (the HBase
    sink's Thrift2 client lives with the sink). A server up but without HBase answers with an
    exception instead, which is "not ready".
    """
    import socket
    import struct

    method, namespace = b"getTableNamesByNamespace", b"default"
    call = (struct.pack("!iI", -2147418111, len(method)) + method + struct.pack("!i", 1)  # VERSION_1 | CALL, seq 1
            + struct.pack("!bhI", 11, 1, len(namespace)) + namespace + b"\x00")  # field 1: string; stop  # fmt: skip
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(call)
        data = b""
        while len(data) < 8:
            chunk = sock.recv(4096)
            if not chunk:
                return False
            data += chunk
        version, size = struct.unpack("!iI", data[:8])
        need = 8 + size + 4 + 3  # name, seq id, the first field's header
        while len(data) < need:
            chunk = sock.recv(4096)
            if not chunk:
                return False
            data += chunk
    if version != -2147418110:  # VERSION_1 | REPLY
        return False
    field_type, field_id = struct.unpack("!bh", data[8 + size + 4 : need])
    return bool(field_id == 0 and field_type == 15)  # the success field: a list of table names
