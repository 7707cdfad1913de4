"""A small process supervisor: start a JVM detached, find it again, wait for readiness, stop it.

Processes are recognised by a marker in their command line (``-Dheadwater.home=<root>``), so
``down`` stops exactly what this stack started, even when a pid file is stale or missing.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import psutil

from headwater.errors import StackError


def marker(root: Path, service: str) -> list[str]:
    """JVM system properties that tag a process as ``service`` of the stack rooted at ``root``."""
    return [f"-Dheadwater.home={root}", f"-Dheadwater.service={service}"]


def find(root: Path, service: str) -> psutil.Process | None:
    """The running process of ``service`` for this stack, if any."""
    tags = set(marker(root, service))
    for proc in psutil.process_iter(["cmdline"]):
        try:
            cmdline = proc.info["cmdline"] or []
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        if tags.issubset(cmdline):
            return proc
    return None


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """True if something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def start(argv: list[str], log: Path, cwd: Path, env: dict[str, str] | None = None, *, exact_env: bool = False) -> int:
    """Start ``argv`` detached (own session), appending stdout+stderr to ``log``; return its pid.

    ``env`` is added to this process's environment, or with ``exact_env`` is the whole environment.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        proc = subprocess.Popen(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=cwd,
            env=dict(env or {}) if exact_env else {**os.environ, **(env or {})},
            start_new_session=True,
        )
    return proc.pid


def tail(log: Path, lines: int = 20) -> str:
    """The last ``lines`` lines of a log file ('' if missing)."""
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def wait_ready(
    service: str,
    check: Callable[[], bool],
    *,
    pid: int | None,
    address: str,
    log: Path,
    timeout: float,
    interval: float = 0.5,
) -> float:
    """Poll ``check`` until it returns True; fail fast if the process died. Returns seconds waited."""
    started = time.monotonic()
    while True:
        try:
            if check():
                return time.monotonic() - started
        except StackError:  # the probe knows the service cannot come up
            raise
        except Exception:
            pass
        if pid is not None and not psutil.pid_exists(pid):
            raise StackError(f"{service} ({address}) exited during start-up; log: {log}\n{tail(log)}")
        if pid is not None:
            try:
                if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                    raise StackError(f"{service} ({address}) exited during start-up; log: {log}\n{tail(log)}")
            except psutil.NoSuchProcess:
                pass
        if time.monotonic() - started > timeout:
            raise StackError(f"{service} ({address}) not ready after {timeout:.0f}s; log: {log}\n{tail(log)}")
        time.sleep(interval)


def stop(proc: psutil.Process, timeout: float = 60.0) -> str:
    """SIGTERM, wait up to ``timeout`` seconds, then SIGKILL. Returns 'stopped' or 'killed'."""
    try:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=timeout)
        return "stopped"
    except psutil.NoSuchProcess:
        return "stopped"
    except psutil.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)
        return "killed"


def stop_together(procs: list[tuple[str, psutil.Process]], timeout: float = 60.0) -> dict[str, tuple[int, str]]:
    """SIGTERM every process at once, wait up to ``timeout`` seconds for all, then SIGKILL the rest.

    Returns ``{name: (pid, 'stopped' | 'killed')}``.
    """
    for _, proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.send_signal(signal.SIGTERM)
    _, alive = psutil.wait_procs([p for _, p in procs], timeout=timeout)
    for proc in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()
    psutil.wait_procs(alive, timeout=10)
    return {name: (proc.pid, "killed" if proc in alive else "stopped") for name, proc in procs}
