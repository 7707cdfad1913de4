"""Reading a Structured Streaming checkpoint's offset log, through Hadoop's FileSystem (any location Spark accepts).

An ``offsets/<batch>`` file is a version line, a line of batch metadata (``batchWatermarkMs``, ...),
then one JSON line per source: ``{"<topic>": {"<partition>": offset}}`` (``-`` for none). The
initial offsets file ``sources/0/0`` is a NUL byte, a version line and the source's JSON line.
"""

from __future__ import annotations

import json
from typing import Any


def _filesystem(spark: Any, path: str) -> tuple[Any, Any]:
    jvm = spark.sparkContext._jvm
    hadoop_path = jvm.org.apache.hadoop.fs.Path(path)
    return hadoop_path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()), hadoop_path


def list_names(spark: Any, folder: str) -> list[str]:
    """The names in ``folder`` ([] if it does not exist)."""
    fs, path = _filesystem(spark, folder)
    if not fs.exists(path):
        return []
    return [status.getPath().getName() for status in fs.listStatus(path)]


def read_text(spark: Any, file: str) -> str | None:
    """The text of ``file``; None if it does not exist."""
    fs, path = _filesystem(spark, file)
    if not fs.exists(path):
        return None
    stream = fs.open(path)
    try:
        return bytes(stream.readAllBytes()).decode("utf-8")
    finally:
        stream.close()


def source_offsets(text: str, topic: str) -> dict[int, int]:
    """The offsets of ``topic`` in one offset-log file (``offsets/<n>`` or ``sources/0/0``)."""
    for line in text.lstrip("\x00").splitlines()[1:]:
        try:
            data = json.loads(line)
        except ValueError:
            continue
        if isinstance(data, dict) and "batchTimestampMs" not in data and isinstance(data.get(topic), dict):
            return {int(p): int(o) for p, o in data[topic].items()}
    return {}


def batch_watermark_ms(text: str) -> int:
    """The event-time watermark an ``offsets/<n>`` file planned its batch with."""
    return int(json.loads(text.splitlines()[1]).get("batchWatermarkMs", 0))
