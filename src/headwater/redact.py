"""Secrets in configuration: which option names hold one, and keeping their values out of all output.

**The rule.** An option name is split into lowercase words at ``.``, ``_``, ``-`` and camelCase
boundaries (``ssl.keyStorePassword`` -> ``ssl key store password``). It names a secret when

1. one of its words is ``password``, ``passwd``, ``passphrase``, ``secret`` or ``token``
   (``sasl.password``, ``ssl.key.password``, ``sasl.oauthbearer.client.secret``,
   ``spark.hadoop.fs.s3a.session.token``) -- unless its last word says it names *where* a secret
   is: ``location``, ``file``, ``path``, ``url``, ``class`` or ``cmd``
   (``sasl.oauthbearer.token.endpoint.url`` is not a secret);
2. or it ends in ``<q>.key`` or ``<q>.key.pem`` with ``<q>`` one of ``api``, ``access``, ``private``,
   ``keystore``, ``ssl`` (``api.key``, ``api_key``, ``ssl.keystore.key``, ``ssl.key.pem``,
   ``fs.s3a.access.key``), or a word is ``apikey``, ``accesskey`` or ``privatekey``;
3. or it ends in ``sasl.jaas.config`` or ``sasl.oauthbearer.config`` (they embed credentials).

So ``key.serializer``, ``ssl.key.location``, ``row_key`` and a topic's ``key`` are not secrets.

**Keeping values out of output.** The spec models hold such values as :class:`Secret` (shown as
``***``) and register them here; :func:`redact` replaces every registered value (of at least
:data:`MIN_LENGTH` characters) in a text by ``***``. Registering the first value also makes every
log record of this process pass through :func:`redact`. Progress files, the run summary and the
CLI's error line are redacted the same way.

Example:
    >>> is_secret_name("sasl.password"), is_secret_name("key.serializer"), is_secret_name("api_key")
    (True, False, True)
    >>> mask_secrets({"sasl.username": "app", "sasl.password": "hunter22"})
    {'sasl.username': 'app', 'sasl.password': '***'}
"""

from __future__ import annotations

import copy
import logging
import re
import threading
from collections.abc import Iterable
from typing import Any

from pydantic import SecretStr

__all__ = [
    "MASK", "MIN_LENGTH", "Secret", "is_secret_name", "known_secrets", "mask_secrets", "redact",
    "redact_data", "register", "reveal",
]  # fmt: skip

MASK = "***"
MIN_LENGTH = 4  # shorter values are masked where they are held, but not searched for in free text
_WORDS = frozenset({"password", "passwd", "passphrase", "secret", "token"})
_REFERENCES = frozenset({"location", "file", "path", "url", "class", "cmd"})
_KEY_QUALIFIERS = frozenset({"api", "access", "private", "keystore", "ssl"})
_JOINED_KEYS = frozenset({"apikey", "accesskey", "privatekey"})
_CREDENTIAL_CONFIGS = (("sasl", "jaas", "config"), ("sasl", "oauthbearer", "config"))
_CAMEL_RE = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_SPLIT_RE = re.compile(r"[._\-\s]+")

_lock = threading.Lock()
_values: frozenset[str] = frozenset()
_ordered: tuple[str, ...] = ()  # longest first, so a value containing another is replaced whole


class Secret(SecretStr):
    """A secret string: ``***`` in ``str``, ``repr`` and JSON; :meth:`get_secret_value` gives the value."""

    def _display(self) -> str:
        return MASK


def _words(name: str) -> list[str]:
    return [w for w in _SPLIT_RE.split(_CAMEL_RE.sub(".", name).lower()) if w]


def is_secret_name(name: str) -> bool:
    """Whether an option named ``name`` holds a secret (the rule in this module's docstring)."""
    words = _words(name)
    if not words:
        return False
    if any(w in _WORDS for w in words) and words[-1] not in _REFERENCES:
        return True
    if any(w in _JOINED_KEYS for w in words):
        return True
    tail = words[:-1] if words[-1] == "pem" else words
    if len(tail) >= 2 and tail[-1] == "key" and tail[-2] in _KEY_QUALIFIERS:
        return True
    return any(tuple(words[-len(c) :]) == c for c in _CREDENTIAL_CONFIGS)


def register(values: Iterable[str]) -> None:
    """Remember secret values so that :func:`redact` masks them; turns log redaction on."""
    global _values, _ordered
    new = {v for v in values if isinstance(v, str) and len(v) >= MIN_LENGTH}
    with _lock:
        if new <= _values:
            return
        _values = _values | new
        _ordered = tuple(sorted(_values, key=len, reverse=True))
    _install_log_redaction()


def known_secrets() -> frozenset[str]:
    """The values registered so far."""
    return _values


def redact(text: str, values: Iterable[str] | None = None) -> str:
    """``text`` with every registered secret value (and every one of ``values``) replaced by ``***``."""
    ordered = _ordered
    if values is not None:
        extra = [v for v in values if len(v) >= MIN_LENGTH]
        if extra:
            ordered = tuple(sorted({*ordered, *extra}, key=len, reverse=True))
    for value in ordered:
        if value in text:
            text = text.replace(value, MASK)
    return text


def mask_secrets(value: Any) -> Any:
    """``value`` with the value of every mapping entry whose key :func:`is_secret_name` replaced by ``***``
    (at any depth; :class:`~pydantic.SecretStr` values too)."""
    if isinstance(value, SecretStr):
        return MASK
    if isinstance(value, dict):
        return {k: MASK if isinstance(k, str) and is_secret_name(k) else mask_secrets(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(mask_secrets(v) for v in value)
    return value


def redact_data(value: Any) -> Any:
    """:func:`mask_secrets`, then :func:`redact` on every string inside (before it is serialized)."""
    value = mask_secrets(value)
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: redact_data(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_data(v) for v in value]
    return value


def reveal(options: dict[str, Any]) -> dict[str, Any]:
    """``options`` with :class:`~pydantic.SecretStr` values replaced by their real value: only for
    configuring a client (confluent-kafka, Spark)."""
    return {k: v.get_secret_value() if isinstance(v, SecretStr) else v for k, v in options.items()}


# --- logging ---------------------------------------------------------------------------------------
_installed = False


def _install_log_redaction() -> None:
    """Make every log record created from now on carry its message (and traceback) redacted."""
    global _installed
    with _lock:
        if _installed:
            return
        _installed = True
    previous = logging.getLogRecordFactory()
    formatter = logging.Formatter()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        if not _ordered:
            return record
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: leave it to the handler to report
            return record
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(formatter.formatException(record.exc_info))
        if record.exc_info and record.exc_info[1] is not None:
            # A formatter that reads the exception itself (e.g. PySpark's JSON formatter) must see it redacted too.
            exc = record.exc_info[1]
            text = str(exc)
            if redact(text) != text:
                try:
                    clone = copy.copy(exc)
                    clone.args = (redact(text),)
                except Exception:
                    clone = RuntimeError(redact(text))
                record.exc_info = (type(clone), clone, record.exc_info[2])
        return record

    logging.setLogRecordFactory(factory)
