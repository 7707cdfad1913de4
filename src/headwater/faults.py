"""The one place that decides whether an error is transient (retry it) or permanent (stop and say why).

:func:`classify` takes an exception or the text of one (a Spark query's failure carries the executor's
Python traceback and the JVM's causes as text) and returns a :class:`Fault`: its kind, a short reason
code, and one line naming the object (HBase table and family, Kafka topic) where the text names it.

- **Transient**: the service is away or busy and will come back: a broker, Thrift server or metastore
  that does not answer (refused, reset, timed out), a region moving or opening, a server busy, a
  partition without a leader.
- **Permanent**: retrying cannot help: a missing table, column family or topic, a disabled table, a cell,
  row or record over HBase's or Kafka's size limit, a denied authorization, a server-side error that is
  not an I/O error (Thrift ``TApplicationException``), records gone from Kafka.
- **Unknown** errors (none of the above) are **permanent**: not retried. An unrecognised error is more
  often a bug or a data problem than an outage, and retrying it only repeats its side effects and hides
  it; the stage stops with the error's own first line, which is what is needed to add it here. One
  exception: an HBase ``TIOError`` the rules do not recognise is transient, as HBase's I/O errors are
  mostly about regions and servers (the listed permanent ones are checked first). Every retry is bounded
  (:class:`RetryBudget`), so a transient call that is wrong still ends.

:class:`RetryBudget` is the bound every retry loop keeps: at most ``max`` retries within a sliding
window of ``within`` seconds, with an injectable clock.
"""

from __future__ import annotations

import re
import socket
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from headwater.errors import HeadwaterError, TransientError

__all__ = ["Fault", "RetryBudget", "classify"]

Kind = Literal["transient", "permanent"]


@dataclass(frozen=True)
class Fault:
    """What :func:`classify` decided about one error."""

    kind: Kind
    reason: str  # a short code: table_not_found, family_not_found, table_disabled, too_large, unauthorized, ...
    message: str  # one line for people: the object named where the error names it
    subject: str | None = None  # the object named: "table ns:t family f", "topic t", when known

    @property
    def transient(self) -> bool:
        """Whether retrying may succeed."""
        return self.kind == "transient"


# (pattern, kind, reason, message template): the first match wins, permanent rules first, so a
# permanent cause inside a retry wrapper (RetriesExhausted..., TIOError) is not mistaken for an outage.
# A template may use the pattern's named groups.
_Rule = tuple[re.Pattern[str], Kind, str, str]


def _rule(pattern: str, kind: Kind, reason: str, template: str) -> _Rule:
    return re.compile(pattern, re.IGNORECASE if kind == "transient" else 0), kind, reason, template


