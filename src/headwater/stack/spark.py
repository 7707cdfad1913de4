"""Build SparkSessions that are clients of the shared Hive metastore, with the Kafka connector on the classpath."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

from headwater.errors import ConfigError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

# Quiet, small and predictable defaults for 2 cores; everything can be overridden by the caller's conf.
_DEFAULTS = {
    "spark.sql.shuffle.partitions": "2",
    "spark.ui.enabled": "false",
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.jsonGenerator.ignoreNullFields": "false",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.driver.memory": "1g",
    "spark.sql.sources.partitionOverwriteMode": "dynamic",
    "spark.sql.streaming.forceDeleteTempCheckpointLocation": "true",
    "spark.ui.showConsoleProgress": "false",
    # Spark 4 wraps base64() output in MIME lines by default; dead-letter envelopes want one line.
    "spark.sql.chunkBase64String.enabled": "false",
}


_DRIVER_OPTS = "spark.driver.extraJavaOptions"


def build_session(
    app_name: str,
    *,
    master: str,
    metastore_uri: str,
    warehouse_dir: str | None,
    jars: list[str],
    conf: Mapping[str, str] | None = None,
    archive: bool = True,
) -> SparkSession:
    """Return a SparkSession (Hive support on) for ``app_name``.

    ``spark.jars`` only takes effect before the first SparkContext of the process, so this must be
    the first session the process creates. With ``archive`` the driver JVM maps the stack's
    class-data archive when there is one (:mod:`headwater.stack.cds`): it starts faster.

    Example:
        >>> spark = build_session("x", master="local[2]", metastore_uri="thrift://127.0.0.1:9083",
        ...                       warehouse_dir="file:///tmp/wh", jars=[])  # doctest: +SKIP
    """
    from pyspark.sql import SparkSession

    if not metastore_uri:
        # Without it Spark silently boots a private Derby catalog in the working directory.
        raise ConfigError("connections.hive.metastore_uri: must be set (e.g. thrift://host:9083)")
    # master "": the one spark-submit set (a driver of `headwater submit`); setting it here would override it.
    builder = (SparkSession.builder.master(master) if master else SparkSession.builder).appName(app_name)
    # A local driver, or the driver of a cluster on this machine's loopback, serves only this machine:
    # keep its ports (block manager, RPC) on loopback.
    loopback = {"spark.driver.bindAddress": "127.0.0.1", "spark.driver.host": "127.0.0.1"}
    settings = {**_DEFAULTS, **(loopback if master and _on_loopback(master) else {}), **(conf or {})}
    if not master:
        pass  # spark-submit gave the driver and executors their Python
    elif "spark.pyspark.python" in settings and not master.startswith("local"):
        # A driver started from Python (not spark-submit) hands its executors PYSPARK_PYTHON, read when the
        # SparkContext starts; the conf alone is only honoured by spark-submit.
        os.environ["PYSPARK_PYTHON"] = settings["spark.pyspark.python"]
    else:
        os.environ.setdefault("PYSPARK_PYTHON", os.environ.get("PYSPARK_PYTHON") or _python())
    if archive:
        from headwater.stack import StackConfig, cds

        options = " ".join(o for o in (cds.java_options(StackConfig.from_env()), settings.get(_DRIVER_OPTS)) if o)
        if options:
            settings[_DRIVER_OPTS] = options
    for key, value in settings.items():
        builder = builder.config(key, value)
    if jars:
        builder = builder.config("spark.jars", ",".join(jars))
    builder = builder.config("spark.hadoop.hive.metastore.uris", metastore_uri)
    if warehouse_dir:
        builder = builder.config("spark.sql.warehouse.dir", warehouse_dir)
    spark = builder.enableHiveSupport().getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark


def _on_loopback(master: str) -> bool:
    """True for ``local[...]`` and for a master URL on this machine's loopback (``spark://127.0.0.1:7077``)."""
    from urllib.parse import urlparse

    if master.startswith("local"):
        return True
    host = urlparse(master).hostname or ""
    return host in ("127.0.0.1", "localhost", "::1")


def _python() -> str:
    import sys

    return sys.executable
