"""Concrete spec models with plugin unions, and the JSON Schema of ``pipeline.yaml``.

:class:`~headwater.spec.models.PipelineSpec` types ``source``, ``transforms`` and ``sink`` with the
plugin base configs; the concrete model for a document (:func:`spec_model_for`) puts the config
models of the plugins it names into unions discriminated by ``type``, built with
:func:`pydantic.create_model` and cached per set of plugin classes.
"""

from __future__ import annotations

import functools
import operator
import warnings
from collections.abc import Iterable, Mapping
from typing import Annotated, Any

from pydantic import BaseModel, Discriminator, Field, PlainValidator, Tag, create_model
from pydantic_core import PydanticCustomError

from headwater import plugins
from headwater.errors import PluginError
from headwater.plugins import Kind
from headwater.spec.models import PipelineSpec

INVALID_TAG = "__invalid__"
"""Union tag of the placeholder member that reports an unusable plugin ``type``."""


Resolved = tuple[tuple[str, type[BaseModel] | str], ...]


def _resolve(kind: Kind, names: Iterable[str]) -> Resolved:
    """Each name with its plugin's Config model, or the message saying why it cannot be used."""
    out: list[tuple[str, type[BaseModel] | str]] = []
    for name in dict.fromkeys(names):
        try:
            config = getattr(plugins.get(kind, name), "Config", None)
        except PluginError as exc:
            out.append((name, str(exc)))
            continue
        if isinstance(config, type) and issubclass(config, BaseModel):
            out.append((name, config))
        else:
            out.append((name, f"{kind} plugin '{name}' has no pydantic Config model"))
    return tuple(out)


def _invalid_validator(kind: Kind, resolved: Resolved) -> Any:
    failures = {name: entry for name, entry in resolved if isinstance(entry, str)}

    def invalid(value: Any) -> Any:
        known = ", ".join(plugins.names(kind))
        if not isinstance(value, Mapping):
            raise PydanticCustomError(
                "plugin_config",
                "expected a mapping with a 'type' naming a {kind} plugin (known: {known})",
                {"kind": kind, "known": known},
            )
        if "type" not in value:
            raise PydanticCustomError(
                "plugin_type", "missing {kind} type; known: {known}", {"kind": kind, "known": known}
            )
        name = value["type"]
        if not isinstance(name, str):
            raise PydanticCustomError(
                "plugin_type",
                "{kind} type must be a string, not {got}; known: {known}",
                {"kind": kind, "got": type(name).__name__, "known": known},
            )
        message = failures.get(name) or f"unknown {kind} type '{name}'; known: {known}"
        raise PydanticCustomError("plugin_type", "{message}", {"message": message})

    return invalid


def _slot(kind: Kind, resolved: Resolved) -> Any:
    """Discriminated union of the resolved Config models plus a placeholder for unusable types."""
    loaded = {name for name, entry in resolved if not isinstance(entry, str)}

    def tag(value: Any) -> str:
        name = value.get("type") if isinstance(value, Mapping) else getattr(value, "type", None)
        return name if isinstance(name, str) and name in loaded else INVALID_TAG

    members: list[Any] = [Annotated[entry, Tag(name)] for name, entry in resolved if not isinstance(entry, str)]
    members.append(Annotated[Any, PlainValidator(_invalid_validator(kind, resolved)), Tag(INVALID_TAG)])
    return Annotated[functools.reduce(operator.or_, members), Discriminator(tag)]


def _schema_slot(kind: Kind, resolved: Resolved) -> Any:
    """Plain ``type``-discriminated union (for JSON Schema); unusable plugins are left out."""
    models: list[Any] = []
    for _name, entry in resolved:
        if isinstance(entry, str):
            warnings.warn(f"left out of the JSON schema: {entry}", stacklevel=3)
        else:
            models.append(entry)
    if not models:
        return dict[str, Any]
    if len(models) == 1:
        return models[0]
    return Annotated[functools.reduce(operator.or_, models), Field(discriminator="type")]


@functools.lru_cache(maxsize=64)
def _build(source: Resolved, transforms: Resolved, sink: Resolved, for_schema: bool) -> type[PipelineSpec]:
    slot = _schema_slot if for_schema else _slot
    fields = PipelineSpec.model_fields
    transforms_type: Any = list[slot("transform", transforms)]  # type: ignore[misc]
    sinks_type: Any = list[slot("sink", sink)]  # type: ignore[misc]
    model = create_model(
        "PipelineSpec",
        __base__=PipelineSpec,
        __module__=__name__,
        __doc__=PipelineSpec.__doc__,
        source=(slot("source", source), Field(description=fields["source"].description)),
        transforms=(
            transforms_type,
            Field(default_factory=list, description=fields["transforms"].description),
        ),
        sink=(slot("sink", sink), Field(default=None, description=fields["sink"].description)),
        sinks=(sinks_type, Field(default_factory=list, description=fields["sinks"].description)),
    )
    return model


def spec_model(
    sources: Iterable[str], transforms: Iterable[str], sinks: Iterable[str], *, for_schema: bool = False
) -> type[PipelineSpec]:
    """The concrete :class:`PipelineSpec` subclass whose plugin slots accept the named plugin types.

    Only the named plugins are imported. A name that is unknown or cannot be imported stays
    accepted by the model but fails validation with a message naming the known types.

    Args:
        sources: Source type names.
        transforms: Transform type names.
        sinks: Sink type names.
        for_schema: Build a plain ``type``-discriminated model for JSON Schema instead (unusable
            plugins are left out with a warning).

    Returns:
        A subclass of :class:`PipelineSpec` (cached per set of plugin classes).
    """
    return _build(_resolve("source", sources), _resolve("transform", transforms), _resolve("sink", sinks), for_schema)


def _type_of(value: Any) -> list[str]:
    name = value.get("type") if isinstance(value, Mapping) else None
    return [name] if isinstance(name, str) else []


def spec_model_for(document: Mapping[str, Any]) -> type[PipelineSpec]:
    """The concrete :class:`PipelineSpec` model for a parsed document (imports only the types it names)."""
    transforms = document.get("transforms")
    items = transforms if isinstance(transforms, list) else []
    listed = document.get("sinks")
    sinks = listed if isinstance(listed, list) else []
    return spec_model(
        _type_of(document.get("source")),
        [name for item in items for name in _type_of(item)],
        [*_type_of(document.get("sink")), *(name for item in sinks for name in _type_of(item))],
    )


def spec_json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a pipeline spec.

    ``source``, ``transforms`` items and ``sink`` are ``oneOf`` the config models of all known
    plugins, discriminated by ``type``. This imports every plugin (the one place that does); a
    plugin that cannot be imported is left out with a warning.

    Returns:
        The schema as a JSON-serialisable dict.
    """
    model = spec_model(plugins.names("source"), plugins.names("transform"), plugins.names("sink"), for_schema=True)
    schema = model.model_json_schema(by_alias=True, mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["anyOf"] = [{"required": ["sink"]}, {"required": ["sinks"]}]  # one sink, or a list of them
    return schema
