"""The training run of the Spark class-data archive: the Spark work of both stages, once.

``headwater stack up`` runs ``python -m headwater.warmup <archive>`` (see :mod:`headwater.stack.cds`) in
a driver JVM started with ``-XX:ArchiveClassesAtExit``: a Hive table read, JSON both ways, a Kafka
write and read, a streaming query and ``mapInArrow``. Every later Spark JVM maps the classes it loaded.
It lives above the stages (it uses them); the stack names it without importing it.
"""

from __future__ import annotations

import contextlib
import sys
import uuid
from pathlib import Path


def train(archive: Path) -> None:
    """Run the Spark work of both stages once in a JVM that writes its loaded classes to ``archive`` at exit."""
    import tempfile

    from pyspark import SparkContext
    from pyspark.sql import functions as F
    from pyspark.sql.types import StructType

    from headwater import kafka
    from headwater.demo import create_orders
    from headwater.kafka import PRODUCER_OPTIONS, use_v2_writes
    from headwater.records import to_records
    from headwater.spec.connections import KafkaConnection
    from headwater.stack.cds import QUIET
    from headwater.stack.config import StackConfig
    from headwater.stack.jars import spark_kafka_jars
    from headwater.stack.spark import build_session
    from headwater.streaming.decode import decode, good_records

    cfg = StackConfig.from_env()
    spark = build_session(
        "headwater-cds-training", master="local[2]", metastore_uri=cfg.metastore_uri,
        warehouse_dir=f"file://{cfg.warehouse_dir}", jars=spark_kafka_jars(cfg),
        conf={"spark.driver.extraJavaOptions": f"-XX:ArchiveClassesAtExit={archive} {QUIET}"},
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
    train(Path(sys.argv[1]))
