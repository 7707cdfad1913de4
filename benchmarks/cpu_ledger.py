"""CPU-seconds of whole process trees over a window, including processes that start and end inside it (Linux).

A benchmark of a distributed stage must count every process it involves: the driver (Python and its
JVM), executors that a Spark worker starts and ends during the run, the Python workers they fork,
and the daemons' own CPU. A plain before/after difference over the live trees misses whatever ends
before "after". This ledger gets it exactly, from the kernel's own accounting:

- every ``interval`` it walks the trees under the watched roots and records, per process, its own
  CPU time (user + system) and that of its reaped children (``children_user``/``children_system``),
  and which group it belongs to;
- a process that a watched parent reaps has its whole lifetime added to that parent's children
  times, so only the part it had before the window is subtracted;
- a process whose parent dies first is re-parented to the nearest "child subreaper" ancestor: the
  benchmark makes itself one (``prctl(PR_SET_CHILD_SUBREAPER)``), so orphans of the driver, and of
  the stack's services when the benchmark started the stack, come back to it; it reaps them with
  ``wait4``, whose resource usage is exact.

Limits: the stack's services must be children of this process (started by it) for orphans of
executors to be counted (otherwise they go to init and their time since the last sample is lost);
pid reuse within a window is ignored.
"""

from __future__ import annotations

import ctypes
import os
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field

import psutil

PR_SET_CHILD_SUBREAPER = 36


def become_subreaper() -> bool:
    """Make this process the reaper of its descendants' orphans (Linux); False where that is unavailable."""
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    return bool(libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0)


@dataclass
class Root:
    """A watched process: its own CPU goes to ``group``, its descendants' (live or reaped) to ``descendants``."""

    pid: int
    group: str
    descendants: str | None = None

    @property
    def child_group(self) -> str:
        return self.descendants or self.group


@dataclass
class _Entry:
    own_group: str
    child_group: str
    base_own: float  # CPU before the window (0 for a process born inside it)
    base_children: float
    last_own: float
    last_children: float
    gone: bool = False
    reaped: float | None = None  # total CPU from wait4, when this process reaped it


@dataclass
class CpuLedger:
    """Accumulates, per group, the CPU-seconds the watched trees spend between :meth:`start` and :meth:`finish`.

    ``exclude`` are children of this process never to reap (the stack's services, a SparkSession's JVM).
    """

    roots: list[Root]
    exclude: set[int] = field(default_factory=set)
    entries: dict[int, _Entry] = field(default_factory=dict)
    exit_codes: dict[int, int] = field(default_factory=dict)
    unattributed: float = 0.0  # orphans reaped before any sample saw them
    started: bool = False

    def add_root(self, root: Root) -> None:
        """Watch a process started inside the window (its CPU counts from its birth)."""
        self.roots.append(root)
        self.sample()

    def start(self) -> None:
        self.sample()
        self.started = True

    def _walk(self) -> dict[int, tuple[str, str]]:
        """pid -> (own group, child group) of every process under the roots now."""
        kids: dict[int, list[int]] = defaultdict(list)
        for p in psutil.process_iter(["ppid"]):
            kids[p.info["ppid"]].append(p.pid)
        out: dict[int, tuple[str, str]] = {}
        for root in self.roots:
            out[root.pid] = (root.group, root.child_group)
            stack = list(kids.get(root.pid, []))
            while stack:
                pid = stack.pop()
                out.setdefault(pid, (root.child_group, root.child_group))
                stack.extend(kids.get(pid, []))
        return out

    def sample(self) -> None:
        """Reap finished orphans, find new processes under the roots and read every known process's CPU."""
        self.reap()
        for pid, (own_group, child_group) in self._walk().items():
            if pid in self.entries:
                continue
            try:
                t = psutil.Process(pid).cpu_times()
            except psutil.Error:
                continue
            own, children = t.user + t.system, t.children_user + t.children_system
            base = self.started  # first seen after the window opened: born inside it
            self.entries[pid] = _Entry(own_group, child_group, 0.0 if base else own, 0.0 if base else children,
                                       own, children)  # fmt: skip
        for pid, e in self.entries.items():
            if e.gone:
                continue
            try:
                t = psutil.Process(pid).cpu_times()
            except psutil.Error:
                e.gone = True
                continue
            e.last_own, e.last_children = t.user + t.system, t.children_user + t.children_system

    def reap(self) -> None:
        """``wait4`` every finished child of this process that is not excluded, recording its total CPU."""
        try:
            children = psutil.Process().children()
        except psutil.Error:
            return
        for child in children:
            if child.pid in self.exclude:
                continue
            try:
                pid, status, usage = os.wait4(child.pid, os.WNOHANG)
            except ChildProcessError:
                continue
            if pid == 0:
                continue
            self.exit_codes[pid] = os.waitstatus_to_exitcode(status)
            total = usage.ru_utime + usage.ru_stime
            if pid in self.entries:
                self.entries[pid].reaped = total
                self.entries[pid].gone = True
            else:
                self.unattributed += total

    def wait_exit(self, pid: int, interval: float = 0.5) -> int:
        """Sample every ``interval`` until this process's child ``pid`` has exited and been reaped; its exit code."""
        while pid not in self.exit_codes:
            self.sample()
            if pid not in self.exit_codes:
                time.sleep(interval)
        return self.exit_codes[pid]

    def settle(self, busy: list[str], timeout: float = 60.0, interval: float = 0.5) -> float:
        """Sample until no process of the ``busy`` groups is left running and no orphan is left (or ``timeout``).

        Roots stay (they are daemons); their descendants and this process's orphans must end. Returns the
        seconds waited.
        """
        t0 = time.monotonic()
        roots = {r.pid for r in self.roots}
        while time.monotonic() - t0 < timeout:
            self.sample()
            live = [p for p, e in self.entries.items() if not e.gone and p not in roots and e.own_group in busy]
            orphans = [c.pid for c in psutil.Process().children() if c.pid not in self.exclude]
            if not live and not orphans:
                break
            time.sleep(interval)
        return time.monotonic() - t0

    def totals(self) -> dict[str, float]:
        """CPU-seconds per group in the window (call after a last :meth:`sample`)."""
        out: dict[str, float] = defaultdict(float)
        for e in self.entries.values():
            base = e.base_own + e.base_children
            if e.reaped is not None:  # reaped here: its total is exact
                out[e.own_group] += e.reaped - base
            elif e.gone:  # reaped by a watched parent: its lifetime is in that parent's children times
                out[e.own_group] -= base  # (a descendant: its group is its parent's child group)
            else:
                out[e.own_group] += e.last_own - e.base_own
                out[e.child_group] += e.last_children - e.base_children
        if self.unattributed:
            out["orphans"] += self.unattributed
        return dict(out)
