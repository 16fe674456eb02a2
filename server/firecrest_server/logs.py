"""JSON logs: one object per line, carrying the request and the user it was written for.

The middleware opens a ``RequestContext`` per request and dependencies fill in the user and the
system as they learn them; the formatter reads it, so a log line written anywhere during a
request (SSH pool, credentials, an operation) names its request without passing ids around.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from .redaction import redact


@dataclass(slots=True)
class RequestContext:
    request_id: str
    correlation_id: str | None = None
    user: str | None = None
    system: str | None = None
    # Seconds per phase of the request (server_timing.py); None unless server.timing_header.
    timings: dict[str, float] | None = None


# A ContextVar is process-wide by nature: each request's task sees its own value. The value is a
# mutable object so that what a dependency learns (in the request task, or a worker thread with a
# copied context) is visible to the middleware's access log afterwards.
current_request: ContextVar[RequestContext | None] = ContextVar("current_request", default=None)

# Attributes every LogRecord has; anything else on a record came from `extra=`. uvicorn adds
# `color_message`, the message again with terminal colour codes.
_STANDARD = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys()
    | {"message", "asctime", "color_message"}
)
_CONTEXT_FIELDS = ("request_id", "correlation_id", "user", "system")
# Defence in depth: a credential must never reach a log line, even if a caller passes one in
# `extra` by mistake.
_SECRET_WORDS = ("token", "authorization", "secret", "password", "passphrase", "private_key")


# json.dumps escapes C0 controls but, with ensure_ascii=False, writes every other character as
# is. Readers that split lines on more than \n (Python's splitlines, many log viewers, JSON
# parsers in JavaScript) would then see a new line at DEL, C1 controls (U+0085 NEXT LINE) and
# U+2028/U+2029, so a path or message could forge log lines; bidirectional overrides could make
# a line read differently on screen. They are written as \uXXXX escapes: still the same JSON.
_UNSAFE = {
    code: f"\\u{code:04x}"
    for code in (
        0x7F,
        *range(0x80, 0xA0),
        0x2028,
        0x2029,
        *range(0x202A, 0x202F),
        *range(0x2066, 0x206A),
        0xFEFF,
    )
}
_UNSAFE_CHARS = re.compile("[" + "".join(re.escape(chr(c)) for c in _UNSAFE) + "]")


def escape_separators(line: str) -> str:
    """``line`` (JSON text) with line separators and other invisible controls escaped."""
    if line.isascii():
        return line
    return _UNSAFE_CHARS.sub(lambda m: _UNSAFE[ord(m.group())], line)


def _is_secret(key: str) -> bool:
    lowered = key.lower()
    return any(word in lowered for word in _SECRET_WORDS)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        context = current_request.get()
        for name in _CONTEXT_FIELDS:
            # An explicit extra (the audit log passes its own request id) wins over the context.
            value = record.__dict__.get(name)
            if value is None and context is not None:
                value = getattr(context, name)
            entry[name] = value
        for key, value in record.__dict__.items():
            if key in _STANDARD or key in entry or key.startswith("_"):
                continue
            if _is_secret(key):
                value = "[redacted]"
            elif isinstance(value, str):
                value = redact(value)
            entry[key] = value
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info))
        return escape_separators(json.dumps(entry, default=str, ensure_ascii=False))


def configure_logging(level: str) -> None:
    """Send every log record, ours and uvicorn's, to stderr as JSON at ``level``."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    # The level is enforced by the handler, not by loggers, so that records below it still
    # reach handlers attached to specific loggers (metrics count the audit log's info records).
    handler.setLevel(level.upper())
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # asyncssh reports every channel's opening, exit status and closing at info: five records
    # per remote command, which the audit log already covers with one (formatting them cost ~5 %
    # of the server's CPU under load). Its warnings and errors still come through; the pool logs
    # connections opened, closed and lost; log_level debug shows everything.
    logging.getLogger("asyncssh").setLevel(
        logging.DEBUG if level.lower() == "debug" else max(logging.WARNING, root.level)
    )
    for name in ("uvicorn", "uvicorn.error"):
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers.clear()
        uvicorn_logger.propagate = True
    # Our middleware writes the access log (without query strings, with the user); uvicorn's
    # would duplicate it and include query strings.
    access = logging.getLogger("uvicorn.access")
    access.handlers.clear()
    access.propagate = False
    access.disabled = True
