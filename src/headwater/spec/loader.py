"""Load ``pipeline.yaml``: YAML parsing, ``${VAR}`` interpolation, validation and error messages.

Every problem becomes one line ``<file>:<line>: <path>: <message> (got <value>)`` of a single
:class:`SpecError` (a :class:`~headwater.errors.ConfigError`), so a user sees everything wrong at once.
Secrets never appear in it: a value under a secret-named key (:func:`headwater.redact.is_secret_name`),
or a malformed options field that holds secrets, is shown as ``***``, and every secret value found in
the document is masked wherever else it would appear in a message.
"""

from __future__ import annotations

import difflib
import os
import re
import types
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, Tag, ValidationError

from headwater import redact
from headwater.errors import ConfigError
from headwater.spec.connections import HoldsSecrets
from headwater.spec.models import PipelineSpec
from headwater.spec.schema import INVALID_TAG, spec_model_for

PathTuple = tuple[str | int, ...]

_VAR_RE = re.compile(r"\$\$\{|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>(?:[^}$]|\$(?!\{))*))?\}|\$\{")
_SIMPLE_KEY_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_MERGE_TAG = "tag:yaml.org,2002:merge"
_MAX_REPR = 80
# error types whose pydantic "input" is not the offending value, so "(got ...)" would mislead
_NO_INPUT = {"missing", "plugin_type", "topic_clash", "key_not_in_schema"}
_MSG_PREFIXES = ("Value error, ", "Assertion failed, ")


class SpecError(ConfigError):
    """An invalid spec. ``problems`` holds one dict per problem, the message one line per problem.

    Each problem has ``file``, ``line`` (int or None), ``path`` (``transforms[1].query``; ``""`` for
    the whole document), ``type`` (pydantic's error type, or ``yaml``, ``env_unset``, ``env_syntax``,
    ``duplicate_key``, ``not_mapping``), ``message``, ``input`` (the offending value, if any) and
    ``text`` (the formatted line).
    """

    def __init__(self, problems: list[dict[str, Any]]) -> None:
        self.problems = problems
        super().__init__("\n".join(problem["text"] for problem in problems))


def _render_path(path: PathTuple) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _SIMPLE_KEY_RE.fullmatch(part):
            out += f".{part}" if out else part
        else:
            out += f"[{part!r}]"
    return out


