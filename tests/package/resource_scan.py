"""Find the files the package's code opens by a package-relative path, by reading its source (AST).

An editable install runs from the source tree, where every file is present; an installed wheel has
only what the build put in it. This scan lists, for each place the code builds a path next to its
own modules, the path it names inside the distribution (``headwater/sinks/hbase2.thrift``; a part
computed at run time becomes ``*``: ``headwater/stack/jvm/*.pom.xml``), so a test can check the wheel
against the code rather than against a hand-kept list.

Recognised anchors, joined with ``/``, ``.joinpath(...)`` or ``os.path.join(...)``:
``importlib.resources.files(PKG)`` (``PKG`` a string, ``__package__`` or ``__name__``),
``resources.read_text|read_binary|open_text|open_binary|path|is_resource(PKG, NAME)``,
``pkgutil.get_data(PKG, NAME)``, ``Path(__file__).parent``/``.parents[N]`` (also after ``.resolve()``)
and ``os.path.dirname(__file__)``. A path kept in a variable and joined later is not followed.
"""

from __future__ import annotations

import ast
import fnmatch
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

_RESOURCE_CALLS = {"read_text", "read_binary", "open_text", "open_binary", "path", "is_resource"}


@dataclass(frozen=True)
class ResourceUse:
    """One package-relative path the code builds: where, and the path inside the distribution it names."""

    source: str  # file, relative to the scanned root
    line: int
    pattern: str  # posix path inside the distribution; '*' for parts computed at run time

    def __str__(self) -> str:
        return f"{self.source}:{self.line}: {self.pattern}"


def _part(node: ast.expr) -> str:
    """A path part: the literal, an f-string with '*' for its fields, or '*' for anything computed."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value if isinstance(v, ast.Constant) else "*" for v in node.values)
    return "*"


def _dotted(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return ""


def _join(base: str, *parts: str) -> str:
    path = PurePosixPath(base)
    for part in parts:
        for piece in part.split("/"):
            if piece in ("", "."):
                continue
            path = path.parent if piece == ".." else path / piece
    return str(path)


class _Scanner:
    def __init__(self, module: str, is_package: bool) -> None:
        self.module = module  # dotted module name, e.g. headwater.sinks.thrift2 (a package's own name for __init__)
        self.package = module if is_package else module.rpartition(".")[0]

    def package_dir(self, node: ast.expr) -> str | None:
        """The folder inside the distribution a package argument names."""
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return node.value.replace(".", "/")
        if isinstance(node, ast.Name) and node.id == "__package__":
            return self.package.replace(".", "/")
        if isinstance(node, ast.Name) and node.id == "__name__":  # files(__name__) of a package's __init__
            return self.module.replace(".", "/")
        return None

    def module_dir(self) -> str:
        return self.package.replace(".", "/")

    def resolve(self, node: ast.expr) -> str | None:
        """The path inside the distribution ``node`` evaluates to, or None if it is not package-relative."""
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
            base = self.resolve(node.left)
            return None if base is None else _join(base, _part(node.right))
        if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Attribute) and node.value.attr == "parents":
            index = node.slice.value if isinstance(node.slice, ast.Constant) else None
            if self.is_file_path(node.value.value) and isinstance(index, int):
                return _join(self.module_dir(), *[".."] * index)
            return None
        if isinstance(node, ast.Attribute) and node.attr == "parent":
            if self.is_file_path(node.value):
                return self.module_dir()
            base = self.resolve(node.value)
            return None if base is None else _join(base, "..")
        if not isinstance(node, ast.Call):
            return None
        name = _dotted(node.func)
        last = name.rpartition(".")[2]
        if last == "files" and node.args and ("resources" in name or name == "files"):
            return self.package_dir(node.args[0])
        if last in _RESOURCE_CALLS and "resources" in name and len(node.args) >= 2:
            base = self.package_dir(node.args[0])
            return None if base is None else _join(base, _part(node.args[1]))
        if name.endswith("get_data") and "pkgutil" in name and len(node.args) >= 2:
            base = self.package_dir(node.args[0])
            return None if base is None else _join(base, _part(node.args[1]))
        if name.endswith("path.dirname") and node.args and self.is_file_path(node.args[0]):
            return self.module_dir()
        if name.endswith("path.join") and node.args:
            base = self.resolve(node.args[0])
            return None if base is None else _join(base, *map(_part, node.args[1:]))
        if last == "joinpath" and isinstance(node.func, ast.Attribute):
            base = self.resolve(node.func.value)
            return None if base is None else _join(base, *map(_part, node.args))
        if last in ("Path", "PurePath", "str", "resolve", "absolute", "as_file") and node.args:
            return self.resolve(node.args[0])  # Path(str(files(...) / "x")), as_file(files(...) / "x")
        if last in ("resolve", "absolute") and isinstance(node.func, ast.Attribute):
            return self.resolve(node.func.value)
        return None

    def is_file_path(self, node: ast.expr) -> bool:
        """``__file__``, ``Path(__file__)``, ``os.path.abspath(__file__)``, ``Path(__file__).resolve()``."""
        if isinstance(node, ast.Name):
            return node.id == "__file__"
        if isinstance(node, ast.Call):
            last = _dotted(node.func).rpartition(".")[2]
            if last in ("Path", "PurePath", "abspath", "realpath") and node.args:
                return self.is_file_path(node.args[0])
            if last in ("resolve", "absolute") and isinstance(node.func, ast.Attribute):
                return self.is_file_path(node.func.value)
        return False


def scan_source(text: str, module: str, source: str = "<string>", *, is_package: bool = False) -> list[ResourceUse]:
    """The package-relative paths one module's code builds (the longest expression of each).

    ``module`` is the dotted name; ``is_package`` says the text is that package's ``__init__.py``.
    """
    tree = ast.parse(text, filename=source)
    scanner = _Scanner(module, is_package)
    parents: dict[ast.AST, ast.AST] = {}
    for parent in ast.walk(tree):
        for child in ast.iter_child_nodes(parent):
            parents[child] = parent
    uses = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.expr):
            continue
        pattern = scanner.resolve(node)
        if pattern is None:
            continue
        ancestor = parents.get(node)
        while isinstance(ancestor, ast.expr) and scanner.resolve(ancestor) is None:
            ancestor = parents.get(ancestor)  # e.g. files(...).joinpath: the Attribute between the two
        if isinstance(ancestor, ast.expr):
            continue  # a part of a longer path expression: the longer one is reported
        uses.append(ResourceUse(source, node.lineno, pattern))
    return uses


def scan(src_root: Path) -> list[ResourceUse]:
    """Every package-relative path built by the modules under ``src_root`` (a ``src/`` layout folder)."""
    uses: list[ResourceUse] = []
    for path in sorted(src_root.rglob("*.py")):
        rel = path.relative_to(src_root)
        parts = list(rel.with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        module = ".".join(parts[:-1] if is_package else parts)
        uses.extend(scan_source(path.read_text(), module, str(rel), is_package=is_package))
    return uses


def missing_from(uses: Iterable[ResourceUse], names: Iterable[str], prefix: str = "") -> list[ResourceUse]:
    """The uses no file in ``names`` (archive member names) satisfies: a file matching the pattern,
    or, for a folder, a file under it. ``prefix`` is where the package folders start in the archive."""
    files = [n[len(prefix) :] for n in names if n.startswith(prefix) and not n.endswith("/")]
    out = []
    for use in uses:
        if not any(fnmatch.fnmatchcase(f, use.pattern) or f.startswith(use.pattern.rstrip("/") + "/") for f in files):
            out.append(use)
    return out
