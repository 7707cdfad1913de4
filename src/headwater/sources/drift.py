"""Schema drift of a source between increments: what changed, and whether ingest may go on.

The ingest position records the source schema as ``{column: Spark simpleString}``. Before each
read the current schema is compared with it, column by column:

- an added column (nullable), a widened type (``tinyint < smallint < int < bigint``,
  ``float -> double``, an integer or ``decimal(p,s)`` into a ``decimal`` with at least as many
  integer and fraction digits, ``tinyint/smallint/int -> double``) is compatible: ingest goes on,
  logs the change and records it in the position;
- a narrowed or otherwise changed type, or a dropped (or renamed) column is incompatible when the
  pipeline uses the column: ingest stops before producing anything, with :class:`SchemaDriftError`.
  A change to a column the pipeline does not use is recorded and ignored.

The pipeline uses a column named in ``topic.key``, the declared ``schema``, the sink's row key,
columns or version, or the source's watermark; without a declared schema it uses every column.
Complex types (arrays, maps, structs) must stay exactly the same. ``date -> timestamp`` is a
change of meaning, not a widening.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from headwater.errors import ConfigError

if TYPE_CHECKING:
    from pyspark.sql.types import StructType

    from headwater.spec.models import PipelineSpec

ALL_COLUMNS = "every column (no declared schema)"
_INT_RANK = {"tinyint": 1, "smallint": 2, "int": 3, "bigint": 4}
_INT_DIGITS = {"tinyint": 3, "smallint": 5, "int": 10, "bigint": 20}
_DECIMAL_RE = re.compile(r"decimal\((\d+),\s*(\d+)\)")


class SchemaDriftError(ConfigError):
    """The source schema changed in a way the pipeline cannot absorb; nothing was produced."""

    def __init__(self, source: str, drift: Drift) -> None:
        super().__init__(
            f"source schema of {source} changed incompatibly since the last committed position; "
            f"nothing was produced:\n{drift.table()}\n"
            "Restore the column or its type in the source, or change the spec so that it no longer uses "
            "the column (ingest then goes on and records the change)."
        )
        self.drift = drift


@dataclass(frozen=True)
class ColumnChange:
    """One column that differs between two schemas."""

    column: str
    before: str | None
    after: str | None
    verdict: str
    compatible: bool

    def as_dict(self) -> dict[str, Any]:
        """JSON form, as recorded in the position's ``schema_changes``."""
        return {"column": self.column, "before": self.before, "after": self.after, "verdict": self.verdict}


@dataclass
class Drift:
    """The differences between a recorded and a current schema."""

    changes: list[ColumnChange] = field(default_factory=list)

    @property
    def compatible(self) -> bool:
        """True if ingest may go on."""
        return all(c.compatible for c in self.changes)

    def __bool__(self) -> bool:
        return bool(self.changes)

    def table(self) -> str:
        """The changes as a small aligned table: column, before, after, verdict."""
        rows = [("column", "before", "after", "verdict")]
        rows += [(c.column, c.before or "-", c.after or "-", c.verdict) for c in self.changes]
        widths = [max(len(r[i]) for r in rows) for i in range(3)]
        return "\n".join(
            "  " + "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(r[:3])) + "  " + r[3] for r in rows
        )

    def record(self, at: str) -> dict[str, Any]:
        """One entry of the position's ``schema_changes`` list."""
        return {"at": at, "changes": [c.as_dict() for c in self.changes]}


def schema_of(struct: StructType) -> dict[str, str]:
    """``{column: simpleString}`` of a Spark schema, in column order."""
    return {f.name: f.dataType.simpleString() for f in struct.fields}


def required_columns(struct: StructType) -> set[str]:
    """Names of the non-nullable columns of a Spark schema."""
    return {f.name for f in struct.fields if not f.nullable}


def _decimal(text: str) -> tuple[int, int] | None:
    m = _DECIMAL_RE.fullmatch(text.replace(" ", ""))
    return (int(m.group(1)), int(m.group(2))) if m else None


def widens(before: str, after: str) -> bool:
    """True if every value of type ``before`` is exactly representable as ``after`` (and they differ)."""
    if before == after:
        return False
    if before in _INT_RANK and after in _INT_RANK:
        return _INT_RANK[after] > _INT_RANK[before]
    if before == "float" and after == "double":
        return True
    if before in ("tinyint", "smallint", "int") and after == "double":
        return True
    new = _decimal(after)
    if new is None:
        return False
    if before in _INT_DIGITS:
        return new[0] - new[1] >= _INT_DIGITS[before]
    old = _decimal(before)
    return old is not None and new[1] >= old[1] and new[0] - new[1] >= old[0] - old[1]


def used_columns(spec: PipelineSpec) -> dict[str, str] | None:
    """Columns the pipeline uses, each with where (``topic.key, schema``); None: every column."""
    if spec.schema_ is None:
        return None
    used: dict[str, list[str]] = {}

    def add(names: list[str], where: str) -> None:
        for name in names:
            places = used.setdefault(name.lower(), [])
            if where not in places:
                places.append(where)

    add(list(spec.topic.key), "topic.key")
    add(list(spec.schema_), "schema")
    named = [s.fields_named() for s in spec.sinks] + [spec.source.fields_named()]
    for fields in named:
        for where, names in fields.items():
            add(names, where)
    return {name: ", ".join(places) for name, places in used.items()}


def compare(
    before: Mapping[str, str],
    after: Mapping[str, str],
    used: Mapping[str, str] | None,
    required: set[str] | frozenset[str] = frozenset(),
) -> Drift:
    """The column-by-column difference between the recorded and the current schema.

    Args:
        before: The recorded schema ``{column: simpleString}``.
        after: The current schema.
        used: Columns the pipeline uses (lower-case name -> where), see :func:`used_columns`;
            None: every column is used.
        required: Non-nullable columns of the current schema (an added one is incompatible).
    """
    changes: list[ColumnChange] = []
    lower_after = {name.lower(): name for name in after}
    dropped = [name for name in before if name.lower() not in lower_after]
    added = [name for name in after if name.lower() not in {b.lower() for b in before}]
    before_pos = {name: i for i, name in enumerate(before)}
    after_pos = {name: i for i, name in enumerate(after)}

    def use(name: str) -> str | None:
        return ALL_COLUMNS if used is None else used.get(name.lower())

    for name, old in before.items():
        current = lower_after.get(name.lower())
        if current is None:
            renamed = [a for a in added if after_pos[a] == before_pos[name] and after[a] == old and len(dropped) == 1]
            what = f"dropped (renamed to {renamed[0]}?)" if renamed else "dropped"
            changes.append(_verdict(name, old, None, what, use(name)))
            continue
        new = after[current]
        if new == old:
            continue
        if widens(old, new):
            changes.append(ColumnChange(name, old, new, "ok: widened", True))
        else:
            what = "narrowed" if widens(new, old) else "type changed"
            changes.append(_verdict(name, old, new, what, use(name)))
    for name in added:
        if name in required:
            changes.append(ColumnChange(name, None, after[name], "INCOMPATIBLE: added NOT NULL", False))
        else:
            changes.append(ColumnChange(name, None, after[name], "ok: added", True))
    return Drift(changes)


def _verdict(name: str, before: str | None, after: str | None, what: str, used_by: str | None) -> ColumnChange:
    if used_by is None:
        return ColumnChange(name, before, after, f"ok: {what}, not used", True)
    return ColumnChange(name, before, after, f"INCOMPATIBLE: {what} (used by {used_by})", False)
