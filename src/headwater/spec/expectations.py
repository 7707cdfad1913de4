"""Data-quality expectations: declarative rules checked on every decoded record, before transforms.

Spec example::

    expectations:
      - {name: amount_positive, range: {column: amount, min: 0}, action: dead_letter}
      - {name: status_known, allowed: {column: status, values: [new, paid, shipped, test]}, action: warn}
      - {name: has_customer, not_null: customer_id, action: drop}
      - {name: sane_total, sql: "quantity * amount < 1000000", action: fail}

Each rule is exactly one of ``not_null``, ``range``, ``regex``, ``allowed`` or ``sql``. A null value
passes ``range``, ``regex`` and ``allowed`` (require presence with ``not_null``), and an ``sql``
predicate that evaluates to NULL passes, as in a SQL CHECK constraint. Only records that decoded
cleanly (``_hw_error`` is null) are checked.

Actions, when a record fails the rule:

- ``warn``: the record goes on; the failure is counted;
- ``drop``: the record is removed (counted), unless it also fails a ``dead_letter`` rule;
- ``dead_letter`` (default): the record goes to the dead-letter topic with reason
  ``expectation_failed`` and detail ``<name>: <column> <value> violates <rule>`` (first failing rule);
- ``fail``: the stage stops with ``ExpectationFailed`` naming the rule and an example value.

Every rule adds the boolean column ``_hw_exp_<name>`` (true: the record fails it), which
the process stage counts per rule (:mod:`headwater.streaming.expectations`).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

REASON = "expectation_failed"
"""Dead-letter reason code of records failing a ``dead_letter`` rule."""
FLAG_PREFIX = "_hw_exp_"
Action = Literal["warn", "drop", "dead_letter", "fail"]
Scalar = bool | int | float | str
_RULES = ("not_null", "range", "regex", "allowed", "sql")


class _Rule(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RangeRule(_Rule):
    """``min <= column <= max`` (either bound may be left out; bounds are inclusive)."""

    column: str = Field(description="Column to check.")
    min: int | float | str | None = Field(default=None, description="Smallest allowed value (inclusive).")
    max: int | float | str | None = Field(default=None, description="Largest allowed value (inclusive).")

    @model_validator(mode="after")
    def _a_bound(self) -> RangeRule:
        if self.min is None and self.max is None:
            raise ValueError("range needs min and/or max")
        return self


class RegexRule(_Rule):
    """The column's text matches a Java regular expression (anywhere; anchor it with ``^...$``)."""

    column: str = Field(description="Column to check.")
    pattern: str = Field(min_length=1, description="Java regular expression, e.g. ^sku-[0-9]+$.")


class AllowedRule(_Rule):
    """The column's value is one of ``values``."""

    column: str = Field(description="Column to check.")
    values: list[Scalar] = Field(min_length=1, description="The allowed values.")


class Expectation(BaseModel):
    """One data-quality rule and what to do with a record that fails it."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(
        pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,62}$",
        description="Rule name (identifier); names the counter and the _hw_exp_<name> column.",
    )
    not_null: str | None = Field(default=None, description="Column that must not be null.")
    range: RangeRule | None = Field(default=None, description="Column within [min, max].")
    regex: RegexRule | None = Field(default=None, description="Column matching a regular expression.")
    allowed: AllowedRule | None = Field(default=None, description="Column within a list of values.")
    sql: str | None = Field(
        default=None,
        min_length=1,
        description="Spark SQL predicate over the record's columns that must hold.",
    )
    action: Action = Field(default="dead_letter", description="What happens to a failing record.")

    @model_validator(mode="after")
    def _exactly_one_rule(self) -> Expectation:
        given = [rule for rule in _RULES if getattr(self, rule) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of {', '.join(_RULES)}; got {', '.join(given) if given else 'none'}")
        return self

    @property
    def kind(self) -> str:
        """Which rule this is: ``not_null``, ``range``, ``regex``, ``allowed`` or ``sql``."""
        return next(rule for rule in _RULES if getattr(self, rule) is not None)

    @property
    def column(self) -> str | None:
        """The checked column (None for ``sql``)."""
        if self.not_null is not None:
            return self.not_null
        rule = self.range or self.regex or self.allowed
        return rule.column if rule is not None else None

    @property
    def flag(self) -> str:
        """Name of the boolean column marking records that fail this rule."""
        return f"{FLAG_PREFIX}{self.name}"

    def describe(self) -> str:
        """The rule in words, as used in dead-letter details (``range [0, 100]``)."""
        if self.range is not None:
            lo = "-inf" if self.range.min is None else self.range.min
            hi = "+inf" if self.range.max is None else self.range.max
            return f"range [{lo}, {hi}]"
        if self.regex is not None:
            return f"regex {self.regex.pattern}"
        if self.allowed is not None:
            return "allowed [" + ", ".join(str(v) for v in self.allowed.values) + "]"
        if self.sql is not None:
            return f"sql ({self.sql})"
        return "not_null"


def _unique_names(value: list[Expectation]) -> list[Expectation]:
    names = [e.name for e in value]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"expectation names must be unique: {', '.join(dupes)}")
    return value


Expectations = Annotated[list[Expectation], AfterValidator(_unique_names)]
"""The spec field type: a list of expectations with unique names."""
