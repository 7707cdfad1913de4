"""The source contract.

A source reads the next increment of its data as a Spark DataFrame, given the last committed
position, and says which position to commit once the increment is safely in Kafka. Positions are
plain JSON-serialisable dicts, so the ingest stage can store them durably without knowing the source.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from headwater.spec.configs import SourceConfig as SourceConfig  # re-exported: plugins import it from here

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.types import StructType


@dataclass
class Increment:
    """One read of a source: the rows, the position to commit after they reached Kafka, and a summary."""

    df: DataFrame
    position: dict[str, Any]
    description: str = ""
    events: list[str] = field(default_factory=list)


class Source(ABC):
    """A source plugin. ``Config`` is its pydantic config model; ``connections`` the spec's connections.

    ``needs_ingest``: False for a source that already is a Kafka topic (the process stage reads it
    directly, no ingest stage runs).
    """

    Config: ClassVar[type[SourceConfig]]
    needs_ingest: ClassVar[bool] = True

    def __init__(self, config: SourceConfig, connections: Any = None) -> None:
        self.config = config
        self.connections = connections

    def describe(self) -> str:
        """What is read, in a few words (a table name, ``kafka topic x``): errors and progress name it."""
        return f"{self.config.type} source"

    def poll_seconds(self) -> float:
        """Pause between two reads when nothing was new."""
        return 5.0

    def finished(self, position: dict[str, Any] | None) -> bool:
        """Whether nothing will ever be new after ``position`` (a snapshot that was read)."""
        return False

    @abstractmethod
    def schema(self, spark: SparkSession) -> StructType:
        """The schema of the rows this source produces (used by the process stage to decode)."""

    @abstractmethod
    def read(self, spark: SparkSession, position: dict[str, Any] | None) -> Increment | None:
        """Return the rows after ``position`` (``None``: never read), or ``None`` if nothing is new."""

    def rehearsal_rows(self, spark: SparkSession, rows: int) -> DataFrame | None:
        """At most ``rows`` rows shaped as :meth:`read` returns them, read without side effects or ``None``.

        The ingest stage reads and serializes them (writing nothing) while idle, so the first increment
        finds the read path compiled. ``None`` (the default): the source is not rehearsed.
        """
        return None

    def check(self, spark: SparkSession) -> None:  # noqa: B027 - optional hook
        """Fail with a clear :class:`~headwater.errors.NotFoundError` if the source does not exist."""
