"""Plugin registry: type name -> class, for sources, transforms and sinks.

Built-in plugins are imported lazily (a spec that uses only ``hive`` never imports the HBase
client). Outside packages register through the entry-point group ``headwater.<kind>s``, e.g.::

    [project.entry-points."headwater.sources"]
    jdbc = "mypkg.jdbc:JdbcSource"

Each plugin class has a ``Config`` attribute: a pydantic model with ``type: Literal[name]``.
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from typing import Any, Literal

from headwater.errors import PluginError

Kind = Literal["source", "transform", "sink"]

# name -> "module:Class"; one module per plugin, so adding one is one module plus one line here
# (or none at all, through an entry point).
_BUILTINS: dict[Kind, dict[str, str]] = {
    "source": {
        "hive": "headwater.sources.hive:HiveSource",
        "kafka": "headwater.sources.kafka:KafkaSource",
    },
    "transform": {
        "sql": "headwater.transforms.sql:SqlTransform",
        "select": "headwater.transforms.select:SelectTransform",
        "filter": "headwater.transforms.filter:FilterTransform",
        "dedupe": "headwater.transforms.dedupe:DedupeTransform",
        "window": "headwater.transforms.window:WindowTransform",
        "enrich": "headwater.transforms.enrich:EnrichTransform",
        "python": "headwater.transforms.python:PythonTransform",
    },
    "sink": {
        "hbase": "headwater.sinks.hbase:HBaseSink",
        "kafka": "headwater.sinks.kafka:KafkaSink",
    },
}

_registered: dict[Kind, dict[str, Any]] = {"source": {}, "transform": {}, "sink": {}}


def register(kind: Kind, name: str, cls: Any) -> None:
    """Register ``cls`` as the plugin ``name`` of ``kind`` (used by tests and embedding apps)."""
    _registered[kind][name] = cls


def _entry_point_targets(kind: Kind) -> dict[str, str]:
    return {ep.name: ep.value for ep in entry_points(group=f"headwater.{kind}s")}


def names(kind: Kind) -> list[str]:
    """All known plugin names of ``kind``, sorted."""
    return sorted({*_BUILTINS[kind], *_registered[kind], *_entry_point_targets(kind)})


def _load_target(target: str, kind: Kind, name: str) -> Any:
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise PluginError(
            f"{kind} plugin '{name}' could not be imported ({target}): {exc}. Install the package that provides it."
        ) from exc
    return getattr(module, attr)


def get(kind: Kind, name: str) -> Any:
    """Return the plugin class ``name`` of ``kind``; an unknown name lists the known ones."""
    if name in _registered[kind]:
        return _registered[kind][name]
    target = _BUILTINS[kind].get(name) or _entry_point_targets(kind).get(name)
    if target is None:
        raise PluginError(f"unknown {kind} type '{name}'; known: {', '.join(names(kind))}")
    cls = _load_target(target, kind, name)
    _registered[kind][name] = cls
    return cls
