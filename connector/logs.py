"""Process-wide logging: plain text or one JSON object a line (`log_format: json`), each line naming
the process it comes from (web, worker, cli).

Callers add structured fields with `extra={"fields": {...}}`: JSON lines carry them as keys, text
lines append them as key=value. Never pass a secret or a payload body as a field.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

from connector.errors import first_line

_process = "cli"
_json = False


def process_name() -> str:
    return _process


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "at": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "process": _process,
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if fields:
            entry.update({k: v for k, v in fields.items() if k not in entry})
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s [%(process_name)s] %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        record.process_name = _process
        text = super().format(record)
        fields = getattr(record, "fields", None)
        if fields:
            text += " " + " ".join(f"{k}={_plain(v)}" for k, v in fields.items())
        return text

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 (logging's name)
        """One event, one line: a line break in a message (a platform's error text, a ticket's key, a
        multi-line policy error) is written as \\n, so no value can start a line that reads as another
        event. A traceback, added after, keeps its lines."""
        record.message = _one_line(record.message)
        return super().formatMessage(record)


def _one_line(text: str) -> str:
    return text.replace("\r", "\\r").replace("\n", "\\n") if "\n" in text or "\r" in text else text


def _plain(value: Any) -> str:
    if isinstance(value, list | tuple):
        return _one_line(",".join(map(str, value))) or "-"
    return "-" if value is None else _one_line(str(value))


class LostConnectionReset(logging.Filter):
    """SQLAlchemy's pool logs an ERROR with a traceback when a connection it is given back fails its
    rollback: after a database restart or a proxy's cut, every pooled connection does, once. The
    pool then drops it and makes a new one, so it is one warning line here; a reset that failed for
    another reason keeps its traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.startswith("sqlalchemy.pool") and record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            if any(kind.__name__ == "OperationalError" for kind in type(exc).__mro__):
                record.levelno, record.levelname = logging.WARNING, "WARNING"
                record.msg = "a pooled database connection was lost (%s); it is dropped and a new one made"
                record.args = (first_line(exc),)
                record.exc_info = record.exc_text = None
        return True


def setup_logging(fmt: str, process: str) -> None:
    """Log at INFO to stderr in `fmt` ("text" or "json"), naming `process` in every line."""
    global _process, _json
    _process, _json = process, fmt == "json"
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(LostConnectionReset())
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)
    # APScheduler logs two INFO lines per tick (~170,000 a day); our own tick logs what it fired.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    # Alembic (1.20 here) announces each of its seven autogenerate plugins at INFO on every start.
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)


def fatal(message: str) -> None:
    """Why the command stops: `escalator: …` on stderr, or one JSON line when the logs are JSON."""
    if _json:
        logging.getLogger("escalator").error(message.replace("\n", " "))
    else:
        print(f"escalator: {message}", file=sys.stderr)
