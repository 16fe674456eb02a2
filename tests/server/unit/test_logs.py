from __future__ import annotations

import json
import logging
import sys

from firecrest_server.logs import JsonFormatter, RequestContext, configure_logging, current_request


def record(message: str = "hello %s", *args: object, **extra: object) -> logging.LogRecord:
    rec = logging.LogRecord("firecrest_server.x", logging.INFO, "f.py", 1, message, args, None)
    rec.__dict__.update(extra)
    return rec


def test_one_json_object_with_the_standard_fields() -> None:
    line = JsonFormatter().format(record("hello %s", "world"))
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["message"] == "hello world"
    assert entry["level"] == "info"
    assert entry["logger"] == "firecrest_server.x"
    assert entry["time"].endswith("Z")
    for name in ("request_id", "correlation_id", "user", "system"):
        assert entry[name] is None


def test_request_context_fills_in_and_extras_win() -> None:
    token = current_request.set(RequestContext("r1", "c1", user="alice", system="cluster"))
    try:
        entry = json.loads(JsonFormatter().format(record()))
        assert (entry["request_id"], entry["correlation_id"]) == ("r1", "c1")
        assert (entry["user"], entry["system"]) == ("alice", "cluster")
        explicit = json.loads(JsonFormatter().format(record(request_id="r2", user="bob")))
        assert (explicit["request_id"], explicit["user"]) == ("r2", "bob")
    finally:
        current_request.reset(token)


def test_extra_fields_are_kept_and_credentials_redacted() -> None:
    rec = record(argv=["ls", "-l"], exit_status=0, seconds=0.01, bearer_token="eyJ.secret")
    rec.__dict__["Authorization"] = "Bearer eyJ.secret"
    line = JsonFormatter().format(rec)
    entry = json.loads(line)
    assert entry["argv"] == ["ls", "-l"]
    assert entry["exit_status"] == 0
    assert "eyJ.secret" not in line
    assert entry["bearer_token"] == "[redacted]"


def test_exceptions_are_included() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        rec = logging.LogRecord("x", logging.ERROR, "f.py", 1, "failed", None, sys.exc_info())
    entry = json.loads(JsonFormatter().format(rec))
    assert "ValueError: boom" in entry["exception"]


def test_asyncssh_channel_chatter_is_left_out_unless_debugging() -> None:
    root, asyncssh_logger = logging.getLogger(), logging.getLogger("asyncssh")
    saved = root.handlers[:], root.level, asyncssh_logger.level
    try:
        configure_logging("info")
        assert not asyncssh_logger.isEnabledFor(logging.INFO)  # "[conn=0, chan=3] Channel closed"
        assert asyncssh_logger.isEnabledFor(logging.WARNING)
        assert logging.getLogger("firecrest_server.ssh").isEnabledFor(logging.INFO)
        configure_logging("error")
        assert not asyncssh_logger.isEnabledFor(logging.WARNING)
        configure_logging("debug")
        assert asyncssh_logger.isEnabledFor(logging.DEBUG)
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        asyncssh_logger.setLevel(saved[2])


# Every character a reader might take for the end of a line, or that hides text on screen:
# C0 (json.dumps escapes those itself), DEL, C1 including U+0085 NEXT LINE, U+2028, U+2029,
# bidirectional overrides and isolates, and the byte-order mark.
SEPARATORS = (
    [chr(c) for c in range(0x20)]
    + [chr(c) for c in range(0x7F, 0xA0)]
    + ["\u2028", "\u2029", "\u202e", "\u2066", "\ufeff"]
)


def test_control_and_separator_characters_cannot_forge_lines() -> None:
    formatter = JsonFormatter()
    for char in SEPARATORS:
        forged = f'GET /x{char}{{"level": "info", "message": "forged"}} 200'
        line = formatter.format(record("%s", forged, path=f"/home/a{char}b"))
        assert line.isascii() or all(c not in line for c in SEPARATORS), repr(char)
        assert len(line.splitlines()) == 1, repr(char)
        entry = json.loads(line)
        assert entry["message"] == forged  # escaped, not lost: the JSON still says what happened
        assert entry["path"] == f"/home/a{char}b"


def test_other_non_ascii_text_stays_readable() -> None:
    line = JsonFormatter().format(record("%s", "Grüße/データ"))
    assert "Grüße/データ" in line


def test_tokens_in_messages_extras_and_exceptions_are_redacted() -> None:
    jwt_like = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLXBhcnQ"
    try:
        raise ValueError(f"bad token {jwt_like}")
    except ValueError:
        exc_info = sys.exc_info()
    rec = record("PUT /staging/%s/parts/1 with %s", "opaque-capability", jwt_like, url=jwt_like)
    rec.exc_info = exc_info
    line = JsonFormatter().format(rec)
    for secret in (jwt_like, "opaque-capability", "c2lnbmF0dXJlLXBhcnQ"):
        assert secret not in line
    entry = json.loads(line)
    assert entry["message"] == "PUT /staging/[redacted]/parts/1 with [redacted]"
    assert entry["url"] == "[redacted]"
    assert "bad token [redacted]" in entry["exception"]
