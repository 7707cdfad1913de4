"""The transform contract: a config model plus ``apply(df) -> df``. No I/O."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, ClassVar

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from pyspark.sql import DataFrame


class TransformConfig(BaseModel):
    """Base of every transform's config model."""

    model_config = ConfigDict(extra="forbid")
    type: str


class Transform(ABC):
    """A transform plugin. ``Config`` is its pydantic config model."""

    Config: ClassVar[type[TransformConfig]]

    def __init__(self, config: TransformConfig) -> None:
        self.config = config

    @abstractmethod
    def apply(self, df: DataFrame) -> DataFrame:
        """Return the transformed DataFrame (lazy; works on batch and streaming frames)."""

    def refresh_planned(self) -> bool:
        """Refresh outside data (a static table) that a running, planned-once query reads.

        Called about every second by the process stage in stateful mode; returns True when it
        re-read something. Nothing to refresh by default.
        """
        return False
