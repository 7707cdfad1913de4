"""``python``: a vectorized Python function (pandas DataFrame in, pandas DataFrame out) over the records.

The function contract (``function: "package.module:name"``):

- it is importable where Spark runs Python (the driver and the Python workers: an installed
  package, or a module on ``PYTHONPATH``); it takes a pandas DataFrame holding a chunk of records
  (every column, the ``_hw_*`` meta columns included) and returns a pandas DataFrame;
- the result has the columns of ``output_schema`` (default: the input schema). Extra columns are
  dropped; a missing ``_hw_*`` column is filled with nulls (keep them, e.g. return
  ``pdf.assign(...)``, so a failure or a late row can be traced to its Kafka record); any other
  missing column, or a result that is not a DataFrame, fails the query (a bug, not a bad record);
- it should be row-wise (a row's result does not depend on the other rows of the chunk) and
  pure: it may run more than once on the same records (retries, replays, the stateful side query);
- when it raises on a chunk, the chunk is split in halves, recursively, until single rows: rows on
  which it succeeds keep their output, and each row on which it raises *alone* becomes an error
  row instead of failing the query: the output columns that exist in the input with the same type
  keep the input value, the others are null, ``_hw_error`` is ``transform_error`` and
  ``_hw_error_detail`` is ``<ExceptionType>: <message> (function <package.module:name>)``. The
  process stage sends error rows to the dead-letter topic (the original Kafka record, found by
  its ``_hw_partition``/``_hw_offset``) and the others on.

The output always ends with ``_hw_error`` and ``_hw_error_detail`` (null on good rows).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field

from headwater.errors import ConfigError
from headwater.transforms.base import Transform, TransformConfig

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import DataFrame

ERROR = "_hw_error"  # the same names as headwater.streaming.decode's
ERROR_DETAIL = "_hw_error_detail"
META = ["_hw_topic", "_hw_partition", "_hw_offset", "_hw_kafka_ts"]
REASON = "transform_error"
_loaded: dict[str, Callable[[Any], Any]] = {}


def load_function(path: str) -> Callable[[Any], Any]:
    """The callable named ``package.module:name`` (cached per process); ConfigError if it is not there."""
    if path in _loaded:
        return _loaded[path]
    module_name, _, name = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"python.function: cannot import '{module_name}' ({exc}); is it on PYTHONPATH?") from None
    fn = getattr(module, name, None)
    if not callable(fn):
        raise ConfigError(f"python.function: '{module_name}' has no function '{name}'")
    _loaded[path] = fn
    return fn


class PythonConfig(TransformConfig):
    """Config of the ``python`` transform."""

    type: Literal["python"] = "python"
    function: str = Field(
        pattern=r"^[A-Za-z_][A-Za-z0-9_.]*:[A-Za-z_][A-Za-z0-9_]*$",
        description="`package.module:function`, taking and returning a pandas DataFrame.",
    )
    output_schema: str | None = Field(
        default=None,
        description="Spark DDL of the function's result, e.g. `order_id bigint, score double`; None: the input schema.",
    )


class _OutputError(Exception):
    """The function's result does not fit the declared output (fails the query)."""


@dataclass(frozen=True)
class _Runner:
    """What runs in the Python workers: plain data, pickled with the plan."""

    function: str
    columns: list[str]
    optional: list[str]  # _hw_* columns: filled with nulls when the result lacks them
    carry: list[str]  # copied from the input into error rows (same name and type)

    def __call__(self, chunks: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        fn = load_function(self.function)
        for pdf in chunks:
            yield self.run(fn, pdf)

    def run(self, fn: Callable[[Any], Any], pdf: pd.DataFrame) -> pd.DataFrame:
        import pandas as pd

        try:
            return self.conform(fn(pdf.copy()))
        except _OutputError:
            raise
        except Exception as exc:  # any failure of user code isolates rows
            if len(pdf) <= 1:
                return self.failed(pdf, exc)
            mid = len(pdf) // 2
            halves = [pdf.iloc[:mid].reset_index(drop=True), pdf.iloc[mid:].reset_index(drop=True)]
            return pd.concat([self.run(fn, half) for half in halves], ignore_index=True)

    def conform(self, result: Any) -> pd.DataFrame:
        import pandas as pd

        if not isinstance(result, pd.DataFrame):
            raise _OutputError(f"python transform {self.function} returned {type(result).__name__}, not a DataFrame")
        missing = [c for c in self.columns if c not in result.columns and c not in self.optional]
        if missing:
            raise _OutputError(
                f"python transform {self.function}: result lacks columns {missing} (has {list(result.columns)}); "
                "declare output_schema to change the columns"
            )
        out = result.reindex(columns=self.columns).reset_index(drop=True)
        out[ERROR] = None
        out[ERROR_DETAIL] = None
        return out

    def failed(self, pdf: pd.DataFrame, exc: Exception) -> pd.DataFrame:
        import pandas as pd

        n = len(pdf)
        out = pd.DataFrame(
            {
                c: pdf[c].reset_index(drop=True) if c in self.carry else pd.Series([None] * n, dtype=object)
                for c in self.columns
            }
        )
        out[ERROR] = REASON
        out[ERROR_DETAIL] = f"{type(exc).__name__}: {str(exc)[:500]} (function {self.function})"
        return out


class PythonTransform(Transform):
    """Run a vectorized pandas function over the records (``mapInPandas``); failing rows become error rows.

    Example (spec)::

        - type: python
          function: mypkg.scoring:add_score      # def add_score(pdf): return pdf.assign(score=...)
          output_schema: order_id bigint, customer_id string, amount decimal(12,2), score double

    See the module docstring for the function contract.
    """

    Config = PythonConfig
    config: PythonConfig
    stateful: ClassVar[bool] = False
    marks_errors: ClassVar[bool] = True

    def apply(self, df: DataFrame) -> DataFrame:
        from pyspark.sql.types import StringType, StructField, StructType

        c = self.config
        load_function(c.function)  # fail fast, on the driver
        inputs = {f.name: f for f in df.schema.fields if f.name not in (ERROR, ERROR_DETAIL)}
        if c.output_schema:
            try:
                declared = list(StructType.fromDDL(c.output_schema).fields)  # type: ignore[attr-defined]
            except Exception as exc:  # Spark's parse error, made readable
                raise ConfigError(f"python.output_schema: not Spark DDL ({c.output_schema}): {exc}") from None
        else:
            declared = list(inputs.values())
        # A column passed through (same name and type) keeps its metadata, e.g. Spark's watermark mark.
        declared = [
            StructField(f.name, f.dataType, f.nullable, inputs[f.name].metadata)
            if f.name in inputs and inputs[f.name].dataType == f.dataType else f
            for f in declared
        ]  # fmt: skip
        names = {f.name for f in declared}
        fields = declared + [f for n, f in inputs.items() if n.startswith("_hw_") and n not in names]
        carry = [f.name for f in fields if f.name in inputs and inputs[f.name].dataType == f.dataType]
        runner = _Runner(
            c.function, [f.name for f in fields], [f.name for f in fields if f.name.startswith("_hw_")], carry
        )
        schema = StructType([*fields, StructField(ERROR, StringType()), StructField(ERROR_DETAIL, StringType())])
        return df.mapInPandas(runner, schema)
