"""Peer: the plain loop. One confluent-kafka consumer, json.loads, Thrift2 putMultiple per 1,000 records.

Runnable alone:
    python benchmarks/peers/plain_loop.py --bootstrap HOST:PORT --topic T --port THRIFT2_PORT --table ns:t
It runs until killed, printing a progress line after every call (see common.py).
"""

from __future__ import annotations

import json

import common
from confluent_kafka import Consumer


def main() -> None:
    a = common.args(__doc__ or "")
    consumer = Consumer({"bootstrap.servers": a.bootstrap, "group.id": a.group, "auto.offset.reset": "earliest",
                         "enable.auto.commit": False})  # fmt: skip
    consumer.subscribe([a.topic])
    hbase = common.client(a.host, a.port)
    written = skipped = 0
    while True:
        msgs = consumer.consume(common.BATCH, timeout=1)
        if not msgs:
            continue
        puts = []
        for m in msgs:
            if m.error():
                continue
            p = common.put_of(json.loads(m.value()))
            if p is None:
                skipped += 1
            else:
                puts.append(p)
        common.put_all(hbase, a.table, puts)
        consumer.commit(asynchronous=True)
        written += len(puts)
        common.progress(written, skipped)


if __name__ == "__main__":
    main()
