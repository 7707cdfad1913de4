"""A class-data-sharing (CDS) archive for the Spark driver JVM, so every Spark process starts faster.

A Spark JVM looks up and parses some 20,000 classes in ~250 jars while it starts and runs its first
job; each lookup probes jar after jar. Java 17 can map the classes of an earlier run from an
archive instead (``-XX:ArchiveClassesAtExit`` to write it, ``-XX:SharedArchiveFile`` to use it).
Measured on 2 cores (docs/stack.md): SparkSession start 5.7-5.9 s -> 3.6 s, the ingest stage's
first poll of 400,000 rows 7.2-7.6 s -> 5.7-5.8 s.

The archive is made once per Java, pyspark and connector version (the key in its file name), by a
short training run of the Spark work the stages do: a Hive table read, JSON both ways, a Kafka
write and read, a streaming query and an Arrow hand-over to Python. It needs the stack's Kafka and
metastore, so :meth:`headwater.stack.Stack.up` makes it. A JVM whose class path does not match the
archive ignores it and loads its classes as usual: the archive only ever saves time. Set
``HEADWATER_CDS=0`` to run without it.

Run as ``python -m headwater.stack.cds ARCHIVE`` it is the training run (used by :func:`ensure_archive`).
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

from headwater.errors import StackError
from headwater.stack.config import StackConfig

# The JVM's own CDS messages (classes it cannot archive, a mismatching archive) go to stdout; only errors are kept.
_QUIET = "-Xlog:disable -Xlog:all=error:stderr"


def enabled() -> bool:
    """Whether Spark sessions use (and the stack makes) the archive; ``HEADWATER_CDS=0`` turns it off."""
    return os.environ.get("HEADWATER_CDS", "1") != "0"


@functools.cache
def _java_version() -> str:
    try:
        return subprocess.run(["java", "-version"], capture_output=True, text=True, check=False).stderr.strip()
    except OSError:
        return "no java"


def archive_path(config: StackConfig) -> Path:
    """Where the archive for this Java, pyspark and connector lives (it may not exist yet)."""
    import pyspark

    from headwater.stack.jars import spark_kafka_jars

    jars = Path(pyspark.__file__).parent / "jars"
    parts = [_java_version(), pyspark.__version__, *sorted(f"{p.name}:{p.stat().st_size}" for p in jars.glob("*.jar"))]
    parts += [Path(j).name for j in spark_kafka_jars(config)]
    key = hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]
    return config.cache_dir / "cds" / f"spark-{key}.jsa"


def java_options(config: StackConfig) -> str:
    """Driver JVM options that map the archive; empty when there is none (or CDS is off)."""
    if not enabled():
        return ""
    path = archive_path(config)
    return f"-XX:SharedArchiveFile={path} -Xshare:auto {_QUIET}" if path.is_file() else ""


def ensure_archive(config: StackConfig) -> float | None:
    """Make the archive unless it exists; returns the seconds the training run took (None: nothing to do).

    Needs the stack's Kafka and metastore to be up.

    Raises:
        StackError: the training run failed (its output's last lines say why).
    """
    if not enabled():
        return None
    path = archive_path(config)
    if path.is_file():
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    with (path.parent / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process making the same archive: wait for it
        if path.is_file():
            return None
        tmp = path.with_suffix(f".{os.getpid()}.partial")
        t0 = time.monotonic()
        proc = subprocess.run([sys.executable, "-m", "headwater.stack.cds", str(tmp)],
                              capture_output=True, text=True, check=False)  # fmt: skip
        if proc.returncode != 0 or not tmp.is_file() or tmp.stat().st_size == 0:
            tmp.unlink(missing_ok=True)
            tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-12:])
            raise StackError(f"class-data archive for Spark: training run failed (exit {proc.returncode}):\n{tail}")
        tmp.rename(path)
        for old in path.parent.glob("spark-*.jsa"):  # archives of other versions
            if old != path:
                old.unlink(missing_ok=True)
        return time.monotonic() - t0


def _train(archive: Path) -> None:
    """Run the Spark work of both stages once in a JVM that writes its loaded classes to ``archive`` at exit."""
    import tempfile

    from pyspark import SparkContext
    from pyspark.sql import functions as F
    from pyspark.sql.types import StructType

    from headwater import kafka
    from headwater.demo import create_orders
    from headwater.ingest.encode import to_records
    from headwater.kafka import PRODUCER_OPTIONS, use_v2_writes
    from headwater.spec.models import KafkaConnection
    from headwater.stack.jars import spark_kafka_jars
    from headwater.stack.spark import build_session
    from headwater.streaming.decode import decode, good_records

    cfg = StackConfig.from_env()
    spark = build_session(
        "headwater-cds-training", master="local[2]", metastore_uri=cfg.metastore_uri,
        warehouse_dir=f"file://{cfg.warehouse_dir}", jars=spark_kafka_jars(cfg),
        conf={"spark.driver.extraJavaOptions": f"-XX:ArchiveClassesAtExit={archive} {_QUIET}"},
        archive=False,
    )  # fmt: skip
    name = f"headwater_cds_{uuid.uuid4().hex[:8]}"
    conn = KafkaConnection(bootstrap_servers=cfg.kafka_bootstrap)
    kafka.ensure_topic(conn, name, 1)
    try:
        create_orders(spark, f"{name}.orders", 2000)
        use_v2_writes(spark)
        rows = spark.table(f"{name}.orders").where("dt IS NOT NULL")
        (to_records(rows, ["order_id"]).write.format("kafka").options(**kafka.spark_options(conn))
         .options(**PRODUCER_OPTIONS).option("topic", name).mode("append").save())  # fmt: skip
        schema: StructType = rows.schema
        stream = (spark.readStream.format("kafka").options(**kafka.spark_options(conn))
                  .option("subscribe", name).option("startingOffsets", "earliest").load())  # fmt: skip

        def batch(df, _id):  # type: ignore[no-untyped-def]
            good = good_records(decode(df, schema, ["order_id"]), schema).where(F.col("quantity") > 0)
            good.mapInArrow(lambda it: it, good.schema).count()

        with tempfile.TemporaryDirectory() as chk:
            q = stream.writeStream.foreachBatch(batch).option("checkpointLocation", chk).trigger(availableNow=True)
            q.start().awaitTermination()
    finally:
        spark.sql(f"DROP DATABASE IF EXISTS {name} CASCADE")
        with contextlib.suppress(Exception):
            kafka.admin(conn).delete_topics([name])[name].result(timeout=30)
    gateway = SparkContext._gateway
    spark.stop()
    # The JVM writes the archive as it exits, which it does when its stdin closes.
    if gateway is not None and getattr(gateway, "proc", None) is not None:
        gateway.proc.stdin.close()
        gateway.proc.wait(timeout=300)


if __name__ == "__main__":
    _train(Path(sys.argv[1]))
