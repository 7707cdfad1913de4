"""How a pipeline reaches its services: the ``connections`` part of the spec (Kafka, HBase, the Hive
metastore, Spark), and the property options whose secret-named entries are held as secrets.

Each part left out points at the local stack (:class:`headwater.stack.config.StackConfig`).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    SecretStr,
    WithJsonSchema,
)
from pydantic_core import PydanticCustomError

from headwater import redact
from headwater.redact import Secret
from headwater.stack.config import StackConfig


def _conf_value(value: Any) -> Any:
    """Let YAML numbers and booleans stand for client/Spark property strings (``retention.ms: 1000``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return value


ConfValue = Annotated[str, BeforeValidator(_conf_value)]


class HoldsSecrets:
    """Marks a field of options whose secret-named entries (:func:`headwater.redact.is_secret_name`)
    are kept as :class:`~headwater.redact.Secret`; the spec loader never shows such a field's value."""


def _hide_secrets(options: dict[str, str | Secret]) -> dict[str, str | Secret]:
    """Secret-named options as :class:`~headwater.redact.Secret`, their values registered for redaction."""
    out: dict[str, str | Secret] = {}
    for name, value in options.items():
        if not isinstance(value, Secret) and redact.is_secret_name(name):
            value = Secret(value)
        if isinstance(value, Secret):
            redact.register([value.get_secret_value()])
        out[name] = value
    return out


def _dump_option(value: str | Secret) -> str:
    return redact.MASK if isinstance(value, SecretStr) else value


def _option_value(value: Any) -> str | Secret:
    """A property value: text (YAML numbers and booleans as property strings) or an already wrapped secret."""
    value = _conf_value(value)
    if isinstance(value, SecretStr):
        return value if isinstance(value, Secret) else Secret(value.get_secret_value())
    if not isinstance(value, str):
        raise PydanticCustomError("string_type", "Input should be a valid string")
    return value


OptionValue = Annotated[
    str | Secret,
    PlainValidator(_option_value),
    PlainSerializer(_dump_option, when_used="json"),
    WithJsonSchema({"type": "string"}),
]
#: Client or Spark properties; entries named like secrets are held as ``Secret`` (shown as ``***``).
SecretOptions = Annotated[dict[str, OptionValue], AfterValidator(_hide_secrets), HoldsSecrets()]


class SpecModel(BaseModel):
    """Base of the spec's fixed models: a field the model does not know is an error."""

    model_config = ConfigDict(extra="forbid")


class KafkaConnection(SpecModel):
    """How to reach Kafka."""

    bootstrap_servers: str = Field(description="Comma-separated host:port list of Kafka brokers.")
    options: SecretOptions = Field(
        default_factory=dict,
        description="Extra client properties (security.protocol, sasl.*, ...), given to confluent-kafka "
        "as is and to Spark as kafka.<key>. Values of secret-named properties (sasl.password, "
        "ssl.key.password, sasl.jaas.config, ...; see headwater.redact) are shown as ***.",
    )

    def client_config(self) -> dict[str, str]:
        """Properties for a confluent-kafka client: ``bootstrap.servers`` plus :attr:`options`, secrets
        revealed. Only for configuring a client: never print or log the result."""
        return {"bootstrap.servers": self.bootstrap_servers, **redact.reveal(self.options)}

    def spark_options(self) -> dict[str, str]:
        """Options for Spark's Kafka source/sink: every client property prefixed with ``kafka.`` (secrets
        revealed, as :meth:`client_config`)."""
        return {f"kafka.{key}": value for key, value in self.client_config().items()}


class HBaseConnection(SpecModel):
    """How to reach the HBase Thrift server."""

    host: str = Field(description="Host of the HBase Thrift2 server (per-cell timestamps, pre-split tables).")
    port: int = Field(default=9091, ge=1, le=65535, description="Port of the HBase Thrift2 server.")
    timeout_ms: int = Field(default=60000, ge=1, description="Socket timeout in milliseconds.")
    transport: Literal["buffered", "framed"] = Field(
        default="buffered", description="Thrift transport; must match the server's setting."
    )
    protocol: Literal["binary", "compact"] = Field(
        default="binary", description="Thrift protocol; must match the server's setting."
    )


class HiveConnection(SpecModel):
    """How to reach the Hive metastore."""

    metastore_uri: str = Field(description="Thrift URI of the Hive metastore, e.g. thrift://host:9083.")
    warehouse_dir: str | None = Field(
        default=None, description="Warehouse folder (spark.sql.warehouse.dir); None: the cluster's default."
    )


class SparkSettings(SpecModel):
    """How to run Spark."""

    master: str = Field(
        default_factory=lambda: _default_master(),
        description="Spark master URL; default local[2], or the stack's Spark master in the cluster profile.",
    )
    conf: SecretOptions = Field(
        default_factory=dict,
        description="Extra Spark configuration; values of secret-named keys (spark.hadoop.fs.s3a.secret.key, "
        "...) are shown as ***.",
    )
    checkpoint_root: str | None = Field(
        default=None,
        min_length=1,
        description="Hadoop filesystem URL under which each pipeline keeps its process-stage checkpoint, as "
        "<checkpoint_root>/<pipeline name> (e.g. hdfs://namenode:8020/headwater/checkpoints); any scheme Spark's "
        "Hadoop client reads (hdfs, s3a, abfs, file). None: a local folder under the stack home. "
        "process.checkpoint, when set, wins.",
    )

    def spark_conf(self) -> dict[str, str]:
        """:attr:`conf` with secrets revealed: only for building the Spark session."""
        return redact.reveal(self.conf)


def _default_master() -> str:
    """``local[2]``; in the cluster profile (``headwater stack up --profile cluster``) the stack's Spark master."""
    stack = StackConfig.from_env()
    return stack.spark_master_url if stack.profile == "cluster" else "local[2]"


def _default_kafka() -> KafkaConnection:
    return KafkaConnection(bootstrap_servers=StackConfig.from_env().kafka_bootstrap)


def _default_hbase() -> HBaseConnection:
    stack = StackConfig.from_env()
    return HBaseConnection(host=stack.host, port=stack.thrift2_port)


def _default_hive() -> HiveConnection:
    stack = StackConfig.from_env()
    return HiveConnection(metastore_uri=stack.metastore_uri, warehouse_dir=f"file://{stack.warehouse_dir}")


class Connections(SpecModel):
    """Where the services are. Each part left out points at the local stack (``headwater stack``)."""

    kafka: KafkaConnection = Field(default_factory=_default_kafka, description="Kafka brokers.")
    hbase: HBaseConnection = Field(default_factory=_default_hbase, description="HBase Thrift server.")
    hive: HiveConnection = Field(default_factory=_default_hive, description="Hive metastore.")
    spark: SparkSettings = Field(default_factory=SparkSettings, description="Spark master and conf.")
