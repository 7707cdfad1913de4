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

import fcntl
import functools
import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

from headwater.errors import StackError
from headwater.stack.config import StackConfig

# The JVM's own CDS messages (classes it cannot archive, a mismatching archive) go to stdout; only errors are kept.
QUIET = "-Xlog:disable -Xlog:all=error:stderr"


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


TRAINER = "headwater.warmup"  # module run as `python -m TRAINER <archive>` to make the archive


def java_options(config: StackConfig) -> str:
    """Driver JVM options that map the archive; empty when there is none (or CDS is off)."""
    if not enabled():
        return ""
    path = archive_path(config)
    return f"-XX:SharedArchiveFile={path} -Xshare:auto {QUIET}" if path.is_file() else ""


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
        # The training job exercises the stages' Spark work; it lives above the stack (headwater.warmup),
        # so it is named here, never imported.
        proc = subprocess.run([sys.executable, "-m", TRAINER, str(tmp)],
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
