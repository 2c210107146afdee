"""Keep secrets out of log lines: the bot token sits in every Bot API URL that httpx and
python-telegram-bot log (at INFO and DEBUG), and in the messages of some network errors."""

from __future__ import annotations

import logging
from typing import Any

MASK = "<redacted>"


class _RedactingFactory:
    """A log record factory that replaces every registered secret in the finished message."""

    def __init__(self, previous: Any) -> None:
        self.previous = previous
        self.secrets: set[str] = set()

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, MASK)
        return text

    def __call__(self, *args: Any, **kwargs: Any) -> logging.LogRecord:
        record: logging.LogRecord = self.previous(*args, **kwargs)
        if not self.secrets:
            return record
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string is the logging module's to report
            return record
        if any(secret in message for secret in self.secrets):
            record.msg, record.args = self.redact(message), None
        if record.exc_info and record.exc_info[1] is not None:
            text = logging.Formatter().formatException(record.exc_info)
            if any(secret in text for secret in self.secrets):
                record.exc_text = self.redact(text)  # formatters print exc_text as it is
        return record


def redact_in_logs(*secrets: str | None) -> None:
    """Mask ``secrets`` in every log record this process makes from now on (idempotent)."""
    factory = logging.getLogRecordFactory()
    if not isinstance(factory, _RedactingFactory):
        factory = _RedactingFactory(factory)
        logging.setLogRecordFactory(factory)
    factory.secrets.update(s for s in secrets if s and len(s) >= 8)
