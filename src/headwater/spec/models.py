"""The pipeline spec: pydantic models for one ``pipeline.yaml``.

The top-level models here are fixed; ``source``, each transform and ``sink`` are plugin config
models chosen by their ``type`` through :mod:`headwater.plugins`:
:func:`headwater.spec.schema.spec_model_for` builds the concrete :class:`PipelineSpec` subclass for
one document, importing only the plugins it names.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    ConfigDict,
    Field,
    SerializeAsAny,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from headwater.errors import ConfigError
from headwater.spec.configs import SinkConfig, SourceConfig, TransformConfig
from headwater.spec.connections import (
    ConfValue,
    Connections,
    SpecModel,
)
from headwater.spec.expectations import Expectations

_TOPIC_RE = re.compile(r"[a-zA-Z0-9._-]{1,249}")
_NAME_RE = re.compile(r"[a-z][a-z0-9_-]{0,62}")
_IDENT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_TRIGGER_RE = re.compile(r"\s*(\d+)\s*([a-z]+)\s*")
# unit as written -> (canonical Spark unit, milliseconds per unit)
_TRIGGER_UNITS: dict[str, tuple[str, int]] = {
    **dict.fromkeys(("ms", "millisecond", "milliseconds"), ("millisecond", 1)),
    **dict.fromkeys(("s", "sec", "second", "seconds"), ("second", 1000)),
    **dict.fromkeys(("min", "minute", "minutes"), ("minute", 60_000)),
}


def _topic_name(value: str) -> str:
    if not _TOPIC_RE.fullmatch(value) or value in {".", ".."}:
        raise PydanticCustomError(
            "topic_name", "invalid Kafka topic name: use 1 to 249 of the characters a-z A-Z 0-9 . _ -"
        )
    return value


TopicName = Annotated[str, AfterValidator(_topic_name)]


#: A topic's replication factor: a number, or None (left out) for the cluster's ``default.replication.factor``.
Replication = Annotated[int, Field(ge=1)] | None
REPLICATION_HELP = (
    "Replication factor, used when the topic is created; left out: the cluster's default.replication.factor "
    "(1 on the local stack, 3 on the cluster profile). More than the brokers of the cluster is an error."
)


class TopicSpec(SpecModel):
    """The Kafka topic between ingest and process."""

    name: TopicName = Field(description="Topic name (1-249 of a-z A-Z 0-9 . _ -).")
    partitions: int = Field(default=2, ge=1, description="Partitions, created if the topic is missing.")
    replication: Replication = Field(default=None, description=REPLICATION_HELP)
    key: list[str] = Field(min_length=1, description="Columns forming the Kafka record key.")
    config: dict[str, ConfValue] = Field(
        default_factory=dict, description="Topic configs used at creation (retention.ms, ...)."
    )

    @field_validator("key")
    @classmethod
    def _unique_key(cls, value: list[str]) -> list[str]:
        dupes = sorted({c for c in value if value.count(c) > 1})
        if dupes:
            raise PydanticCustomError("key_columns", "duplicate key columns: {dupes}", {"dupes": ", ".join(dupes)})
        return value


class DeadLetterSpec(SpecModel):
    """The topic receiving records that cannot be processed."""

    topic: TopicName = Field(description="Dead-letter topic name.")
    partitions: int = Field(default=1, ge=1, description="Partitions, created if the topic is missing.")
    replication: Replication = Field(default=None, description=REPLICATION_HELP)


def _duration(value: Any) -> Any:
    """A duration as text ('10 minutes', '90 s'), checked here so a bad one is a spec error."""
    from headwater.timeutil import parse_duration

    if isinstance(value, str):
        try:
            if parse_duration(value) <= 0:
                raise ValueError
        except (ConfigError, ValueError):
            raise PydanticCustomError(
                "duration", "expected a positive duration such as '10 minutes', '90 s', '500 ms'"
            ) from None
    return value


class RetryBound(SpecModel):
    """How many retries (restarts) of transient failures a stage makes before it fails with the last cause."""

    max: int = Field(default=5, ge=0, description="Retries allowed within the window; 0: fail at the first error.")
    within: Annotated[str, AfterValidator(_duration)] = Field(
        default="10 minutes", description="The sliding window the retries are counted in, e.g. '10 minutes'."
    )

    @property
    def within_seconds(self) -> float:
        """The window in seconds."""
        from headwater.timeutil import parse_duration

        return parse_duration(self.within)


class IngestSpec(SpecModel):
    """How the ingest stage runs."""

    rehearse: bool = Field(
        default=True,
        description="When the stage first finds nothing new, read a sample of the source and serialize it "
        "(writing nothing), and ready Spark's Kafka producer with one tombstone under a reserved key in the "
        "state topic, so the first increment is not slowed by a cold JVM; the producer is kept alive while idle.",
    )

    retries: RetryBound = Field(
        default_factory=lambda: RetryBound(max=10),
        description="Retries of a poll that failed with a transient error (Kafka, metastore away); more within "
        "the window fail the stage with the last cause. A permanent error (missing topic, record over Kafka's "
        "size limit, authorization) fails it at once.",
    )


class ProcessSpec(SpecModel):
    """How the streaming (process) stage runs."""

    trigger: str = Field(
        default="500 milliseconds",
        description="Micro-batch interval '<number> <unit>', unit ms, s, sec, second(s), min, minute(s); "
        "normalized to Spark's form ('500 milliseconds', '1 second').",
    )
    max_offsets_per_trigger: int | None = Field(
        default=200000, ge=1, description="Upper bound of Kafka records per micro-batch; None: no bound."
    )
    checkpoint: str | None = Field(
        default=None, min_length=1, description="Checkpoint location; None: chosen at run time."
    )
    rehearse: bool = Field(
        default=True,
        description="While no record waits when the stage starts, run its micro-batch over synthetic records "
        "that fit the schema, writing nothing, so the first real batch finds the JVM and the workers warm. "
        "Only a stateless pipeline without python transforms or fail expectations rehearses.",
    )
    starting_offsets: Literal["earliest", "latest"] = Field(
        default="earliest", description="Where a new query starts reading the topic."
    )
    on_data_loss: Literal["fail", "skip"] = Field(
        default="fail",
        description="When records the stage has yet to read are gone from Kafka (retention, deletion): "
        "'fail' stops with an error naming the topic, partitions and offsets lost; 'skip' goes on past "
        "them and records the ranges in the progress file (records_lost, data_loss).",
    )

    batch_timeout: Annotated[str, AfterValidator(_duration)] = Field(
        default="10 minutes",
        description="A micro-batch running longer than this is stuck: the query is stopped and restarted from "
        "its checkpoint (counted as a restart); a query that does not stop fails the stage. Nothing hangs.",
    )
    restarts: RetryBound = Field(
        default_factory=RetryBound,
        description="Restarts of the streaming query after a transient failure (HBase or Kafka away longer "
        "than the writer's own retries); more within the window fail the stage with the last cause. A "
        "permanent error (missing table or family, disabled table, size limit, authorization) fails it at once.",
    )

    @field_validator("trigger")
    @classmethod
    def _trigger(cls, value: str) -> str:
        match = _TRIGGER_RE.fullmatch(value.lower())
        if match is None or match.group(2) not in _TRIGGER_UNITS:
            raise PydanticCustomError(
                "trigger",
                "expected '<number> <unit>' with unit ms, millisecond(s), s, sec, second(s), min, minute(s)",
            )
        number = int(match.group(1))
        return f"{number} {_TRIGGER_UNITS[match.group(2)][0]}{'' if number == 1 else 's'}"

    @property
    def trigger_ms(self) -> int:
        """The trigger interval in milliseconds."""
        number, unit = self.trigger.split()
        return int(number) * _TRIGGER_UNITS[unit][1]


def _check_schema(value: dict[str, str] | None) -> dict[str, str] | None:
    if value is None:
        return None
    bad = [name for name in value if not _IDENT_RE.fullmatch(name)]
    if bad:
        raise PydanticCustomError(
            "column_name",
            "column names must be identifiers (letters, digits, _; not starting with a digit): {bad}",
            {"bad": ", ".join(bad)},
        )
    empty = [name for name, ddl in value.items() if not ddl.strip()]
    if empty:
        raise PydanticCustomError("column_type", "empty type for columns: {empty}", {"empty": ", ".join(empty)})
    return {name: ddl.strip() for name, ddl in value.items()}


class MetricsSpec(SpecModel):
    """The Prometheus endpoint of each stage (``/metrics``)."""

    enabled: bool = Field(default=True, description="Serve the metrics; false: no endpoint.")
    host: str = Field(default="127.0.0.1", min_length=1, description="Address the endpoints bind.")
    ingest_port: int = Field(default=0, ge=0, le=65535, description="Port of the ingest stage; 0: any free port.")
    process_port: int = Field(default=0, ge=0, le=65535, description="Port of the process stage; 0: any free port.")

    def port(self, stage: str) -> int | None:
        """The port of ``stage`` (None when the metrics are off)."""
        if not self.enabled:
            return None
        return self.ingest_port if stage == "ingest" else self.process_port


class PipelineSpec(SpecModel):
    """One pipeline: Hive (or another source) -> Kafka topic -> Spark streaming -> HBase (or another sink).

    Load it with :func:`headwater.spec.load_spec`, which validates ``source``, ``transforms`` and
    ``sink`` against the plugin config models their ``type`` names.
    """

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: str = Field(description="Pipeline name: [a-z][a-z0-9_-]{0,62}; names state and checkpoints.")
    description: str = Field(default="", description="Free text.")
    source: SerializeAsAny[SourceConfig] = Field(description="Source plugin config, selected by 'type'.")
    schema_: dict[str, str] | None = Field(
        default=None,
        alias="schema",
        description="Declared record schema: column -> Spark SQL DDL type (bigint, decimal(12,2), ...). "
        "None: taken from the source.",
    )
    topic: TopicSpec = Field(  # type: ignore[assignment]
        default=None,
        description="Kafka topic carrying the source records; a source that is a topic (kafka) gives it itself.",
    )
    transforms: list[SerializeAsAny[TransformConfig]] = Field(
        default_factory=list, description="Transforms applied in order, each selected by 'type'."
    )
    expectations: Expectations = Field(
        default_factory=list,
        description="Data-quality rules checked on every decoded record before the transforms; a failing "
        "record is warned about, dropped, dead-lettered (default) or stops the stage, per rule.",
    )
    # Set after validation whichever way the spec names its sinks (the validator below).
    sink: SerializeAsAny[SinkConfig] = Field(  # type: ignore[assignment]
        default=None, description="The sink, selected by 'type' (shorthand for a one-item `sinks`)."
    )
    sinks: list[SerializeAsAny[SinkConfig]] = Field(
        default_factory=list,
        description="Several sinks, each selected by 'type': every micro-batch is written to all of them "
        "and commits only when all have written it. `sink` is the first.",
    )
    dead_letter: DeadLetterSpec = Field(description="Topic for records that cannot be processed.")
    ingest: IngestSpec = Field(default_factory=IngestSpec, description="Ingest stage settings.")
    process: ProcessSpec = Field(default_factory=ProcessSpec, description="Streaming stage settings.")
    metrics: MetricsSpec = Field(
        default_factory=MetricsSpec,
        description="Prometheus endpoints of the stages; the address chosen is in each stage's progress file "
        "and in `headwater status`.",
    )
    connections: Connections = Field(
        default_factory=Connections, description="Service addresses; defaults: the local stack."
    )
    state_topic: TopicName = Field(default="_headwater_state", description="Compacted topic holding ingest positions.")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME_RE.fullmatch(value):
            raise PydanticCustomError(
                "pipeline_name",
                "must be a lowercase letter followed by up to 62 of a-z 0-9 _ -",
            )
        return value

    @field_validator("schema_")
    @classmethod
    def _schema(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        return _check_schema(value)

    @field_validator("topic")
    @classmethod
    def _key_in_schema(cls, value: TopicSpec, info: ValidationInfo) -> TopicSpec:
        schema = info.data.get("schema_")
        missing = [c for c in value.key if schema is not None and c not in schema]
        if missing:
            raise PydanticCustomError(
                "key_not_in_schema",
                "key columns not in the declared schema: {missing}",
                {"missing": ", ".join(missing)},
            )
        return value

    @field_validator("dead_letter")
    @classmethod
    def _distinct_dead_letter(cls, value: DeadLetterSpec, info: ValidationInfo) -> DeadLetterSpec:
        topic = info.data.get("topic")
        if topic is not None and value.topic == topic.name:
            raise PydanticCustomError("topic_clash", "dead-letter topic must differ from topic.name")
        return value

    @field_validator("state_topic")
    @classmethod
    def _distinct_state_topic(cls, value: str, info: ValidationInfo) -> str:
        topic, dead_letter = info.data.get("topic"), info.data.get("dead_letter")
        if (topic is not None and value == topic.name) or (dead_letter is not None and value == dead_letter.topic):
            raise PydanticCustomError("topic_clash", "state topic must differ from topic.name and dead_letter.topic")
        return value

    @model_validator(mode="after")
    def _topic_from_the_source(self) -> PipelineSpec:
        own = self.source.topic_spec() if isinstance(self.source, SourceConfig) else None
        if own is not None:
            if self.topic is not None and self.topic.name != own["name"]:
                raise PydanticCustomError(
                    "topic_clash", "the source is topic {own}: leave `topic` out or name the same topic",
                    {"own": own["name"]},
                )  # fmt: skip
            if self.topic is None:
                self.topic = TopicSpec(**own)
        elif self.topic is None:
            raise PydanticCustomError("topic", "`topic` is required: the Kafka topic the ingest stage produces to")
        elif not self.topic.key:
            raise PydanticCustomError(
                "topic", "`topic.key` needs at least one column: the ingest stage keys records by it"
            )
        if self.dead_letter.topic == self.topic.name or self.state_topic == self.topic.name:
            raise PydanticCustomError(
                "topic_clash", "the dead-letter and state topics must differ from the pipeline's topic"
            )
        return self

    @model_validator(mode="after")
    def _one_way_to_name_sinks(self) -> PipelineSpec:
        given = self.sink is not None
        if given and self.sinks:
            if self.sinks[0] is self.sink:
                return self
            raise PydanticCustomError("sinks", "give `sink` or `sinks`, not both")
        if not given and not self.sinks:
            raise PydanticCustomError("sinks", "a pipeline needs a sink: give `sink` (one) or `sinks` (a list)")
        if given:
            self.sinks = [self.sink]
        else:
            self.sink = self.sinks[0]
        names = [s.name or s.type for s in self.sinks]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise PydanticCustomError(
                "sink_names",
                "sink names must differ: {twice} used twice; give each a `name`",
                {"twice": ", ".join(twice)},
            )
        return self

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle the concrete plugin-typed subclass by its plugin type names (it is built at run time)."""
        types = (
            [self.source.type],
            [transform.type for transform in self.transforms],
            [sink.type for sink in self.sinks],
        )
        return (_unpickle, (type(self) is PipelineSpec, types, self.__getstate__()))


def _unpickle(base: bool, types: tuple[list[str], list[str], list[str]], state: Any) -> PipelineSpec:
    from headwater.spec.schema import spec_model  # schema.py imports this module

    cls = PipelineSpec if base else spec_model(*types)
    spec = cls.__new__(cls)
    spec.__setstate__(state)
    return spec
