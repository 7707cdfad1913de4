"""The orders pipeline on the Spark standalone cluster of the cluster profile: two workers whose Python has no
headwater, so the package, its dependencies and the user's transform module must be shipped (headwater.ship)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cluster.conftest import cluster_env
from headwater.demo import create_orders
from headwater.spec import load_spec
from headwater.stack.spark_cluster import SparkWorkerService, master_state
from kit import compare, dead_letters, expected_from_hive, hbase_cells, run_cli, write_spec

pytestmark = pytest.mark.cluster

SHIPPED = Path(__file__).parent / "shipped"  # the user's module: on the driver's PYTHONPATH only
SCHEMA = ("order_id bigint, customer_id string, amount decimal(12,2), quantity int, status string, "
          "updated_at timestamp, items array<struct<sku:string,qty:int>>, attrs map<string,string>, dt string")  # fmt: skip
FILTER = """  - {type: filter, where: "status <> 'test'"}\n"""
PYTHON = f"""  - {{type: python, function: "cluster_provenance:record", output_schema: "{SCHEMA}, env string, hwfile string"}}\n"""


def test_orders_on_standalone_cluster_with_shipped_code(cluster_stack, cluster_spark, unique, tmp_path) -> None:  # type: ignore[no-untyped-def]
    cfg = cluster_stack.config
    workers = [s for s in cluster_stack.services if isinstance(s, SparkWorkerService)]
    assert len(workers) == 2

    # The workers (so their executors) run without the project's virtualenv: their Python has no headwater.
    for worker in workers:
        env = worker.environment()
        assert not {"VIRTUAL_ENV", "PYTHONPATH", "PYSPARK_PYTHON"} & set(env)
        assert str(Path(sys.prefix) / "bin") not in env["PATH"].split(os.pathsep)
        probe = subprocess.run(["python3", "-c", "import headwater"], env=env, capture_output=True, text=True,
                               check=False)  # fmt: skip
        assert probe.returncode != 0 and "No module named 'headwater'" in probe.stderr, probe

    path = write_spec(tmp_path, unique, max_offsets=1500,
                      columns="d: [amount, quantity, total, status, updated_at, dt]\n"
                              "    x: {items: json, attrs: json}\n    p: [env, hwfile]")  # fmt: skip
    text = path.read_text()
    assert FILTER in text
    path.write_text(text.replace(FILTER, FILTER + PYTHON))
    spec = load_spec(path)
    create_orders(cluster_spark, spec.source.table, 4_000)

    # No connections: in the cluster profile the spec's Spark master is the stack's standalone master.
    env = {**cluster_env(), "PYTHONPATH": os.pathsep.join(p for p in (str(SHIPPED), os.environ.get("PYTHONPATH")) if p)}
    out = run_cli("run", str(path), "--until-drained", env=env, timeout=900)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]

    # HBase equals the oracle (the provenance family aside), and the dead letters are the malformed ids.
    expected, expected_dlq = expected_from_hive(cluster_spark, spec.source.table)
    cells = hbase_cells(cfg.host, cfg.thrift2_port, spec.sink.full_table)
    provenance = {row: {c: v for c, v in cols.items() if c.startswith("p:")} for row, cols in cells.items()}
    data = {row: {c: v for c, v in cols.items() if not c.startswith("p:")} for row, cols in cells.items()}
    assert compare(expected, data) == {"lost": [], "phantom": [], "dup": [], "corrupt": []}
    assert len(data) == len(expected)
    dlq = dead_letters(cfg.kafka_bootstrap, spec.dead_letter.topic)
    assert {k: v["reason"] for k, v in dlq.items()} == expected_dlq

    # Both stages ran as applications of the standalone master, each with an executor on both workers.
    state = master_state(cfg)
    apps = {a["name"]: a["id"] for a in state["completedapps"] + state["activeapps"] if unique in a["name"]}
    assert set(apps) == {f"headwater-t{unique}-ingest", f"headwater-t{unique}-process"}, apps
    for worker in workers:
        for app_id in apps.values():
            executors = [d for d in (worker.work_dir / app_id).iterdir() if d.is_dir()]
            assert executors, f"{worker.name} ran no executor of {app_id}"

    # Every row went through the user's module in the shipped env, unpacked by an executor: its Python
    # (sys.prefix) is a 'hwenv' in a worker's folders, and the headwater it imported lives inside it.
    roots = {w.name: w.dir.resolve() for w in workers}
    seen: set[str] = set()
    for row, cols in provenance.items():
        prefix = Path(cols["p:env"][0][1].decode())
        hwfile = Path(cols["p:hwfile"][0][1].decode())
        assert prefix.name == "hwenv", (row, prefix)
        assert hwfile.is_relative_to(prefix / "lib"), (row, hwfile, prefix)
        where = [name for name, root in roots.items() if prefix.resolve().is_relative_to(root)]
        assert len(where) == 1, (row, prefix, roots)
        seen.add(where[0])
    assert len(provenance) == len(expected)
    print(f"rows by executor environment: {sorted(seen)}")
    assert seen == set(roots), f"only {seen} ran the python transform"
