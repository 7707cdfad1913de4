"""``headwater submit``: one stage of a spec as a Spark application, through pyspark's own spark-submit.

What is shipped: the packed environment and user modules (:func:`headwater.ship.shipping_conf`),
the spec file (``--files``, read by the driver from its working folder), the Kafka connector jars
(``--jars``) and, in YARN cluster mode, the driver's Python (``spark.yarn.appMasterEnv.PYSPARK_PYTHON``).
The driver program is :mod:`headwater.driver`. The application id is parsed from spark-submit's output.

Standalone masters run Python drivers only in client mode (Spark rejects cluster deploy mode for
Python applications on standalone), so ``spark://`` submissions keep the driver on this machine.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from headwater.errors import ConfigError, HeadwaterError

_YARN_ID = re.compile(r"\b(application_\d+_\d+)\b")
_STANDALONE_ID = re.compile(r"\b(app-\d{14}-\d{4,})\b")
#: Environment of the local stack that a driver in a cluster container must see to find the same stack.
_FORWARDED_ENV = ("HEADWATER_",)
_NOT_FORWARDED = {"HEADWATER_HOME", "HEADWATER_CACHE", "HEADWATER_SPARK_JARS"}


@dataclass(frozen=True)
class Submission:
    """One spark-submit command line and the environment it runs with."""

    argv: list[str]
    env: dict[str, str]
    master: str
    deploy_mode: str


def spark_submit() -> Path:
    """pyspark's own ``bin/spark-submit``."""
    import pyspark

    return Path(pyspark.__file__).parent / "bin" / "spark-submit"


def _is_local_path(location: str) -> bool:
    return "://" not in location or location.startswith("file:")


