"""The transform contract: a config model plus ``apply(df) -> df``. No I/O."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, ClassVar

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame


class TransformConfig(BaseModel):
    """Base of every transform's config model."""

    model_config = ConfigDict(extra="forbid")
    type: str


class Transform(ABC):
    """A transform plugin. ``Config`` is its pydantic config model.

    What the engine asks of it, declared rather than probed:

    - ``stateful``: it keeps state across micro-batches (``dedupe``, ``window``); the process stage
      then runs the pipeline in stateful mode;
    - ``marks_errors``: it may mark rows as failed (``_hw_error``/``_hw_error_detail`` columns),
      which the stage dead-letters;
    - ``is_window``: it aggregates event-time windows and can say which input rows arrive too late
      (:meth:`late_condition`); the stage's side query dead-letters or counts them;
    - ``planned``: set by the stage when the transform's output is part of a query planned once
      (stateful mode), so outside data is refreshed in place (:meth:`refresh_planned`).
    """

    Config: ClassVar[type[TransformConfig]]
    stateful: ClassVar[bool] = False
    marks_errors: ClassVar[bool] = False
    is_window: ClassVar[bool] = False

    def __init__(self, config: TransformConfig) -> None:
        self.config = config
        self.planned = False

    @abstractmethod
    def apply(self, df: DataFrame) -> DataFrame:
        """Return the transformed DataFrame (lazy; works on batch and streaming frames)."""

    def late_condition(self, watermark_ms: Column) -> Column:
        """For a window (``is_window``): the rows a query with ``watermark_ms`` drops as late."""
        raise NotImplementedError(f"{type(self).__name__} is not a window")

    def refresh_planned(self) -> bool:
        """Refresh outside data (a static table) that a running, planned-once query reads.

        Called about every second by the process stage in stateful mode; returns True when it
        re-read something. Nothing to refresh by default.
        """
        return False
