"""What both stages of one pipeline share: the spec, its folders, its plugins and its SparkSession."""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from headwater import plugins
from headwater.ship import shipping_conf

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from headwater.sinks.base import Sink
    from headwater.sources.base import Source
    from headwater.spec.models import PipelineSpec
    from headwater.transforms.base import Transform


class PipelineContext:
    """One pipeline at run time."""

    def __init__(self, spec: PipelineSpec, home: Path | None = None) -> None:
        from headwater.stack import StackConfig

        self.spec = spec
        self.home = (home or StackConfig.from_env().root) / "pipelines" / spec.name
        self.home.mkdir(parents=True, exist_ok=True)

    @property
    def checkpoint(self) -> str:
        """Spark checkpoint location of the process stage.

        ``process.checkpoint``; else ``<connections.spark.checkpoint_root>/<name>``; else a local folder
        under home. Any Hadoop filesystem URL: headwater reads and deletes it through Hadoop's FileSystem.
        """
        if self.spec.process.checkpoint:
            return self.spec.process.checkpoint
        root = self.spec.connections.spark.checkpoint_root
        if root:
            return f"{root.rstrip('/')}/{self.spec.name}"
        return str(self.home / "checkpoint")

    def progress_path(self, stage: str) -> Path:
        return self.home / f"{stage}.progress.json"

    @property
    def position_key(self) -> str:
        return f"{self.spec.name}/ingest"

    @cached_property
    def source(self) -> Source:
        cls = plugins.get("source", self.spec.source.type)
        return cls(self.spec.source, self.spec.connections)  # type: ignore[no-any-return]

    @cached_property
    def transforms(self) -> list[Transform]:
        return [plugins.get("transform", t.type)(t) for t in self.spec.transforms]

    @cached_property
    def sinks(self) -> list[Sink]:
        """The pipeline's sinks, in spec order."""
        return [plugins.get("sink", c.type)(c, self.spec.connections) for c in self.spec.sinks]

    @property
    def sink(self) -> Sink:
        """The first sink."""
        return self.sinks[0]

    def spark(self, app: str, extra_conf: dict[str, Any] | None = None) -> SparkSession:
        """The SparkSession of this process, a client of the spec's metastore, with the Kafka connector."""
        from headwater.stack import StackConfig
        from headwater.stack.jars import spark_kafka_jars
        from headwater.stack.spark import build_session

        c = self.spec.connections
        check_metastore(c.hive.metastore_uri)
        warehouse = c.hive.warehouse_dir
        jars = os.environ.get("HEADWATER_SPARK_JARS")
        stack = StackConfig.from_env()
        if submitted():  # spark-submit (headwater submit) set the master and shipped code and jars already
            return build_session(
                f"headwater-{self.spec.name}-{app}", master="", metastore_uri=c.hive.metastore_uri,
                warehouse_dir=warehouse, jars=[], conf={**c.spark.spark_conf(), **(extra_conf or {})}, archive=False,
            )  # fmt: skip
        # Executors of a cluster may lack headwater, its dependencies and the user's modules: ship them.
        shipped = {} if c.spark.master.startswith("local") else shipping_conf(self.spec, stack.cache_dir)
        return build_session(
            f"headwater-{self.spec.name}-{app}",
            master=c.spark.master,
            metastore_uri=c.hive.metastore_uri,
            warehouse_dir=warehouse,
            jars=jars.split(",") if jars else spark_kafka_jars(stack),
            conf={**shipped, **c.spark.spark_conf(), **(extra_conf or {})},
        )


#: Set in the environment of a driver that ``headwater submit`` started through spark-submit.
SUBMITTED_ENV = "HEADWATER_SUBMITTED"


def submitted() -> bool:
    """True in a driver started by ``headwater submit`` (spark-submit chose the master and shipped the code)."""
    return os.environ.get(SUBMITTED_ENV) == "1"


def delete_with_hadoop(location: str) -> bool:
    """Delete ``location`` (recursively) through Hadoop's FileSystem; False if it did not exist.

    For any Hadoop filesystem URL (hdfs://, s3a://, ...). Starts a small local SparkSession only for its
    JVM's Hadoop client (``HADOOP_CONF_DIR`` and ``spark.hadoop.*`` apply as in the stages), and stops it.
    """
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.master("local[1]").appName("headwater-reset").config("spark.ui.enabled", "false")
    spark = builder.getOrCreate()
    try:
        jvm: Any = spark.sparkContext._jvm
        path = jvm.org.apache.hadoop.fs.Path(location)
        fs = path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
        return bool(fs.exists(path) and fs.delete(path, True))
    finally:
        spark.stop()


def reset_pipeline(spec: PipelineSpec, *, topics: bool = False, table: bool = False) -> list[str]:
    """Delete a pipeline's position and checkpoint (and optionally topics and sink table)."""
    import shutil

    from headwater import kafka

    ctx = PipelineContext(spec)
    done = []
    conn = spec.connections.kafka
    kafka.PositionStore(conn, spec.state_topic).commit(ctx.position_key, None)
    done.append(f"position {ctx.position_key} deleted from {spec.state_topic}")
    if spec.process.checkpoint is None and spec.connections.spark.checkpoint_root:
        deleted = delete_with_hadoop(ctx.checkpoint)
        done.append(f"checkpoint {ctx.checkpoint} {'deleted' if deleted else 'absent'}")
    elif spec.process.checkpoint is None:
        shutil.rmtree(ctx.checkpoint, ignore_errors=True)
        done.append(f"checkpoint {ctx.checkpoint} deleted")
    else:
        done.append(f"checkpoint {spec.process.checkpoint} is external: delete it yourself")
    for f in ctx.home.glob("*.progress.json"):
        f.unlink()
    if topics:
        names = [spec.topic.name, spec.dead_letter.topic]
        client = kafka.admin(conn)  # keep a reference: the futures die with their client
        existing = client.list_topics(timeout=10).topics
        futures = client.delete_topics([n for n in names if n in existing]) if set(names) & set(existing) else {}
        for name, fut in futures.items():
            fut.result(timeout=30)
            done.append(f"topic {name} deleted")
    if table:
        for sink in ctx.sinks:
            done += sink.drop()
    return done


def check_metastore(uri: str, timeout_ms: int = 10_000) -> None:
    """Raise ServiceUnavailable naming ``uri`` unless a Hive metastore answers there.

    Spark's own client retries for a long time and then fails with a stack trace; this says it in one line.
    """
    from urllib.parse import urlparse

    from headwater.errors import ConfigError, ServiceUnavailable
    from headwater.stack.metastore import list_databases

    first = uri.split(",")[0]
    parsed = urlparse(first)
    if parsed.scheme != "thrift" or not parsed.hostname or not parsed.port:
        raise ConfigError(f"connections.hive.metastore_uri: {uri!r} is not thrift://host:port")
    try:
        list_databases(parsed.hostname, parsed.port, timeout_ms=timeout_ms)
    except Exception as exc:
        raise ServiceUnavailable(f"Hive metastore not reachable at {first}: {type(exc).__name__}: {exc}") from None
