"""The config models every plugin's config derives from: what the spec knows of a plugin without loading it.

Config-level hooks only (no I/O, no Spark): a source that is a Kafka topic names it, a config says which
record fields it names (for schema-drift checks), a sink has a name and an optional filter.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class SourceConfig(BaseModel):
    """Base of every source's config model. Subclasses add ``type: Literal[...]`` and their fields."""

    model_config = ConfigDict(extra="forbid")
    type: str

    def topic_spec(self) -> dict[str, Any] | None:
        """For a source that *is* a Kafka topic: the spec's ``topic`` (name, key), so the spec need not repeat it."""
        return None

    def fields_named(self) -> dict[str, list[str]]:
        """Record fields this config names, by where (e.g. ``{"source.watermark": ["updated_at"]}``)."""
        return {}

    def kafka_fields(self) -> dict[str, str]:
        """Record fields taken from the Kafka record itself: field name -> ``key``/``timestamp``/``partition``/``offset``."""
        return {}


class SinkConfig(BaseModel):
    """Base of every sink's config model."""

    model_config = ConfigDict(extra="forbid")
    type: str
    name: str | None = Field(
        default=None, pattern=r"^[A-Za-z0-9_.-]+$",
        description="Name of this sink in progress, metrics and the summary; default its type.",
    )  # fmt: skip
    where: str | None = Field(
        default=None, min_length=1,
        description="Spark SQL predicate: only the records matching it are written to this sink (e.g. alerts).",
    )  # fmt: skip

    def fields_named(self) -> dict[str, list[str]]:
        """Record fields this config names, by where (e.g. ``{"sink.row_key": ["customer_id"]}``)."""
        return {}


class TransformConfig(BaseModel):
    """Base of every transform's config model."""

    model_config = ConfigDict(extra="forbid")
    type: str
