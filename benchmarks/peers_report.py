"""The CPU half of ``peers_bench``'s report: where each runner's CPU goes, and what the Spark floors allow.

Split from ``peers_bench.py`` (the runners, their timing and the table checks), which imports it.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from peers_bench import Result

TARGETS = {"spark competent": 1.5, "quix": 1.2, "plain loop": 1.2}  # cold; the plain loop warm: 1.5
WARM_TARGETS = {"plain loop": 1.5}
FLOORS = ("spark floor read", "spark floor parse")  # write nothing: no table to check
WRITERS = ("headwater", "spark competent", "quix", "plain loop")  # batch their puts: the least HBase CPU per record


def cpu_table(results: list[Result], hw: Result | None) -> None:
    """Where the CPU goes: the runner's and the stack's per record, the cores busy, the machine's ceiling.

    The ceiling is the rate at which the runner and the services it writes through (at the phase's CPU
    per record) would keep every core busy: no runner on this machine goes faster than its ceiling.
    For each target, the cores the stack alone needs at the rate the target asks (headwater's stack CPU
    per record) say whether the machine can reach it at all.
    """
    cores = os.cpu_count() or 1
    print(f"\n  where the CPU goes ({cores} cores; stack = HBase, its Thrift servers and Kafka, CPU read at the "
          "phase's start and end)")  # fmt: skip
    print("  runner            | phase | first records s | runner CPU-s/1k | stack CPU-s/1k | cores busy | ceiling rec/s "
          "| rate / ceiling")  # fmt: skip
    for r in results:
        for label, ph in (("cold", r.cold), ("warm", r.warm)):
            assert ph is not None
            ceiling = ph.ceiling(cores)
            share = f"{ph.rate / ceiling:.2f}" if ceiling else "-"
            print(f"  {r.name:<17} | {label:<5} | {ph.first or 0:>15.1f} | {ph.cpu_per_1k:>15.3f} | "
                  f"{ph.stack_cpu_per_1k:>14.3f} | {ph.busy:>10.2f} | {ceiling:>13,.0f} | {share:>14}")  # fmt: skip
    parts = ("JVM", "Python", "hbase", "hbase-thrift2", "hbase-thrift", "kafka")
    print("\n  the same CPU by process (CPU-s per 1,000 records; runner: its JVMs / its Python processes; stack: each "
          "service; hbase = master + region server + ZooKeeper)")  # fmt: skip
    print("  runner            | phase | runner JVM | runner Python | hbase | thrift2 | thrift1 | kafka")
    for r in results:
        for label, ph in (("cold", r.cold), ("warm", r.warm)):
            assert ph is not None
            jvm, py, hb, t2, t1, kf = (ph.per_1k(k) for k in parts)
            print(f"  {r.name:<17} | {label:<5} | {jvm:>10.3f} | {py:>13.3f} | {hb:>5.3f} | {t2:>7.3f} | {t1:>7.3f} | "
                  f"{kf:>5.3f}")  # fmt: skip
    if hw is None or hw.cold is None or hw.warm is None:
        return
    for r in results:
        if r is hw or r.cold is None or r.warm is None:
            continue
        asks = []
        if r.name in TARGETS:
            asks.append(("cold", TARGETS[r.name] * r.cold.rate, hw.cold))
        if r.name in WARM_TARGETS:
            asks.append(("warm", WARM_TARGETS[r.name] * r.warm.rate, hw.warm))
        for label, rate, own in asks:
            stack_cores, hw_cores = rate * own.stack_cpu_per_1k / 1000, rate * own.cpu_per_1k / 1000
            print(f"  target against {r.name} ({label}): {rate:,.0f} records/s; at headwater's CPU per record the "
                  f"stack needs {stack_cores:.2f} cores and headwater {hw_cores:.2f} ({stack_cores + hw_cores:.2f} "
                  f"of {cores})")  # fmt: skip
    floor_bounds(results, cores)


def floor_bounds(results: list[Result], cores: int) -> None:
    """What the floors allow any Spark-based stage on this machine, beside each target.

    A stage that puts its rows into HBase does at least a floor's work, and HBase and Kafka do at least the least
    work any batching writer caused them in the same phase (``stack``). CPU over cores bounds the rate:
    ``cores / (floor CPU + stack CPU)`` per record, as if both cores were busy from the launch on. Cold,
    the floor's own measured rate (it writes nothing) bounds it too; the lower of the two counts.
    """
    by = {r.name: r for r in results}
    floors = [by[n] for n in FLOORS if n in by]
    writers = [by[n] for n in WRITERS if n in by]
    if not floors or not writers:
        return
    stack = {label: min(getattr(w, label).per_1k("hbase") + getattr(w, label).per_1k("kafka") for w in writers)
             for label in ("cold", "warm")}  # fmt: skip
    bound: dict[tuple[str, str], float] = {}
    print(f"\n  what the floors allow a Spark-based stage here (stack = HBase + Kafka, at least {stack['cold']:.3f} "
          f"CPU-s/1k cold and {stack['warm']:.3f} warm)")  # fmt: skip
    print("  floor             | cold rec/s | cold CPU-s/1k | cold bound rec/s | warm CPU-s/1k | warm bound rec/s")
    for f in floors:
        cold, warm = f.cold, f.warm
        assert cold and warm
        bound[f.name, "cold"] = min(cold.rate, 1000 * cores / (cold.cpu_per_1k + stack["cold"]))
        bound[f.name, "warm"] = 1000 * cores / (warm.cpu_per_1k + stack["warm"])
        print(f"  {f.name:<17} | {cold.rate:>10,.0f} | {cold.cpu_per_1k:>13.3f} | {bound[f.name, 'cold']:>16,.0f} | "
              f"{warm.cpu_per_1k:>13.3f} | {bound[f.name, 'warm']:>16,.0f}")  # fmt: skip
    for r in results:
        if r.name not in TARGETS or r.cold is None or r.warm is None:
            continue
        # warm: the plain loop's own warm target; the others' cold ratio, asked of the warm phase too
        asks = [
            ("cold", TARGETS[r.name], r.cold.rate),
            ("warm", WARM_TARGETS.get(r.name, TARGETS[r.name]), r.warm.rate),
        ]
        for label, ratio, peer in asks:
            best = max(bound[f.name, label] for f in floors)
            verdict = (
                "out of reach of any Spark job putting into HBase here"
                if best < ratio * peer
                else "within the floors' bound"
            )
            print(f"  {ratio}x {r.name} ({label}): {ratio * peer:,.0f} records/s; the floors allow at most "
                  f"{best:,.0f} ({best / peer:.2f}x): {verdict}")  # fmt: skip
