"""Dead letters as a workflow: list them, and replay them into the pipeline once it is fixed.

:func:`read_envelopes` reads the dead-letter topic (deduplicated by the envelope key, the source
position ``<topic>:<partition>:<offset>``). :func:`replay` re-produces each envelope's original
record to the pipeline's topic, with the header ``hw.replay_of=<position>`` (idempotent producer,
``acks=all``), so it flows through the fixed pipeline again.

Exactly once: the replayed positions are recorded in the compacted state topic under
``<pipeline>/dlq-replayed``, committed only after Kafka acknowledged the records, so a second
replay skips them. A crash between the acknowledgement and the commit re-sends those records on
the next run; the sink absorbs that (same row key and cell timestamp).

Envelopes of the ``sink`` stage carry the transformed record, not the source record; their
original is fetched from the pipeline's topic at the recorded offset (if retention kept it).
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from headwater import kafka
from headwater.errors import NotFoundError, TransientError
from headwater.testing import fault_point

if TYPE_CHECKING:
    from headwater.spec.connections import KafkaConnection
    from headwater.spec.models import PipelineSpec

REPLAY_HEADER = "hw.replay_of"
_COMMIT_EVERY = 1000


@dataclass
class DeadLetter:
    """One dead-letter envelope, with where it sits in the dead-letter topic."""

    position: str
    envelope: dict[str, Any]
    dlq_partition: int
    dlq_offset: int

    @property
    def reason(self) -> str:
        return str(self.envelope.get("reason") or "unknown")

    @property
    def stage(self) -> str:
        return str(self.envelope.get("stage") or "")

    @property
    def message(self) -> str:
        return str(self.envelope.get("message") or "")

    @property
    def source(self) -> tuple[str, int, int] | None:
        """(topic, partition, offset) of the original record, if the envelope says."""
        src = self.envelope.get("source") or {}
        try:
            return str(src["topic"]), int(src["partition"]), int(src["offset"])
        except (KeyError, TypeError, ValueError):
            return None

    def original(self) -> bytes | None:
        """The original value bytes carried by the envelope (None if absent or not base64)."""
        data = self.envelope.get("value_b64")
        if not isinstance(data, str):
            return None
        try:
            return base64.b64decode("".join(data.split()), validate=True)  # Spark may wrap lines (MIME)
        except (binascii.Error, ValueError):
            return None

    def as_dict(self) -> dict[str, Any]:
        """JSON form for ``dlq show --json``: the envelope plus its original value as text."""
        raw = self.original()
        value: str | None
        try:
            value = raw.decode() if raw is not None else None
        except UnicodeDecodeError:
            value = None
        return {"position": self.position, **self.envelope, "value": value}


def _consumer(conn: KafkaConnection) -> Any:
    from confluent_kafka import Consumer

    return Consumer(kafka.client_config(conn, **{"group.id": "headwater-dlq", "enable.auto.commit": False}))


def read_envelopes(conn: KafkaConnection, topic: str, timeout: float = 60.0) -> list[DeadLetter]:
    """Every envelope of the dead-letter ``topic``, one per key (the latest), in topic order.

    A missing topic holds no dead letters (the process stage creates it on its first start).
    """
    from confluent_kafka import OFFSET_BEGINNING, TopicPartition

    try:
        ends = kafka.end_offsets(conn, topic)
    except NotFoundError:
        return []
    consumer = _consumer(conn)
    by_key: dict[str, DeadLetter] = {}
    try:
        remaining = {p for p, end in ends.items() if end > 0}
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in remaining])
        deadline = time.monotonic() + timeout
        while remaining:
            if time.monotonic() > deadline:
                raise TransientError(f"reading dead-letter topic '{topic}' timed out")
            msg = consumer.poll(1.0)
            if msg is None or msg.error():
                continue
            if msg.offset() >= ends[msg.partition()] - 1:
                remaining.discard(msg.partition())
            try:
                envelope = json.loads(msg.value())
            except (TypeError, ValueError):
                envelope = {"reason": "unreadable_envelope", "message": "dead letter is not JSON"}
            key = msg.key().decode(errors="replace") if msg.key() else f"{topic}:{msg.partition()}:{msg.offset()}"
            by_key.pop(key, None)  # the latest envelope of a position wins, in its place
            by_key[key] = DeadLetter(key, envelope, msg.partition(), msg.offset())
    finally:
        consumer.close()
    return list(by_key.values())


def reason_counts(letters: Iterable[DeadLetter]) -> dict[str, int]:
    """Envelopes per reason, most frequent first."""
    return dict(Counter(letter.reason for letter in letters).most_common())


# --- replayed positions, stored as offset ranges per topic:partition ---------------------------------
def state_key(spec: PipelineSpec) -> str:
    """Key of the replayed-positions record in the state topic."""
    return f"{spec.name}/dlq-replayed"


def _split(position: str) -> tuple[str, int] | None:
    head, _, offset = position.rpartition(":")
    try:
        return head, int(offset)
    except ValueError:
        return None


def to_ranges(positions: Iterable[str]) -> dict[str, list[list[int]]]:
    """``["t:0:5", "t:0:6", "t:0:9"]`` -> ``{"t:0": [[5, 6], [9, 9]]}`` (inclusive offset ranges)."""
    offsets: dict[str, set[int]] = {}
    for position in positions:
        split = _split(position)
        if split is not None:
            offsets.setdefault(split[0], set()).add(split[1])
    out: dict[str, list[list[int]]] = {}
    for head, values in sorted(offsets.items()):
        ranges: list[list[int]] = []
        for offset in sorted(values):
            if ranges and offset == ranges[-1][1] + 1:
                ranges[-1][1] = offset
            else:
                ranges.append([offset, offset])
        out[head] = ranges
    return out


def from_ranges(ranges: dict[str, list[list[int]]]) -> set[str]:
    """The inverse of :func:`to_ranges`."""
    return {f"{head}:{o}" for head, spans in ranges.items() for lo, hi in spans for o in range(lo, hi + 1)}


def load_replayed(spec: PipelineSpec) -> set[str]:
    """Positions already replayed for this pipeline."""
    store = kafka.PositionStore(spec.connections.kafka, spec.state_topic)
    value = store.load(state_key(spec)) or {}
    return from_ranges(value.get("replayed") or {})


def _commit_replayed(spec: PipelineSpec, replayed: set[str]) -> None:
    store = kafka.PositionStore(spec.connections.kafka, spec.state_topic)
    store.commit(state_key(spec), {"replayed": to_ranges(replayed), "updated_at": time.time()})


# --- replay --------------------------------------------------------------------------------------
@dataclass
class ReplaySummary:
    """What one ``dlq replay`` found and did."""

    found: int = 0
    replayed: int = 0
    skipped: int = 0
    unavailable: list[str] = field(default_factory=list)
    reasons: dict[str, int] = field(default_factory=dict)
    dry_run: bool = False

    def render(self) -> str:
        verb = "would replay" if self.dry_run else "replayed"
        line = f"found {self.found} dead letter(s), {verb} {self.replayed}, skipped {self.skipped} (already replayed)"
        if self.unavailable:
            line += f", {len(self.unavailable)} without their original record: {', '.join(self.unavailable[:10])}"
        return line


def _fetch_original(conn: KafkaConnection, source: tuple[str, int, int]) -> tuple[bytes | None, bytes] | None:
    """(key, value) of the record at ``source`` in the pipeline's topic, or None if it is gone."""
    from confluent_kafka import TopicPartition

    topic, partition, offset = source
    consumer = _consumer(conn)
    try:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10, cached=False)
        if not low <= offset < high:
            return None
        consumer.assign([TopicPartition(topic, partition, offset)])
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            msg = consumer.poll(1.0)
            if msg is None or msg.error():
                continue
            return (msg.key(), msg.value()) if msg.offset() == offset else None
        return None
    finally:
        consumer.close()


