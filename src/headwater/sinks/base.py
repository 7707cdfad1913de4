"""The sink contract, in two levels.

``Sink`` lives on the driver: it validates config, prepares the target (creates tables) and
returns a picklable writer description. The description opens a live connection only on the
executor, inside ``write_partition``: a client is never pickled.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import DataFrame


class SinkConfig(BaseModel):
    """Base of every sink's config model."""

    model_config = ConfigDict(extra="forbid")
    type: str


class Sink(ABC):
    """A sink plugin. ``Config`` is its pydantic config model."""

    Config: ClassVar[type[SinkConfig]]

    def __init__(self, config: SinkConfig, connections: Any) -> None:
        self.config = config
        self.connections = connections

    def prepare(self) -> None:  # noqa: B027 - optional hook
        """Create or check the target on the driver before the first write."""

    @abstractmethod
    def write(self, df: DataFrame) -> dict[str, int]:
        """Write one micro-batch; return counters (at least ``rows``). Must be idempotent on replay."""


class PartitionWriter(ABC):
    """Executor-side writer over Arrow record batches; holds the live connection."""

    @abstractmethod
    def write_batches(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        """Write the batches; yield one small batch of counters per partition."""