# fmt: off
_RULES: list[_Rule] = [
    # --- HBase (as the Thrift2 server reports them in TIOError messages) ---------------------------
    _rule(r"NoSuchColumnFamilyException: Column family (?P<family>\S+) does not exist in region \S+ "
          r"in table '(?P<table>[^']+)'", "permanent", "family_not_found",
          "HBase table '{table}': column family '{family}' does not exist"),
    _rule(r"NoSuchColumnFamilyException", "permanent", "family_not_found", "HBase: a column family does not exist"),
    _rule(r"TableNotFoundException(?::\s*(?P<table>[\w:.-]+))?", "permanent", "table_not_found",
          "HBase table '{table}' does not exist"),
    # RetriesExhaustedWithDetailsException of a TableNotFoundException: its message is only the table name,
    # and no server could be asked ("null").
    _rule(r"Failed \d+ actions?: (?P<table>[\w:.-]+): \d+ times?, servers with issues: null", "permanent",
          "table_not_found", "HBase table '{table}' does not exist"),
    _rule(r"TableNotEnabledException(?::\s*(?P<table>[\w:.-]+))?", "permanent", "table_disabled",
          "HBase table '{table}' is disabled"),
    _rule(r"DoNotRetryIOException: (?P<table>[\w:.-]+) is disabled", "permanent", "table_disabled",
          "HBase table '{table}' is disabled"),
    _rule(r"KeyValue size too large|Cell with size \d+ exceeds limit|RowTooBigException", "permanent",
          "too_large", "HBase: a cell or row is over the size limit ({match})"),
    _rule(r"AccessDeniedException|Insufficient permissions", "permanent", "unauthorized",
          "HBase: access denied ({match})"),
    # --- Kafka ------------------------------------------------------------------------------------
    _rule(r"RecordTooLargeException|MESSAGE_TOO_LARGE|MSG_SIZE_TOO_LARGE|when serialized which is larger than",
          "permanent", "too_large", "Kafka: a record is over the message size limit ({match})"),
    _rule(r"Not authorized to access topics: \[(?P<topic>[^\]]*)\]", "permanent", "unauthorized",
          "Kafka: not authorized to access topic(s) {topic}"),
    _rule(r"TopicAuthorizationException|TOPIC_AUTHORIZATION_FAILED|GroupAuthorizationException|"
          r"ClusterAuthorizationException|SaslAuthenticationException|_AUTHENTICATION", "permanent",
          "unauthorized", "Kafka: not authorized ({match})"),
    _rule(r"UNKNOWN_TOPIC_OR_PART|UnknownTopicOrPartitionException", "permanent", "topic_not_found",
          "Kafka: topic or partition does not exist ({match})"),
    _rule(r"KAFKA_DATA_LOSS|failOnDataLoss", "permanent", "data_loss", "Kafka: records gone before they were read"),
    # --- Thrift servers: a server-side error that is not an I/O error ("Internal error processing") --
    _rule(r"TApplicationException|Internal error processing \w+", "permanent", "server_error",
          "Thrift server error ({match})"),
    _rule(r"No space left on device|DiskSpaceExceeded|QuotaExceeded", "permanent", "disk_full",
          "no space left for the checkpoint or state ({match})"),
    # --- transient: services away or busy --------------------------------------------------------
    # A Python worker killed (OOM killer, kill -9, segfault) fails its task, and local mode never
    # retries a task: the query restarts from its checkpoint instead; the batch is replayed.
    _rule(r"Python worker exited unexpectedly|Python worker crashed", "transient", "worker_crashed",
          "a Python worker died ({match})"),
    _rule(r"micro-batch stuck", "transient", "stuck", "a micro-batch was stuck and is restarted ({match})"),
    _rule(r"NotServingRegionException|RegionMovedException|RegionOpeningException|RegionTooBusyException|"
          r"ServerNotRunningYetException|PleaseHoldException|CallQueueTooBigException|RegionServerStoppedException",
          "transient", "region_moving", "HBase: region moving or busy ({match})"),
    _rule(r"MetaException\(message:Could not connect", "transient", "unreachable",
          "Hive metastore not reachable ({match})"),
    # The client's metadata does not know the partition yet (a topic just created, its news still on the
    # way to the broker asked); a topic that really is gone says UNKNOWN_TOPIC_OR_PART (permanent, above).
    _rule(r"_UNKNOWN_PARTITION|Local: Unknown partition", "transient", "metadata_lag",
          "Kafka: the partition is not in the client's metadata yet ({match})"),
    _rule(r"NotLeaderOrFollower|NOT_LEADER|LEADER_NOT_AVAILABLE|Failed to update metadata|_ALL_BROKERS_DOWN|"
          r"_TRANSPORT|DisconnectException|NetworkException|Broker transport failure", "transient", "unreachable",
          "Kafka not reachable ({match})"),
    _rule(r"TTransportException|org\.apache\.thrift\.transport|Connection refused|ConnectionRefusedError|"
          r"Connection reset|BrokenPipeError|Broken pipe|ServiceUnavailable|No route to host", "transient",
          "unreachable", "service not reachable ({match})"),
    _rule(r"TimeoutException|_TIMED_OUT|timed out|CallTimeoutException", "transient", "timeout", "timed out ({match})"),
]
# fmt: on

# An error raised by headwater code inside a Spark task reaches the driver as text, as its traceback's last
# line: "headwater.errors.PermanentError: HBase table ...". Its class decides; its message is the line.
_HEADWATER_LINE = re.compile(r"headwater\.errors\.(?P<cls>\w+): (?P<message>[^\n]+)")
_TRANSIENT_CLASSES = {"TransientError", "ServiceUnavailable"}

_NETWORK_ERRORS = (ConnectionError, TimeoutError, socket.timeout, EOFError, socket.gaierror)


def classify(error: BaseException | str) -> Fault:
    """Decide whether ``error`` (an exception, or its text) is transient or permanent.

    Example:
        >>> classify("org.apache.kafka.common.errors.TimeoutException: Expiring 12 record(s)").kind
        'transient'
        >>> classify("TableNotFoundException: demo:orders").message
        "HBase table 'demo:orders' does not exist"
    """
    if isinstance(error, HeadwaterError):
        kind: Kind = "transient" if isinstance(error, TransientError) else "permanent"
        return Fault(kind, type(error).__name__, _first_line(str(error)) or type(error).__name__)
    if isinstance(error, BaseException):
        kafka_fault = _kafka_error(error)
        if kafka_fault is not None:
            return kafka_fault
        text = f"{type(error).__name__}: {_str(error)}"
        by_text = _by_text(text)
        if by_text is not None:
            return by_text
        if isinstance(error, _NETWORK_ERRORS) or type(error).__name__ == "TTransportException":
            return Fault("transient", "unreachable", _first_line(text))
        if type(error).__name__ == "TIOError":
            # The Thrift2 server sets canRetry=False for HBase's DoNotRetryIOExceptions.
            if getattr(error, "canRetry", None) is False:
                return Fault("permanent", "hbase_do_not_retry", f"HBase: {_first_line(text)}")
            return Fault("transient", "hbase_io", _first_line(text))
        return Fault("permanent", "unknown", _first_line(text) or type(error).__name__)
    return _by_text(error) or Fault("permanent", "unknown", _first_line(error) or "(no message)")


