"""Start time and resident memory of each broker of the cluster profile's three-broker Kafka.

Run with a stack home of its own and free ports (nothing else of the stack is started):
    HEADWATER_HOME=/tmp/hw-kbench HEADWATER_PROFILE=cluster .venv/bin/python benchmarks/kafka_cluster_start.py
It formats fresh storage for the three brokers (timed), starts them together, polls each broker's own probe
(Kafka metadata from its own port, itself registered) and prints per broker the seconds from its launch to
ready and its RSS when all three answer and after a topic with 3 replicas took 20,000 records; then stops
them and deletes the state. Nothing is asserted.
"""

from __future__ import annotations

import shutil
import time

import psutil

from headwater.stack import StackConfig, supervisor
from headwater.stack.kafka import KafkaService


def _rss(pid: int) -> float:
    return psutil.Process(pid).memory_info().rss / 2**20


def main() -> None:
    cfg = StackConfig.from_env(profile="cluster")
    brokers = [KafkaService(cfg, node) for node in cfg.kafka_nodes]
    shutil.rmtree(cfg.state_dir, ignore_errors=True)
    t0 = time.monotonic()
    for b in brokers:
        b.prepare()
    print(f"storage format, 3 brokers (one JVM each, in turn): {time.monotonic() - t0:.1f} s")
    launched = {b.name: (time.monotonic(), supervisor.start(b.argv(), b.log, cwd=b.dir)) for b in brokers}
    ready: dict[str, float] = {}
    try:
        while len(ready) < len(brokers):
            for b in brokers:
                if b.name not in ready:
                    try:
                        if b.probe():
                            ready[b.name] = time.monotonic() - launched[b.name][0]
                    except Exception:
                        pass
                if not psutil.pid_exists(launched[b.name][1]):
                    raise SystemExit(f"{b.name} exited; log {b.log}")
            time.sleep(0.2)
        idle = {name: _rss(pid) for name, (_, pid) in launched.items()}
        from confluent_kafka import Producer

        from headwater import kafka
        from headwater.spec.connections import KafkaConnection

        kafka.ensure_topic(KafkaConnection(bootstrap_servers=cfg.kafka_bootstrap), "bench", 2)
        producer = Producer({"bootstrap.servers": cfg.kafka_bootstrap, "enable.idempotence": True, "acks": "all"})
        for i in range(20_000):
            producer.produce("bench", key=str(i).encode(), value=b"x" * 200)
            producer.poll(0)
        producer.flush(60)
        loaded = {name: _rss(pid) for name, (_, pid) in launched.items()}
        print(
            f"{'broker':<8} {'ready s':>8} {'RSS idle MiB':>13} {'RSS loaded MiB':>15}  (heap {cfg.kafka_cluster_heap})"
        )
        for b in brokers:
            print(f"{b.name:<8} {ready[b.name]:>8.1f} {idle[b.name]:>13.0f} {loaded[b.name]:>15.0f}")
    finally:
        procs = [(b.name, p) for b in brokers if (p := supervisor.find(cfg.root, b.name)) is not None]
        supervisor.stop_together(procs, timeout=45)
        shutil.rmtree(cfg.state_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
