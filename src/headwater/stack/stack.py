"""The local stack as one object: start, stop and inspect every service together."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import psutil

from headwater.errors import StackError
from headwater.stack import jars, spark_cluster, supervisor
from headwater.stack.config import StackConfig
from headwater.stack.hadoop import HadoopService
from headwater.stack.hbase import HBaseService, HBaseThrift2Service, HBaseThriftService
from headwater.stack.kafka import KafkaService
from headwater.stack.metastore import MetastoreService
from headwater.stack.service import Service

Progress = Callable[[str], None]


@dataclass
class ServiceStatus:
    """One service as ``stack status`` shows it."""

    name: str
    state: str  # running | stopped | unhealthy
    pid: int | None
    address: str
    ports: list[int]
    rss_mb: float | None
    log: str
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Stack:
    """The embedded stack: Hive metastore, HBase (+ZooKeeper), Kafka and the HBase Thrift server."""

    def __init__(self, config: StackConfig | None = None) -> None:
        self.config = config or StackConfig.from_env()
        self.services: list[Service] = services_for(self.config)

    def record_profile(self) -> None:
        """Remember this stack's profile in its state folder (read back by :meth:`StackConfig.from_env`)."""
        from headwater.stack.config import PROFILE_FILE

        self.config.state_dir.mkdir(parents=True, exist_ok=True)
        (self.config.state_dir / PROFILE_FILE).write_text(self.config.profile + "\n")

    def service(self, name: str) -> Service:
        """The service called ``name``; an unknown name lists the known ones."""
        for s in self.services:
            if s.name == name:
                return s
        raise StackError(f"unknown service '{name}'; known: {', '.join(s.name for s in self.services)}")

    def _check_ports_free(self, svc: Service) -> None:
        for port in svc.ports:
            if supervisor.port_open(self.config.host, port):
                owner = _port_owner(port)
                raise StackError(
                    f"{svc.name}: port {self.config.host}:{port} is already in use"
                    f"{f' by pid {owner}' if owner else ''}, not by this stack; stop that process or set "
                    f"another port (HEADWATER_*_PORT, see docs/stack.md). log: {svc.log}"
                )

    def up(self, progress: Progress | None = None) -> dict[str, float]:
        """Start every service that is not running and wait until all answer. Returns seconds per step."""
        say = progress or (lambda _msg: None)
        timings: dict[str, float] = {}
        t0 = time.monotonic()
        needed = {svc.component for svc in self.services} | {"spark-kafka"}
        for component in (c for c in jars.COMPONENTS if c in needed):
            if not jars.is_fetched(self.config, component):
                say(f"fetching jars for {component} with mvn ...")
            jars.fetch(self.config, component)
        timings["jars"] = time.monotonic() - t0
        started: dict[str, int | None] = {}
        for svc in self.services:
            proc = supervisor.find(self.config.root, svc.name)
            if proc is not None:
                say(f"{svc.name}: already running (pid {proc.pid})")
                started[svc.name] = proc.pid
                continue
            self._check_ports_free(svc)
            svc.prepare()
            env = svc.environment()
            started[svc.name] = supervisor.start(svc.argv(), svc.log, cwd=svc.dir, env=env, exact_env=env is not None)
            say(f"{svc.name}: started (pid {started[svc.name]}), log {svc.log}")
        for svc in self.services:
            waited = supervisor.wait_ready(
                svc.name, svc.probe, pid=started[svc.name], address=svc.address, log=svc.log,
                timeout=self.config.start_timeout,
            )  # fmt: skip
            timings[svc.name] = time.monotonic() - t0
            say(f"{svc.name}: ready on {svc.address} ({waited:.1f}s)")
        self._ensure_class_archive(say, timings)
        timings["total"] = time.monotonic() - t0
        return timings

    def _ensure_class_archive(self, say: Progress, timings: dict[str, float]) -> None:
        """Make the Spark class-data archive once (it needs Kafka and the metastore); a failure only costs speed."""
        from headwater.stack import cds

        if not cds.enabled() or cds.archive_path(self.config).is_file():
            return
        say("spark: making the class-data archive (once per Java/pyspark version, ~40 s) ...")
        try:
            seconds = cds.ensure_archive(self.config)
        except StackError as exc:
            say(f"spark: WARNING: no class-data archive, Spark JVMs start slower: {exc}")
            return
        if seconds is not None:
            timings["spark-cds"] = seconds
            say(f"spark: class-data archive {cds.archive_path(self.config).name} made in {seconds:.1f}s")

    def down(self, purge: bool = False, progress: Progress | None = None) -> None:
        """Stop the processes this stack started, in reverse order; ``purge`` also deletes the state."""
        say = progress or (lambda _msg: None)
        done: set[str] = set()
        for svc in reversed(self.services):
            if svc.name in done:
                continue
            # Brokers of one Kafka cluster stop together: the last of three stopped alone would wait for a
            # controller quorum that is gone (KRaft needs a majority to grant a controlled shutdown).
            group = [g for g in self.services if svc.stop_group and g.stop_group == svc.stop_group] or [svc]
            done.update(g.name for g in group)
            procs = {g.name: p for g in group if (p := supervisor.find(self.config.root, g.name)) is not None}
            timeout = 90 if svc.name == "hbase" else 45
            for name, (pid, how) in supervisor.stop_together(list(procs.items()), timeout=timeout).items():
                say(f"{name}: {how} (pid {pid})")
        for svc in self.services:
            if isinstance(svc, HadoopService):  # YARN containers outlive the NodeManager's JVM
                for child in svc.containers():
                    say(f"{svc.name}: container process {supervisor.stop(child, timeout=10)} (pid {child.pid})")
        if purge:
            shutil.rmtree(self.config.state_dir, ignore_errors=True)
            say(f"state deleted: {self.config.state_dir}")

    def status(self, probe: bool = True) -> list[ServiceStatus]:
        """Every service's state, pid, ports and resident memory."""
        out = []
        for svc in self.services:
            proc = supervisor.find(self.config.root, svc.name)
            rss = None
            state = "stopped"
            if proc is not None:
                try:
                    rss = round(proc.memory_info().rss / 2**20, 1)
                except psutil.NoSuchProcess:
                    proc = None
            if proc is not None:
                healthy = True
                if probe:
                    try:
                        healthy = svc.probe()
                    except Exception:
                        healthy = False
                state = "running" if healthy else "unhealthy"
            out.append(
                ServiceStatus(
                    name=svc.name, state=state, pid=proc.pid if proc else None, address=svc.address,
                    ports=svc.ports, rss_mb=rss, log=str(svc.log),
                )
            )  # fmt: skip
        return out

    def healthy(self) -> bool:
        """True if every service runs and answers."""
        return all(s.state == "running" for s in self.status())


def services_for(config: StackConfig) -> list[Service]:
    """The services of ``config.profile``, in start order.

    The slow HBase master starts early and the Thrift servers last, since they need the master. The
    cluster profile adds the cluster engines after the services they depend on.
    """
    services: list[Service] = [
        MetastoreService(config),
        HBaseService(config),
        *(KafkaService(config, node) for node in config.kafka_nodes),  # cluster profile: three brokers
        HBaseThriftService(config),
        HBaseThrift2Service(config),
    ]
    if config.profile == "cluster":
        services += spark_cluster.services(config)  # Spark standalone: a master and its workers
        services += [HadoopService(config)]  # HDFS + YARN mini cluster
    return services


def _port_owner(port: int) -> int | None:
    try:
        for conn in psutil.net_connections(kind="tcp"):
            if conn.laddr and conn.laddr.port == port and conn.status == psutil.CONN_LISTEN:
                return int(conn.pid) if conn.pid is not None else None
    except psutil.AccessDenied:
        return None
    return None
