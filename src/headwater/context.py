"""What both stages of one pipeline share: the spec, its folders, its plugins and its SparkSession."""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from headwater import plugins

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from headwater.sinks.base import Sink
    from headwater.sources.base import Source
    from headwater.spec.models import PipelineSpec
    from headwater.transforms.base import Transform


class PipelineContext:
    """One pipeline at run time."""

    def __init__(self, spec: PipelineSpec, home: Path | None = None) -> None:
        from headwater.stack import StackConfig

        self.spec = spec
        self.home = (home or StackConfig.from_env().root) / "pipelines" / spec.name
        self.home.mkdir(parents=True, exist_ok=True)

    @property
    def checkpoint(self) -> str:
        """Spark checkpoint location of the process stage (spec value, or a folder under home)."""
        return self.spec.process.checkpoint or str(self.home / "checkpoint")

    def progress_path(self, stage: str) -> Path:
        return self.home / f"{stage}.progress.json"

    @property
    def position_key(self) -> str:
        return f"{self.spec.name}/ingest"

    @cached_property
    def source(self) -> Source:
        cls = plugins.get("source", self.spec.source.type)
        return cls(self.spec.source)  # type: ignore[no-any-return]

    @cached_property
    def transforms(self) -> list[Transform]:
        return [plugins.get("transform", t.type)(t) for t in self.spec.transforms]

    @cached_property
    def sink(self) -> Sink:
        cls = plugins.get("sink", self.spec.sink.type)
        return cls(self.spec.sink, self.spec.connections)  # type: ignore[no-any-return]

    def spark(self, app: str, extra_conf: dict[str, Any] | None = None) -> SparkSession:
        """The SparkSession of this process, a client of the spec's metastore, with the Kafka connector."""
        from headwater.stack import StackConfig
        from headwater.stack.jars import spark_kafka_jars
        from headwater.stack.spark import build_session

        c = self.spec.connections
        warehouse = c.hive.warehouse_dir
        jars = os.environ.get("HEADWATER_SPARK_JARS")
        return build_session(
            f"headwater-{self.spec.name}-{app}",
            master=c.spark.master,
            metastore_uri=c.hive.metastore_uri,
            warehouse_dir=warehouse,
            jars=jars.split(",") if jars else spark_kafka_jars(StackConfig.from_env()),
            conf={**c.spark.conf, **(extra_conf or {})},
        )
