"""Peer: a Quix Streams application, Kafka -> JSON -> HBase, with a batching sink.

Quix Streams checkpoints every ``commit_interval`` (set to 1 s, headwater's trigger): the sink gets
every record of the checkpoint in one ``SinkBatch`` and writes it with ``putMultiple`` calls of 1,000
puts. Runs in its own virtualenv (``benchmarks/peers/quix.lock``: quixstreams pins confluent-kafka
and pydantic below headwater's locked versions).

Runnable alone:
    .venv-quix/bin/python benchmarks/peers/quix_app.py --bootstrap HOST:PORT --topic T --port THRIFT2_PORT --table ns:t
It runs until killed, printing a progress line after every batch (see common.py).
"""

from __future__ import annotations

from typing import Any

import common
from quixstreams import Application
from quixstreams.sinks import BatchingSink, SinkBatch


class HBaseSink(BatchingSink):
    """Writes each checkpoint's records to HBase, ``putMultiple`` per 1,000."""

    def __init__(self, host: str, port: int, table: str) -> None:
        super().__init__()
        self.host, self.port, self.table = host, port, table
        self.hbase: Any = None
        self.written = self.skipped = 0

    def setup(self) -> None:
        self.hbase = common.client(self.host, self.port)

    def write(self, batch: SinkBatch) -> None:
        puts = []
        for item in batch:
            p = common.put_of(item.value)
            if p is None:
                self.skipped += 1
            else:
                puts.append(p)
        common.put_all(self.hbase, self.table, puts)
        self.written += len(puts)
        common.progress(self.written, self.skipped)


def main() -> None:
    a = common.args(__doc__ or "")
    app = Application(broker_address=a.bootstrap, consumer_group=a.group, auto_offset_reset="earliest",
                      commit_interval=1.0, loglevel="WARNING")  # fmt: skip
    sdf = app.dataframe(app.topic(a.topic, value_deserializer="json"))
    sdf.sink(HBaseSink(a.host, a.port, a.table))
    app.run()


if __name__ == "__main__":
    main()