def _record_of(spec: PipelineSpec, letter: DeadLetter) -> tuple[bytes | None, bytes] | None:
    """The original (key, value) to re-produce for ``letter``."""
    if letter.stage == "sink" or letter.envelope.get("truncated"):  # the envelope lacks the whole record
        source = letter.source
        return _fetch_original(spec.connections.kafka, source) if source is not None else None
    value = letter.original()
    if value is None:
        return None
    key = letter.envelope.get("key")
    return (key.encode() if isinstance(key, str) else None), value


def replay(
    spec: PipelineSpec,
    reason: str | None = None,
    dry_run: bool = False,
    echo: Callable[[str], None] | None = None,
) -> ReplaySummary:
    """Re-produce the dead letters of ``spec`` (optionally only one ``reason``) to its topic, once each.

    Returns:
        Counts of envelopes found (after the reason filter), replayed and skipped as already replayed.

    Raises:
        TransientError: Kafka did not acknowledge a record or the state commit (what was
            acknowledged and committed before stays replayed).
    """
    from confluent_kafka import Producer

    conn = spec.connections.kafka
    letters = read_envelopes(conn, spec.dead_letter.topic)
    if reason is not None:
        letters = [letter for letter in letters if letter.reason == reason]
    summary = ReplaySummary(found=len(letters), reasons=reason_counts(letters), dry_run=dry_run)
    done = load_replayed(spec)
    todo = [letter for letter in letters if letter.position not in done]
    summary.skipped = len(letters) - len(todo)
    if dry_run:
        summary.replayed = len(todo)
        return summary
    producer = Producer(
        kafka.client_config(
            conn, **{"enable.idempotence": True, "acks": "all", "partitioner": "murmur2_random", "linger.ms": 20}
        )
    )
    errors: list[str] = []
    for start in range(0, len(todo), _COMMIT_EVERY):
        chunk = todo[start : start + _COMMIT_EVERY]
        sent: list[str] = []
        for letter in chunk:
            record = _record_of(spec, letter)
            if record is None:
                summary.unavailable.append(letter.position)
                continue
            key, value = record
            producer.produce(
                spec.topic.name, key=key, value=value, headers=[(REPLAY_HEADER, letter.position.encode())],
                on_delivery=lambda err, _msg: errors.append(str(err)) if err else None,
            )  # fmt: skip
            sent.append(letter.position)
            producer.poll(0)
        if producer.flush(60) != 0 or errors:
            raise TransientError(
                f"replaying to Kafka topic '{spec.topic.name}' failed ({errors[:3]}); "
                f"{summary.replayed} replayed and recorded before; run replay again"
            )
        fault_point("dlq.replay.after_produce")
        done |= set(sent)
        _commit_replayed(spec, done)  # only now are these positions replayed
        summary.replayed += len(sent)
        if echo is not None:
            echo(f"replayed {summary.replayed}/{len(todo)}")
    return summary
