"""Logging of headwater's processes: plain lines or one JSON object per line (``--log-format json``)."""

from __future__ import annotations

import json
import logging
import sys
import time

from headwater import redact


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ts, level, logger, message (secrets masked), and the exception if any."""

    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": redact.redact(record.getMessage()),
        }
        if record.exc_info:
            out["exception"] = redact.redact(self.formatException(record.exc_info))
        return json.dumps(out)


def setup_logging(verbose: bool = False, log_format: str = "text") -> None:
    """headwater's loggers at INFO, others at WARNING (INFO with ``verbose``), on stderr."""
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    root.addHandler(handler)
    root.setLevel(logging.INFO if verbose else logging.WARNING)
    logging.getLogger("headwater").setLevel(logging.INFO)
    logging.getLogger("py4j").setLevel(logging.WARNING)
