"""What every local-stack service provides to the stack: config files, a command line, a readiness probe."""

from __future__ import annotations

import os
import shutil
from abc import ABC, abstractmethod
from pathlib import Path

from headwater.errors import StackError
from headwater.stack.config import StackConfig
from headwater.stack.supervisor import marker


def java() -> str:
    """The java executable (``$JAVA_HOME/bin/java`` or the one on PATH)."""
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").exists():
        return str(Path(home) / "bin" / "java")
    found = shutil.which("java")
    if not found:
        raise StackError("java not found: install a JDK 17 (or set JAVA_HOME); every stack service is a JVM")
    return found


class Service(ABC):
    """One JVM process of the local stack."""

    name: str
    #: jar component (see :mod:`headwater.stack.jars`)
    component: str

    def __init__(self, config: StackConfig) -> None:
        self.config = config

    @property
    def dir(self) -> Path:
        """This service's state folder (data and generated config)."""
        return self.config.state_dir / self.name

    @property
    def log(self) -> Path:
        return self.config.state_dir / "logs" / f"{self.name}.log"

    @property
    @abstractmethod
    def ports(self) -> list[int]:
        """Ports the service binds; the first is the one clients use."""

    @property
    def address(self) -> str:
        return f"{self.config.host}:{self.ports[0]}"

    def prepare(self) -> None:  # noqa: B027 - optional hook
        """Write config files and initialise storage (idempotent)."""

    @abstractmethod
    def command(self) -> list[str]:
        """The JVM arguments after ``java`` and the marker (heap, classpath, main class, args)."""

    def environment(self) -> dict[str, str] | None:
        """The process's whole environment; None (the default) inherits the caller's."""
        return None

    def argv(self) -> list[str]:
        return [java(), *marker(self.config.root, self.name), *self.command()]

    @abstractmethod
    def probe(self) -> bool:
        """True when the service answers its own protocol."""

    def classpath(self, *extra: Path) -> str:
        lib = self.config.jars(self.component)
        return os.pathsep.join([*(str(p) for p in extra), str(lib / "*")])
