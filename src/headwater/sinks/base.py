"""The sink contract, in two levels.

``Sink`` lives on the driver: it validates its config against the records' schema, prepares the
target (creates tables), writes each micro-batch and can drop its data for a reset. Where it writes
from the executors, it builds a picklable description on the driver; the description opens a live
connection only on the executor: a client is never pickled.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from headwater.spec.configs import SinkConfig as SinkConfig  # re-exported: plugins import it from here

if TYPE_CHECKING:
    from pyspark.sql import DataFrame
    from pyspark.sql.types import StructType


@dataclass
class SinkResult:
    """What one write of a micro-batch did.

    ``rows``: records given; ``written``: records (or cells' rows) stored; ``deduped``: records that
    replaced another of the same identity in the same write; ``rejected``: records the sink refused
    (each a dict with ``reason``, ``message``, ``partition``, ``offset``, ``payload``), which the
    stage dead-letters; ``calls``/``retries``/``bytes``: the I/O it took.
    """

    rows: int = 0
    written: int = 0
    deduped: int = 0
    calls: int = 0
    retries: int = 0
    bytes: int = 0
    rejected: list[dict[str, Any]] = field(default_factory=list)

    def counters(self) -> dict[str, int]:
        """The numeric fields, for progress files and metrics."""
        return {"rows": self.rows, "written": self.written, "deduped": self.deduped, "rejected": len(self.rejected),
                "calls": self.calls, "retries": self.retries, "bytes": self.bytes}  # fmt: skip


class Sink(ABC):
    """A sink plugin. ``Config`` is its pydantic config model; ``connections`` the spec's connections.

    ``guarantee`` says, in one line, what a replayed micro-batch does to the target.
    """

    Config: ClassVar[type[SinkConfig]]
    guarantee: ClassVar[str] = "at least once"
    # Modules the sink's executor-side code imports: an idle stage keeps Python workers with them loaded.
    worker_modules: ClassVar[tuple[str, ...]] = ()

    def __init__(self, config: SinkConfig, connections: Any) -> None:
        self.config = config
        self.connections = connections

    @property
    def name(self) -> str:
        """The sink's name in progress and metrics (config ``name``, else its type)."""
        return self.config.name or self.config.type

    def required_fields(self) -> list[str]:
        """Record fields that must be present and non-null (else the record is a dead letter)."""
        return []

    def columns_used(self, schema: StructType) -> list[str]:
        """The columns of ``schema`` the sink reads (default: all)."""
        return list(schema.fieldNames())

    def check(self, schema: StructType) -> None:  # noqa: B027 - optional hook
        """Raise :class:`~headwater.errors.ConfigError` if the records (``schema``) do not fit the sink."""

    def prepare(self) -> None:  # noqa: B027 - optional hook
        """Create or check the target on the driver before the first write."""

    def drop(self) -> list[str]:
        """Delete what the sink wrote (``headwater reset --sinks``); returns what was done."""
        return []

    def describe_target(self) -> str:
        """One line naming the target, e.g. ``hbase table demo:orders``."""
        return f"{self.config.type} sink"

    @abstractmethod
    def write(self, df: DataFrame) -> SinkResult:
        """Write one micro-batch. Must be idempotent on replay, or say otherwise in ``guarantee``."""

    def rehearse(self, df: DataFrame) -> None:
        """Run the code path of :meth:`write` over ``df`` (synthetic records) without touching the target.

        The process stage calls it while idle, so the first real micro-batch finds the JVM's code
        compiled and the Python workers warm (:mod:`headwater.streaming.warm`). Default: compute every
        column of ``df`` and discard it (Spark's ``noop`` format). Override to go further down the
        write path; it must never write, connect to the target, or raise for a target that is away.
        """
        df.write.format("noop").mode("overwrite").save()