def build(spec_path: str, *, stage: str, master: str, deploy_mode: str, wait: bool) -> Submission:
    """The spark-submit command for ``stage`` of the spec at ``spec_path``.

    Raises:
        ConfigError: cluster deploy mode with a local checkpoint (a container's folder vanishes with it),
            or cluster deploy mode on a standalone master (Spark runs no Python driver there).
    """
    from headwater import ship
    from headwater.context import SUBMITTED_ENV, PipelineContext
    from headwater.spec import load_spec
    from headwater.stack import StackConfig
    from headwater.stack.jars import spark_kafka_jars

    spec = load_spec(spec_path)
    stack = StackConfig.from_env()
    ctx = PipelineContext(spec)
    if deploy_mode == "cluster" and master.startswith("spark://"):
        raise ConfigError(
            f"--master {master} --deploy-mode cluster: Spark standalone runs no Python driver in cluster mode; "
            "use --deploy-mode client (the driver runs here, executors on the cluster)"
        )
    if deploy_mode == "cluster" and stage == "process" and _is_local_path(ctx.checkpoint):
        raise ConfigError(
            f"{spec_path}: connections.spark.checkpoint_root (or process.checkpoint) must be a Hadoop filesystem "
            f"URL such as hdfs://namenode:8020/headwater/checkpoints for --deploy-mode cluster; the checkpoint "
            f"would be {ctx.checkpoint!r}, a folder of the driver's container that dies with it"
        )
    conf = {**ship.shipping_conf(spec, stack.cache_dir), **spec.connections.spark.spark_conf()}
    conf.setdefault("spark.app.name", f"headwater-{spec.name}-{stage}")
    env = {**os.environ}
    forwarded = {k: v for k, v in os.environ.items() if k.startswith(_FORWARDED_ENV) and k not in _NOT_FORWARDED}
    if deploy_mode == "cluster":
        if master == "yarn":
            conf["spark.yarn.appMasterEnv.PYSPARK_PYTHON"] = ship.ENV_PYTHON
            conf[f"spark.yarn.appMasterEnv.{SUBMITTED_ENV}"] = "1"
            for key, value in forwarded.items():
                conf[f"spark.yarn.appMasterEnv.{key}"] = value
            conf["spark.yarn.submit.waitAppCompletion"] = "true" if wait else "false"
            conf.setdefault("spark.yarn.maxAppAttempts", "1")
        else:  # Kubernetes
            conf["spark.kubernetes.driverEnv.PYSPARK_PYTHON"] = ship.ENV_PYTHON
            conf[f"spark.kubernetes.driverEnv.{SUBMITTED_ENV}"] = "1"
            conf["spark.kubernetes.submission.waitAppCompletion"] = "true" if wait else "false"
    else:
        env[SUBMITTED_ENV] = "1"
        env["PYSPARK_DRIVER_PYTHON"] = sys.executable
    if master == "yarn":
        hadoop_conf = os.environ.get("HADOOP_CONF_DIR") or str(stack.hadoop_conf_dir)
        env.setdefault("HADOOP_CONF_DIR", hadoop_conf)
        env.setdefault("YARN_CONF_DIR", env["HADOOP_CONF_DIR"])
        # Spark's own jars: taken from the nodes' pyspark at the same path (no 450 MB upload per application)
        # when the cluster is this machine; set spark.yarn.archive in connections.spark.conf for a real cluster.
        if stack.profile == "cluster":
            import pyspark

            conf.setdefault("spark.yarn.jars", f"local:{Path(pyspark.__file__).parent / 'jars'}/*")
            # Sized for the mini cluster's one NodeManager on a 2-core machine: an AM (the driver) and one executor.
            for key, value in (("spark.driver.memory", "768m"), ("spark.executor.memory", "768m"),
                               ("spark.executor.instances", "1"), ("spark.executor.cores", "1")):  # fmt: skip
                conf.setdefault(key, value)
    argv = [str(spark_submit()), "--master", master, "--deploy-mode", deploy_mode]
    argv += ["--jars", ",".join(spark_kafka_jars(stack)), "--files", str(Path(spec_path).resolve())]
    for key, value in sorted(conf.items()):
        argv += ["--conf", f"{key}={value}"]
    spec_arg = Path(spec_path).name if deploy_mode == "cluster" else str(Path(spec_path).resolve())
    argv += [str(Path(__file__).with_name("driver.py")), spec_arg, "--stage", stage, "--until-drained"]
    return Submission(argv=argv, env=env, master=master, deploy_mode=deploy_mode)


def run(sub: Submission, log: Path, *, wait: bool, timeout: float = 600.0) -> tuple[str, int | None]:
    """Start spark-submit, return (application id, exit code if it finished).

    YARN cluster mode without ``wait``: spark-submit exits once the ResourceManager accepted the
    application. Client mode: the driver is spark-submit's own process, started detached; without
    ``wait`` this returns as soon as its log names the application.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    start = log.stat().st_size if log.is_file() else 0  # the log is appended to: read only this submission's part

    def text() -> str:
        with log.open("rb") as f:
            f.seek(start)
            return f.read().decode(errors="replace")

    with log.open("ab") as out:
        proc = subprocess.Popen(sub.argv, stdout=out, stderr=subprocess.STDOUT, env=sub.env,
                                stdin=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    pattern = _YARN_ID if sub.master == "yarn" else _STANDALONE_ID
    deadline = time.monotonic() + timeout
    app_id = None
    while time.monotonic() < deadline:
        found = pattern.search(text())
        app_id = found.group(1) if found else None
        code = proc.poll()
        if app_id and not wait and (sub.deploy_mode == "client" or code is not None):
            return app_id, code
        if code is not None:
            if app_id is None:
                tail = "\n".join(text().splitlines()[-15:])
                raise HeadwaterError(
                    f"spark-submit exited with code {code} before naming an application; log: {log}\n{tail}"
                )
            return app_id, code
        time.sleep(0.5)
    raise HeadwaterError(f"spark-submit named no application within {timeout:.0f}s; log: {log}")
