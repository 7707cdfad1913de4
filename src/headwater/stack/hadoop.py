"""Apache Hadoop's CLI mini cluster: HDFS (NameNode + DataNode) and YARN (ResourceManager + NodeManager) in one JVM.

``org.apache.hadoop.mapreduce.MiniHadoopClusterManager`` (from the tests jar of
``hadoop-mapreduce-client-jobclient``) is the mini cluster Hadoop publishes for running outside a
test: it also starts a MapReduce JobHistory server. Started in the cluster profile only.

Every fixed port is a :class:`~headwater.stack.config.StackConfig` field bound on loopback; the
ports the mini cluster picks itself (DataNode, NodeManager) are ephemeral, also on loopback. Once
up, the manager writes its whole configuration (``-writeConfig``, ``<state>/hadoop/written-config.xml``):
that is the readiness signal, but not a client configuration (it names test-only classes such as
``org.apache.hadoop.net.StaticMapping``, which Spark's YARN client cannot load). The client
configuration is written beforehand from the same fixed ports, as ``core-site.xml`` and
``yarn-site.xml`` in ``<state>/hadoop/conf``: point ``HADOOP_CONF_DIR``/``YARN_CONF_DIR`` at that folder
(:attr:`StackConfig.hadoop_conf_dir`) and Spark's ``--master yarn`` and ``hdfs://`` URLs find it.
"""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from xml.sax.saxutils import escape

import psutil

from headwater.errors import StackError
from headwater.stack.service import Service
from headwater.stack.supervisor import port_open

MAIN_CLASS = "org.apache.hadoop.mapreduce.MiniHadoopClusterManager"

# Hadoop's Maven tree binds SLF4J to reload4j (log4j 1.x API).
_LOG4J = """\
log4j.rootLogger=WARN,console
log4j.appender.console=org.apache.log4j.ConsoleAppender
log4j.appender.console.layout=org.apache.log4j.PatternLayout
log4j.appender.console.layout.ConversionPattern=%d{ISO8601} %-5p [%t] %c{2}: %m%n
log4j.logger.org.apache.hadoop.mapreduce.MiniHadoopClusterManager=INFO
log4j.logger.org.apache.hadoop.yarn.server.resourcemanager.RMAppManager$ApplicationSummary=INFO
log4j.logger.org.apache.hadoop.metrics2=ERROR
"""