def _by_text(text: str) -> Fault | None:
    line = _HEADWATER_LINE.search(text)
    if line is not None:
        kind: Kind = "transient" if line["cls"] in _TRANSIENT_CLASSES else "permanent"
        return Fault(kind, line["cls"], line["message"].strip())
    for pattern, kind, reason, template in _RULES:
        match = pattern.search(text)
        if match is None:
            continue
        groups = {k: v or "?" for k, v in match.groupdict().items()}
        subject = " ".join(f"{k} {v}" for k, v in groups.items() if v != "?") or None
        return Fault(kind, reason, template.format(match=match.group(0), **groups), subject)
    return None


def _kafka_error(error: BaseException) -> Fault | None:
    """A confluent-kafka ``KafkaException`` decided by its error code (None for other exceptions)."""
    if type(error).__name__ != "KafkaException":
        return None
    from confluent_kafka import KafkaError

    err = error.args[0] if error.args else None
    if not isinstance(err, KafkaError):
        return None
    text = f"{err.name()}: {err.str()}"
    permanent = {
        KafkaError.MSG_SIZE_TOO_LARGE: "too_large", KafkaError.TOPIC_AUTHORIZATION_FAILED: "unauthorized",
        KafkaError.GROUP_AUTHORIZATION_FAILED: "unauthorized", KafkaError.CLUSTER_AUTHORIZATION_FAILED: "unauthorized",
        KafkaError._AUTHENTICATION: "unauthorized", KafkaError.UNKNOWN_TOPIC_OR_PART: "topic_not_found",
        KafkaError._UNKNOWN_TOPIC: "topic_not_found", KafkaError.TOPIC_ALREADY_EXISTS: "topic_exists",
    }  # fmt: skip
    if err.code() in permanent:
        return Fault("permanent", permanent[err.code()], f"Kafka: {text}")
    away = {
        KafkaError._TRANSPORT, KafkaError._TIMED_OUT, KafkaError._ALL_BROKERS_DOWN, KafkaError._WAIT_COORD,
        KafkaError.LEADER_NOT_AVAILABLE, KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.REQUEST_TIMED_OUT,
        KafkaError.NETWORK_EXCEPTION,
        # A request in flight to a broker that left the cluster's metadata (kill -9 of one broker of several:
        # the client drops its handle); the next request goes to the new leader.
        KafkaError._DESTROY_BROKER,
    }  # fmt: skip
    if err.retriable() or err.code() in away:
        return Fault("transient", "unreachable", f"Kafka: {text}")
    if err.code() == KafkaError._UNKNOWN_PARTITION:  # see the metadata_lag rule
        return Fault("transient", "metadata_lag", f"Kafka: the partition is not in the client's metadata yet: {text}")
    return Fault("permanent", "unknown", f"Kafka: {text}")


def _str(error: BaseException) -> str:
    """``str(error)``; a py4j error whose JVM is gone cannot render its Java side, then its Python args."""
    try:
        return str(error)
    except Exception:
        return " ".join(str(a) for a in error.args)


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0][:500] if text.strip() else ""


class RetryBudget:
    """At most ``max`` retries within any ``within`` seconds; the next one exhausts the budget.

    Example:
        >>> now = [0.0]
        >>> budget = RetryBudget(2, 60.0, clock=lambda: now[0])
        >>> budget.take(), budget.take(), budget.take()
        (True, True, False)
        >>> now[0] = 61.0
        >>> budget.take()
        True
    """

    def __init__(self, max: int, within: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.max = max
        self.within = within
        self.clock = clock
        self._taken: deque[float] = deque()

    def take(self) -> bool:
        """Record a retry now; False (nothing recorded) if ``max`` retries were already taken in the window."""
        now = self.clock()
        while self._taken and self._taken[0] <= now - self.within:
            self._taken.popleft()
        if len(self._taken) >= self.max:
            return False
        self._taken.append(now)
        return True

    @property
    def recent(self) -> int:
        """Retries taken within the window (as of the last :meth:`take`)."""
        return len(self._taken)

    def describe(self) -> str:
        """``5 retries within 600s``."""
        return f"{self.max} retries within {self.within:g}s"