def _short_repr(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _MAX_REPR else text[: _MAX_REPR - 3] + "..."


def _problem(
    filename: str,
    lines: Mapping[PathTuple, int],
    path: PathTuple,
    kind: str,
    message: str,
    value: Any = None,
    *,
    show_value: bool = False,
    line: int | None = None,
) -> dict[str, Any]:
    """One problem dict; the line is that of the deepest part of ``path`` found in the document."""
    if line is None:
        line = next((lines[path[:n]] for n in range(len(path), 0, -1) if path[:n] in lines), None)
    rendered = _render_path(path)
    text = f"{filename}:{line}" if line else filename
    text += f": {rendered}: {message}" if rendered else f": {message}"
    if show_value:
        text += f" (got {_short_repr(value)})"
    return {
        "file": filename,
        "line": line,
        "path": rendered,
        "loc": path,
        "type": kind,
        "message": message,
        "input": value,
        "text": text,
    }


# --- YAML --------------------------------------------------------------------------------------------


def _index_nodes(
    node: yaml.Node, path: PathTuple, lines: dict[PathTuple, int], dupes: list[tuple[PathTuple, int]]
) -> None:
    """Record the start line of every mapping key and sequence item, and duplicate keys."""
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG or not isinstance(key_node, yaml.ScalarNode):
                continue
            key, line = str(key_node.value), key_node.start_mark.line + 1
            if key in seen:
                dupes.append(((*path, key), line))
                continue
            seen.add(key)
            lines[(*path, key)] = line
            if len(path) < 64:  # aliases can make the node graph cyclic
                _index_nodes(value_node, (*path, key), lines, dupes)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            lines[(*path, index)] = item.start_mark.line + 1
            if len(path) < 64:
                _index_nodes(item, (*path, index), lines, dupes)


def _yaml_error(filename: str, exc: yaml.YAMLError) -> SpecError:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    if isinstance(exc, yaml.MarkedYAMLError):
        detail = "; ".join(str(part) for part in (exc.context, exc.problem) if part) or str(exc)
    else:
        detail = str(exc)
    line = mark.line + 1 if mark is not None else None
    where = f"{filename}:{line}:{mark.column + 1}" if mark is not None else filename
    problem = _problem(filename, {}, (), "yaml", f"invalid YAML: {detail}", line=line)
    problem["column"] = mark.column + 1 if mark is not None else None
    problem["text"] = f"{where}: invalid YAML: {detail}"
    return SpecError([problem])


def _parse(text: str, filename: str) -> tuple[Any, dict[PathTuple, int]]:
    """The document's data and the line of each key/item path; duplicate keys are errors."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        lines: dict[PathTuple, int] = {}
        dupes: list[tuple[PathTuple, int]] = []
        if node is not None:
            _index_nodes(node, (), lines, dupes)
        if dupes:
            raise SpecError(
                [
                    _problem(filename, lines, path, "duplicate_key", f"duplicate key '{path[-1]}'", line=line)
                    for path, line in dupes
                ]
            )
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        raise _yaml_error(filename, exc) from None
    finally:
        loader.dispose()
    return data, lines


# --- ${VAR} interpolation ----------------------------------------------------------------------------


def _interpolate(value: Any, path: PathTuple, env: Mapping[str, str], emit: list[tuple[PathTuple, str, str]]) -> Any:
    """``value`` with ``${VAR}``/``${VAR:-default}`` replaced in every string scalar (keys untouched)."""
    if isinstance(value, str):

        def replace(match: re.Match[str]) -> str:
            name = match.group("name")
            if match.group(0) == "$${":
                return "${"
            if name is None:
                emit.append((path, "env_syntax", "bad variable reference: use ${NAME}, ${NAME:-default} or $${"))
                return ""
            current = env.get(name)
            default = match.group("default")
            if default is not None and not current:
                return default
            if current is None:
                emit.append((path, "env_unset", f"environment variable {name} is not set"))
                return ""
            return current

        return _VAR_RE.sub(replace, value) if "${" in value else value
    if len(path) > 64 and isinstance(value, dict | list):
        emit.append((path[:64], "recursive", "nesting too deep (a recursive YAML alias?)"))
        return None
    if isinstance(value, dict):
        return {key: _interpolate(item, (*path, str(key)), env, emit) for key, item in value.items()}
    if isinstance(value, list):
        return [_interpolate(item, (*path, index), env, emit) for index, item in enumerate(value)]
    return value


# --- validation errors ---------------------------------------------------------------------------------


def _unwrap(tp: Any) -> Any:
    """Strip ``Annotated`` and ``Optional`` from a type."""
    while True:
        if get_origin(tp) is Annotated:
            tp = get_args(tp)[0]
        elif _is_union(tp) and len(members := [a for a in get_args(tp) if a is not type(None)]) == 1:
            tp = members[0]
        else:
            return tp


def _is_union(tp: Any) -> bool:
    return get_origin(tp) in (Union, types.UnionType)


def _tag(member: Any) -> str | None:
    if get_origin(member) is Annotated:
        return next((meta.tag for meta in member.__metadata__ if isinstance(meta, Tag)), None)
    return None


def _field(model: type[BaseModel], key: str) -> Any:
    for name, info in model.model_fields.items():
        if key in (name, info.alias):
            return info
    return None


def _clean_loc(model: type[BaseModel], loc: tuple[str | int, ...]) -> tuple[PathTuple, type[BaseModel] | None]:
    """``loc`` without union tags, and the model in which its last part was looked up (if any)."""
    current: Any = model
    out: list[str | int] = []
    owner: type[BaseModel] | None = None
    for part in loc:
        owner = None
        if part == INVALID_TAG or (isinstance(part, str) and _tag(current) == part):
            continue
        tp = _unwrap(current)
        if _is_union(tp):
            tags = {tag: member for member in get_args(tp) if (tag := _tag(member)) is not None}
            # a tagged union names the member chosen; a plain union labels the member tried
            current = tags.get(str(part))
            continue
        if isinstance(tp, type) and issubclass(tp, BaseModel) and isinstance(part, str):
            owner, info = tp, _field(tp, part)
            current = info.annotation if info is not None else None
        elif get_origin(tp) in (list, tuple, set, frozenset) and isinstance(part, int):
            current = (get_args(tp) or (None,))[0]
        elif get_origin(tp) is dict:
            current = get_args(tp)[1] if get_args(tp) else None
        else:
            current = None
        out.append(part)
    return tuple(out), owner


def _unknown_field(name: str, owner: type[BaseModel] | None) -> str:
    message = f"unknown field '{name}'"
    if owner is None:
        return message
    valid = sorted(info.alias or field for field, info in owner.model_fields.items())
    close = difflib.get_close_matches(name, valid, n=1)
    if close:
        message += f" (did you mean '{close[0]}'?)"
    return f"{message}; valid: {', '.join(valid)}"


def _holds_secrets(owner: type[BaseModel] | None, path: PathTuple) -> bool:
    """Whether the last part of ``path`` is a field of ``owner`` marked :class:`HoldsSecrets`."""
    info = _field(owner, str(path[-1])) if owner is not None and path else None
    return info is not None and any(isinstance(meta, HoldsSecrets) for meta in info.metadata)


def _shown(path: PathTuple, owner: type[BaseModel] | None, value: Any) -> Any:
    """The offending value as an error may show it: ``***`` under a secret-named key or for a whole
    secrets-holding field that is not a mapping; otherwise with secret-named entries masked."""
    if any(isinstance(part, str) and redact.is_secret_name(part) for part in path):
        return redact.MASK
    if _holds_secrets(owner, path) and not isinstance(value, dict):
        return redact.MASK
    return redact.mask_secrets(value)


def _secret_values(value: Any, inside: bool = False) -> set[str]:
    """Every scalar under a secret-named key in the document, at any depth (to mask wherever it shows up)."""
    if isinstance(value, dict):
        return {found for key, item in value.items()
                for found in _secret_values(item, inside or (isinstance(key, str) and redact.is_secret_name(key)))}  # fmt: skip
    if isinstance(value, list):
        return {found for item in value for found in _secret_values(item, inside)}
    return {str(value)} if inside and isinstance(value, str | int | float) and not isinstance(value, bool) else set()


def _scrub_value(value: Any, secrets: set[str]) -> Any:
    if isinstance(value, str):
        return redact.redact(value, secrets)
    if isinstance(value, dict):
        return {k: _scrub_value(v, secrets) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_scrub_value(v, secrets) for v in value)
    return value


def _scrub(problems: list[dict[str, Any]], secrets: set[str]) -> list[dict[str, Any]]:
    """``problems`` with every secret value in their text, message and input replaced by ``***``."""
    for problem in problems:
        for field in ("text", "message", "input"):
            problem[field] = _scrub_value(problem[field], secrets)
    return problems


def _validation_problems(
    exc: ValidationError, model: type[BaseModel], filename: str, lines: Mapping[PathTuple, int]
) -> list[dict[str, Any]]:
    problems = []
    for error in exc.errors(include_url=False):
        path, owner = _clean_loc(model, tuple(error["loc"]))
        kind, message = error["type"], error["msg"]
        value = _shown(path, owner, error.get("input"))
        show_value = kind not in _NO_INPUT and bool(path) and not isinstance(value, BaseModel)
        if kind == "plugin_type":
            path = (*path, "type")
        elif kind == "extra_forbidden" and path:
            message = _unknown_field(str(path[-1]), owner)
        elif path and path[-1] == "[key]":
            path, message = path[:-1], f"invalid key: {message}"
        for prefix in _MSG_PREFIXES:
            message = message.removeprefix(prefix)
        problems.append(_problem(filename, lines, path, kind, message, value, show_value=show_value))
    return problems


# --- public API ----------------------------------------------------------------------------------------


def load_spec_text(text: str, filename: str = "<string>", *, env: Mapping[str, str] | None = None) -> PipelineSpec:
    """Parse, interpolate and validate a pipeline spec given as YAML text.

    Args:
        text: The YAML document.
        filename: Name used in error messages.
        env: Variables for ``${VAR}`` interpolation; default :data:`os.environ`.

    Returns:
        The validated spec: an instance of a :class:`PipelineSpec` subclass whose ``source``,
        ``transforms`` and ``sink`` are the plugins' own config models.

    Raises:
        SpecError: (a :class:`~headwater.errors.ConfigError`) listing every problem, one per line.
    """
    data, lines = _parse(text, filename)
    if not isinstance(data, dict):
        got = "an empty document" if data is None else type(data).__name__
        raise SpecError([_problem(filename, lines, (), "not_mapping", f"top level must be a mapping, got {got}")])
    emitted: list[tuple[PathTuple, str, str]] = []
    data = _interpolate(data, (), os.environ if env is None else env, emitted)
    if emitted:
        raise SpecError([_problem(filename, lines, path, kind, message) for path, kind, message in emitted])
    secrets = _secret_values(data)
    model = spec_model_for(data)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise SpecError(_scrub(_validation_problems(exc, model, filename, lines), secrets)) from None


def load_spec(path: str | os.PathLike[str], *, env: Mapping[str, str] | None = None) -> PipelineSpec:
    """Load and validate the pipeline spec file at ``path``.

    Args:
        path: The YAML file; error messages name it as given.
        env: Variables for ``${VAR}`` interpolation; default :data:`os.environ`.

    Returns:
        The validated spec (see :func:`load_spec_text`).

    Raises:
        SpecError: (a :class:`~headwater.errors.ConfigError`) if the file cannot be read or is invalid.
    """
    filename = os.fspath(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise SpecError([_problem(filename, {}, (), "read", f"cannot read spec: {reason}")]) from None
    return load_spec_text(text, filename, env=env)
