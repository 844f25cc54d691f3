"""Keeps secret values out of botocore's DEBUG logs.

botocore logs every request's parameters and every response's body at DEBUG,
so a service that turns DEBUG on would log each password it reads. rotsafe
filters those two log lines when they carry a Secrets Manager value; every
other record passes untouched, and with DEBUG off the filter never runs.
"""

from __future__ import annotations

import logging
import threading

_LOGGERS = ("botocore.endpoint", "botocore.parsers")
_MARKERS = ("SecretString", "SecretBinary")
_REDACTED = "%s [a Secrets Manager value, redacted by rotsafe]"

_installed = False
_lock = threading.Lock()


class SecretValueFilter(logging.Filter):
    """Replaces a log record that holds a secret value with a notice."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:
            return True
        if any(marker in message for marker in _MARKERS):
            record.msg = _REDACTED
            record.args = (message.split(":", 1)[0],)
        return True


def redact_botocore_logs() -> None:
    """Install the filter on botocore's request and response loggers, once."""
    global _installed  # noqa: PLW0603 - installed once per process
    with _lock:
        if _installed:
            return
        for name in _LOGGERS:
            logging.getLogger(name).addFilter(SecretValueFilter())
        _installed = True