class HadoopService(Service):
    """HDFS + YARN mini cluster (``MiniHadoopClusterManager``), one DataNode and one NodeManager."""

    name = "hadoop"
    component = "hadoop"

    @property
    def ports(self) -> list[int]:
        c = self.config
        return [
            c.hadoop_namenode_port, c.yarn_resourcemanager_port, c.hadoop_namenode_http_port,
            c.yarn_scheduler_port, c.yarn_resource_tracker_port, c.yarn_admin_port, c.yarn_webapp_port,
            c.yarn_jobhistory_port, c.yarn_jobhistory_webapp_port, c.yarn_jobhistory_admin_port,
        ]  # fmt: skip

    @property
    def address(self) -> str:
        return self.config.hdfs_uri

    @property
    def client_conf(self) -> Path:
        """The ``-writeConfig`` output: the mini cluster's whole configuration, written once it is up."""
        return self.dir / "written-config.xml"

    def client_site(self) -> dict[str, dict[str, str]]:
        """The client configuration files (``core-site.xml``, ``yarn-site.xml``) and their properties."""
        c = self.config
        h = c.host
        return {
            "core-site.xml": {"fs.defaultFS": c.hdfs_uri},
            "yarn-site.xml": {
                "yarn.resourcemanager.hostname": h,
                "yarn.resourcemanager.address": f"{h}:{c.yarn_resourcemanager_port}",
                "yarn.resourcemanager.scheduler.address": f"{h}:{c.yarn_scheduler_port}",
                "yarn.resourcemanager.resource-tracker.address": f"{h}:{c.yarn_resource_tracker_port}",
                "yarn.resourcemanager.admin.address": f"{h}:{c.yarn_admin_port}",
                "yarn.resourcemanager.webapp.address": f"{h}:{c.yarn_webapp_port}",
                "mapreduce.jobhistory.address": f"{h}:{c.yarn_jobhistory_port}",
            },
        }

    def site(self) -> dict[str, str]:
        """Settings passed with ``-D``: loopback addresses, fixed ports, container sizes for a 2-core machine."""
        c = self.config
        h = c.host
        mb = str(c.yarn_nodemanager_memory_mb)
        return {
            # DataNode and NodeManager bind loopback; clients reach them by IP, never by this machine's name.
            "dfs.datanode.hostname": h,
            "yarn.nodemanager.hostname": h,
            "yarn.resourcemanager.hostname": h,
            "yarn.resourcemanager.scheduler.address": f"{h}:{c.yarn_scheduler_port}",
            "yarn.resourcemanager.resource-tracker.address": f"{h}:{c.yarn_resource_tracker_port}",
            "yarn.resourcemanager.admin.address": f"{h}:{c.yarn_admin_port}",
            "yarn.resourcemanager.webapp.address": f"{h}:{c.yarn_webapp_port}",
            "yarn.nodemanager.address": f"{h}:0",
            "yarn.nodemanager.localizer.address": f"{h}:0",
            "yarn.nodemanager.webapp.address": f"{h}:0",
            "mapreduce.jobhistory.webapp.address": f"{h}:{c.yarn_jobhistory_webapp_port}",
            "mapreduce.jobhistory.admin.address": f"{h}:{c.yarn_jobhistory_admin_port}",
            "mapreduce.shuffle.port": str(c.yarn_shuffle_port),
            # One NodeManager: memory is accounting (containers are not reserved up front); vcores over-commit
            # the 2 cores, so a Spark application master and executors fit together.
            "yarn.nodemanager.resource.memory-mb": mb,
            "yarn.minicluster.yarn.nodemanager.resource.memory-mb": mb,
            "yarn.nodemanager.resource.cpu-vcores": str(c.yarn_nodemanager_vcores),
            "yarn.scheduler.minimum-allocation-mb": "256",
            "yarn.scheduler.maximum-allocation-mb": mb,
            "yarn.scheduler.maximum-allocation-vcores": str(c.yarn_nodemanager_vcores),
            # A JVM plus Python workers exceeds the virtual-memory ratio at once; memory is bounded by the heaps.
            "yarn.nodemanager.vmem-check-enabled": "false",
            "yarn.nodemanager.pmem-check-enabled": "false",
            # Keep a killed application's containers around only briefly, and the disk checker off (full disks
            # on a shared machine would mark the only node unhealthy).
            "yarn.nodemanager.disk-health-checker.enable": "false",
            "yarn.nodemanager.delete.debug-delay-sec": "0",
            "dfs.replication": "1",
            "dfs.permissions.enabled": "false",
        }

    def prepare(self) -> None:
        conf = self.config.hadoop_conf_dir
        conf.mkdir(parents=True, exist_ok=True)
        self._log_start = self.log.stat().st_size if self.log.is_file() else 0  # this start's part of the log
        # The written configuration is the readiness signal: remove the previous run's.
        self.client_conf.unlink(missing_ok=True)
        (self.dir / "details.json").unlink(missing_ok=True)
        (self.dir / "log4j.properties").write_text(_LOG4J)
        for filename, props in self.client_site().items():
            body = "".join(
                f"  <property><name>{k}</name><value>{escape(v)}</value></property>\n" for k, v in props.items()
            )
            (conf / filename).write_text(f"<configuration>\n{body}</configuration>\n")

    @property
    def formatted(self) -> bool:
        """True once HDFS has a NameNode image (then a restart keeps the data)."""
        return (self.dir / "data" / "dfs" / "name-0-1" / "current" / "VERSION").is_file()

    def command(self) -> list[str]:
        c = self.config
        args = [
            f"-Xmx{c.hadoop_heap}", "-XX:+UseG1GC",
            f"-Dlog4j.configuration=file:{self.dir / 'log4j.properties'}",
            # MiniDFSCluster and MiniYARNCluster keep their data under test.build.data (and the working folder).
            f"-Dtest.build.data={self.dir / 'data'}",
            f"-Djava.io.tmpdir={self.dir / 'tmp'}",
            "-cp", self.classpath(), MAIN_CLASS,
            "-nnport", str(c.hadoop_namenode_port), "-nnhttpport", str(c.hadoop_namenode_http_port),
            "-rmport", str(c.yarn_resourcemanager_port), "-jhsport", str(c.yarn_jobhistory_port),
            "-datanodes", "1", "-nodemanagers", "1",
            "-writeConfig", str(self.client_conf), "-writeDetails", str(self.dir / "details.json"),
        ]  # fmt: skip
        if not self.formatted:
            args.append("-format")
        for key, value in self.site().items():
            args += ["-D", f"{key}={value}"]
        return args

    def argv(self) -> list[str]:
        (self.dir / "tmp").mkdir(parents=True, exist_ok=True)
        return super().argv()

    def probe(self) -> bool:
        """Ready when the manager has written the client configuration and the RM's REST API reports a node."""
        c = self.config
        if not self.client_conf.is_file():
            self._check_main_thread()
            return False
        if not port_open(c.host, c.hadoop_namenode_port):
            return False
        url = f"http://{c.host}:{c.yarn_webapp_port}/ws/v1/cluster/metrics"
        with urllib.request.urlopen(url, timeout=5) as resp:
            metrics = json.load(resp)["clusterMetrics"]
        return int(metrics.get("activeNodes", 0)) >= 1

    def _check_main_thread(self) -> None:
        """Raise if the manager's main thread died (a port in use, ...): the JVM lives on, its servers' threads
        keep it up, so waiting would only run into the timeout."""
        start = getattr(self, "_log_start", None)
        if start is None:  # not started by this object: its log part is unknown
            return
        try:
            with self.log.open("rb") as f:
                f.seek(start)
                text = f.read().decode(errors="replace")
        except OSError:
            return
        at = text.rfind('Exception in thread "main"')
        if at >= 0 and "Started MiniMRCluster" not in text[at:]:
            first = text[at:].splitlines()[0]
            raise StackError(f"{self.name}: the mini cluster failed to start: {first[:400]}; log: {self.log}")

    def containers(self) -> list[psutil.Process]:
        """Processes YARN launched for containers (Spark AMs, executors, Python workers) of this cluster.

        The NodeManager starts them in their own sessions under its folders here, so stopping the mini
        cluster's JVM does not stop them; :meth:`headwater.stack.stack.Stack.down` ends them too.
        """
        folder = str(self.dir)
        found = []
        for proc in psutil.process_iter(["cmdline", "cwd"]):
            try:
                cmd = " ".join(proc.info["cmdline"] or [])
                cwd = proc.info["cwd"] or ""
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            if (cwd.startswith(folder) or folder in cmd) and MAIN_CLASS not in cmd:
                found.append(proc)
        return found
