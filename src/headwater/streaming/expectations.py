"""Checking the data-quality expectations (:mod:`headwater.spec.expectations`) on decoded records."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from headwater.errors import ConfigError, DataError
from headwater.spec.expectations import (
    _RULES,
    FLAG_PREFIX,
    REASON,
    Action,
    AllowedRule,
    Expectation,
    Expectations,
    RangeRule,
    RegexRule,
)

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame
    from pyspark.sql.types import StructType

__all__ = [
    "FLAG_PREFIX",
    "REASON",
    "_RULES",
    "Action",
    "AllowedRule",
    "Expectation",
    "ExpectationFailed",
    "Expectations",
    "RangeRule",
    "RegexRule",
    "apply_expectations",
    "check_columns",
    "count_expectations",
    "expectation_aggregates",
    "expectation_counts",
    "flag_expectations",
    "progress_counters",
    "validate_expectations",
]  # fmt: skip


class ExpectationFailed(DataError):
    """A record failed an expectation whose action is ``fail``: the stage stops."""

    def __init__(self, name: str, failed: int, example: str) -> None:
        super().__init__(REASON, f"expectation '{name}' (action fail) failed for {failed} record(s), e.g. {example}")
        self.name = name
        self.failed = failed
        self.example = example


def check_columns(expectations: list[Expectation], schema: StructType) -> None:
    """Raise :class:`ConfigError` naming the rule if a checked column is not in ``schema``."""
    names = schema.fieldNames()
    for i, e in enumerate(expectations):
        if e.column is not None and e.column not in names:
            raise ConfigError(
                f"expectations[{i}] ({e.name}).{e.kind}: column '{e.column}' not in the records; "
                f"columns: {', '.join(n for n in names if not n.startswith('_hw_'))}"
            )


def validate_expectations(expectations: list[Expectation], records: DataFrame) -> None:
    """Check the rules against ``records`` (any frame with the record schema, e.g. an empty one) at start-up.

    Columns must exist, ``sql`` predicates must resolve and ``regex`` patterns must compile (in the
    JVM, as Spark will use them), so a typo stops the stage before any data is read.

    Raises:
        ConfigError: naming the rule and the problem.
    """
    flag_expectations(records, expectations)  # columns and SQL
    jvm = records.sparkSession._jvm
    assert jvm is not None
    for i, e in enumerate(expectations):
        if e.regex is None:
            continue
        try:
            jvm.java.util.regex.Pattern.compile(e.regex.pattern)
        except Exception as exc:  # PatternSyntaxException via Py4J
            raise ConfigError(f"expectations[{i}] ({e.name}).regex: invalid pattern: {_first_line(exc)}") from None


def _violation(e: Expectation) -> Column:
    """True where the record fails ``e``; false (never null) otherwise."""
    from pyspark.sql import functions as F

    col = F.col(f"`{e.column}`") if e.column is not None else None
    if e.not_null is not None and col is not None:
        return col.isNull()
    if e.range is not None and col is not None:
        bad = F.lit(False)
        if e.range.min is not None:
            bad = bad | (col < F.lit(e.range.min))
        if e.range.max is not None:
            bad = bad | (col > F.lit(e.range.max))
        return F.coalesce(bad, F.lit(False))
    if e.regex is not None and col is not None:
        return F.coalesce(~col.cast("string").rlike(e.regex.pattern), F.lit(False))
    if e.allowed is not None and col is not None:
        return F.coalesce(~col.isin(*e.allowed.values), F.lit(False))
    assert e.sql is not None
    return F.coalesce(~F.expr(e.sql).cast("boolean"), F.lit(False))


def _detail(e: Expectation) -> Column:
    """``<name>: <column> <value> violates <rule>`` for a failing record."""
    from pyspark.sql import functions as F

    if e.column is None:
        return F.lit(f"{e.name}: record violates {e.describe()}")
    value = F.coalesce(F.substring(F.col(f"`{e.column}`").cast("string"), 1, 80), F.lit("null"))
    return F.concat(F.lit(f"{e.name}: {e.column} "), value, F.lit(f" violates {e.describe()}"))


def _checked(df: DataFrame) -> Column:
    """Records subject to expectations: those without a decode error (all, if there is no error column)."""
    from pyspark.sql import functions as F

    from headwater.streaming.decode import ERROR

    return F.col(ERROR).isNull() if ERROR in df.columns else F.lit(True)


def flag_expectations(df: DataFrame, expectations: list[Expectation]) -> DataFrame:
    """``df`` plus one boolean ``_hw_exp_<name>`` column per rule (true: the record fails it)."""
    from pyspark.sql import functions as F

    if not expectations:
        return df
    check_columns(expectations, df.schema)
    ok = _checked(df)
    flags = {}
    for i, e in enumerate(expectations):
        try:
            flags[e.flag] = F.when(ok, _violation(e)).otherwise(F.lit(False))
            if e.sql is not None:  # resolve now: a typo is a config error, not a failed batch
                df.select(F.expr(e.sql))
        except Exception as exc:  # Spark's analysis error, made readable
            raise ConfigError(f"expectations[{i}] ({e.name}).{e.kind}: {_first_line(exc)}") from None
    return df.withColumns(flags)


def apply_expectations(
    df: DataFrame,
    expectations: list[Expectation],
    counts: dict[str, dict[str, Any]] | None = None,
    check_fail: bool = True,
) -> DataFrame:
    """Check ``expectations`` on the decoded records ``df`` (with ``_hw_error``/``_hw_error_detail``).

    Returns ``df`` with a ``_hw_exp_<name>`` column per rule, ``_hw_error`` = ``expectation_failed``
    and ``_hw_error_detail`` naming the first failing ``dead_letter`` rule, and without the records
    failing a ``drop`` rule (unless they are dead-lettered). Lazy, except for ``fail`` rules: they are
    checked now, from ``counts`` (:func:`count_expectations` of the same ``df``) when given.
    With ``check_fail=False`` (a streaming frame, where nothing can be checked now) records failing
    a ``fail`` rule are removed instead; whoever checks them (the side query) stops the pipeline.

    Raises:
        ExpectationFailed: a record fails a ``fail`` rule.
        ConfigError: a rule names a column the records do not have, or its SQL does not resolve.
    """
    from pyspark.sql import functions as F

    from headwater.streaming.decode import ERROR, ERROR_DETAIL

    if not expectations:
        return df
    flagged = flag_expectations(df, expectations)
    for e in expectations:
        if e.action != "fail" or not check_fail:
            continue
        failed = counts[e.name]["failed"] if counts is not None and e.name in counts else None
        if failed == 0:
            continue
        example_row = flagged.where(F.col(e.flag)).select(_detail(e).alias("d")).first()
        if example_row is not None:
            if failed is None:
                failed = flagged.where(F.col(e.flag)).count()
            raise ExpectationFailed(e.name, failed, example_row["d"])

    dead = [e for e in expectations if e.action == "dead_letter"]
    drop = [e for e in expectations if e.action == "drop"]
    if dead:
        reason = F.lit(None).cast("string")
        detail = F.lit(None).cast("string")
        for e in reversed(dead):  # the first failing rule wins
            reason = F.when(F.col(e.flag), F.lit(REASON)).otherwise(reason)
            detail = F.when(F.col(e.flag), _detail(e)).otherwise(detail)
        error = F.col(ERROR) if ERROR in df.columns else F.lit(None).cast("string")
        error_detail = F.col(ERROR_DETAIL) if ERROR_DETAIL in df.columns else F.lit(None).cast("string")
        flagged = flagged.withColumns(
            {
                ERROR: F.coalesce(error, reason),
                ERROR_DETAIL: F.when(error.isNotNull(), error_detail).otherwise(detail),
            }
        )
    if drop:
        flagged = flagged.where(~_dropped(drop, dead))
    fail = [e for e in expectations if e.action == "fail"]
    if fail and not check_fail:
        flagged = flagged.where(~_any(fail))
    return flagged


def _any(expectations: list[Expectation]) -> Column:
    from pyspark.sql import functions as F

    out = F.lit(False)
    for e in expectations:
        out = out | F.col(e.flag)
    return out


def _dropped(drop: list[Expectation], dead: list[Expectation]) -> Column:
    """Records removed by ``drop`` rules: failing one, and no ``dead_letter`` rule."""
    return _any(drop) & ~_any(dead)


def count_expectations(df: DataFrame, expectations: list[Expectation]) -> dict[str, dict[str, Any]]:
    """Per rule, how many records of ``df`` fail it: ``{name: {"failed": n, "action": a}}``.

    Drop rules also get ``"dropped"``: the records this rule removes and no earlier drop rule did,
    so the values add up to the records removed. Call it on the frame *before*
    :func:`apply_expectations` (dropped records are gone after it). One Spark job; none without rules.
    """
    if not expectations:
        return {}
    flagged = df if all(e.flag in df.columns for e in expectations) else flag_expectations(df, expectations)
    row = flagged.agg(*expectation_aggregates(expectations)).first()
    return expectation_counts(row.asDict() if row else {}, expectations)


def expectation_aggregates(expectations: list[Expectation]) -> list[Column]:
    """The aggregates behind :func:`count_expectations`, over flagged records (for ``observe`` too)."""
    from pyspark.sql import functions as F

    dead = [e for e in expectations if e.action == "dead_letter"]
    drop = [e for e in expectations if e.action == "drop"]
    aggs = [F.sum(F.col(e.flag).cast("long")).alias(f"f{i}") for i, e in enumerate(expectations)]
    for j, e in enumerate(drop):
        first = F.col(e.flag) & ~_any(drop[:j]) & ~_any(dead)
        aggs.append(F.sum(first.cast("long")).alias(f"d{j}"))
    return aggs


def expectation_counts(row: dict[str, Any], expectations: list[Expectation]) -> dict[str, dict[str, Any]]:
    """The counts of :func:`count_expectations` from a row of :func:`expectation_aggregates`."""
    drop = [e for e in expectations if e.action == "drop"]
    out: dict[str, dict[str, Any]] = {}
    for i, e in enumerate(expectations):
        out[e.name] = {"failed": int(row.get(f"f{i}") or 0), "action": e.action}
    for j, e in enumerate(drop):
        out[e.name]["dropped"] = int(row.get(f"d{j}") or 0)
    return out


def progress_counters(counts: dict[str, dict[str, Any]]) -> dict[str, int]:
    """Counters for the progress file: ``expectation_<name>_failed`` per rule and ``expectations_dropped``."""
    out = {f"expectation_{name}_failed": int(c["failed"]) for name, c in counts.items()}
    if counts:
        out["expectations_dropped"] = sum(int(c.get("dropped", 0)) for c in counts.values())
    return out


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    first = text.splitlines()[0] if text else type(exc).__name__
    return re.sub(r"\s*SQLSTATE: \w+", "", first)[:300]
