"""One exception hierarchy for headwater.

Every error a user can cause or meet derives from :class:`HeadwaterError`, so the CLI can print it
as one clear message (no traceback) and exit with a meaningful code.
"""

from __future__ import annotations

import contextlib


class HeadwaterError(Exception):
    """Root of every headwater error. ``exit_code`` is what the CLI exits with."""

    exit_code = 1


class ConfigError(HeadwaterError):
    """A spec or setting is invalid. The message names the file, the path inside it and the value."""

    exit_code = 2


class PluginError(ConfigError):
    """An unknown plugin name, or a plugin whose optional dependency is missing."""


class StackError(HeadwaterError):
    """A local-stack service failed to start, stop or answer. The message names service, port and log."""

    exit_code = 3


class TransientError(HeadwaterError):
    """An infrastructure error worth retrying (timeout, server restarting, region moving)."""


class ServiceUnavailable(TransientError):
    """A service could not be reached at the address tried."""

    exit_code = 4


class NotFoundError(HeadwaterError):
    """A named object (Hive table, topic, HBase namespace or table) does not exist."""

    exit_code = 5


class DataLossError(HeadwaterError):
    """Records the process stage had yet to read are gone from Kafka (retention, deletion). Never retried.

    The message names the topic, the partitions and the offset ranges lost.
    """

    exit_code = 6


class DataError(HeadwaterError):
    """A record cannot be processed because of its content. Goes to the dead-letter topic, never retried."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


class PermanentError(HeadwaterError):
    """An infrastructure or setup error that retrying cannot fix: a missing table, column family or topic,
    a disabled table, a record over a size limit, a denied authorization. Stops the stage at once.

    The message is one line naming the object (table, family, topic) and, for a write, the position of
    the first record of the failing call.
    """

    exit_code = 7


class RetriesExhausted(HeadwaterError):
    """Transient errors went on longer than the stage's retry bound; the message ends with the last cause."""

    exit_code = 8


def first_line(exc: BaseException, limit: int = 300) -> str:
    """One line for a log or the progress file: the message's first line (at most ``limit`` characters),
    or the exception's type name when it has no message. For a JVM error raised through py4j, its root
    cause's line, as ``An error occurred while calling o127.save`` says nothing.

    Example:
        >>> first_line(ValueError("bad value\\n  at line 3"))
        'bad value'
    """
    cause = getattr(exc, "java_exception", None)
    if cause is not None:
        with contextlib.suppress(Exception):  # py4j gone with the JVM: fall back to the Python text
            while cause.getCause() is not None:
                cause = cause.getCause()
            text = str(cause.toString()).strip()
            if text:
                return text.splitlines()[0][:limit]
    text = str(exc).strip()
    return text.splitlines()[0][:limit] if text else type(exc).__name__
