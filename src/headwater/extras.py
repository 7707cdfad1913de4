"""Optional parts of headwater and the pip extra that brings each part's own dependencies.

A plain ``pip install headwater`` runs pipelines, ``headwater query`` and the local stack; a part with
heavy dependencies of its own is an extra (``pip install 'headwater[serve]'``). Using such a part
without its extra raises a :class:`~headwater.errors.PluginError` that names the extra to install.
"""

from __future__ import annotations

from importlib.util import find_spec

from headwater.errors import PluginError

#: extra name -> the top-level modules it installs (the distributions are in pyproject.toml).
EXTRAS: dict[str, tuple[str, ...]] = {
    "serve": ("fastapi", "uvicorn"),
}


def missing(extra: str) -> list[str]:
    """The modules of ``extra`` that cannot be imported here (empty: the extra is installed)."""
    return [module for module in EXTRAS[extra] if find_spec(module) is None]


def require(extra: str, feature: str) -> None:
    """Raise unless the modules of ``extra`` are importable.

    Raises:
        PluginError: naming ``feature``, the missing modules and the ``pip install`` line that brings them.
    """
    absent = missing(extra)
    if absent:
        raise PluginError(
            f"{feature} needs the optional dependencies of headwater[{extra}] ({', '.join(absent)} not installed): "
            f"pip install 'headwater[{extra}]'"
        )
