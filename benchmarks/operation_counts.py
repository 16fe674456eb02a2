"""What one configuration asks of the cluster and of the API server, counted from their logs.

Both sides of `benchmarks/aiida_calcjobs.py` end at the same sshd, so its log (LogLevel
VERBOSE) is the common measure: SSH connections accepted for the user and the sessions
(channels) opened on them by kind: a command (a process spawned on the login node) or the SFTP
subsystem. The SFTP requests inside a session are not counted: internal-sftp logs them only to
syslog, which the stack does not run. The API server's access log adds, for `firecrest`, the
HTTP requests by endpoint (method and route template) and their body bytes each way.

Each reader remembers where a log file ended and reads only what was appended since, so a batch
counts its own lines.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Any


class LogTail:
    """The lines appended to a file since the last call (or since it was made)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = path.stat().st_size if path.exists() else 0

    def new_lines(self) -> list[str]:
        if not self.path.exists():
            return []
        with self.path.open("rb") as fh:
            fh.seek(self._offset)
            data = fh.read()
        end = data.rfind(b"\n") + 1  # a line being written is left for the next call
        self._offset += end
        return data[:end].decode("utf-8", "replace").splitlines()


_ACCEPTED = re.compile(r"Accepted \S+ for (\S+) from")
_SESSION = re.compile(r"Starting session: (.+?) for (\S+) from")


class SshdCounts:
    """SSH connections and sessions of one user, from sshd's log."""

    def __init__(self, log: Path, user: str) -> None:
        self._tail = LogTail(log)
        self._user = user

    def take(self) -> dict[str, Any]:
        connections = 0
        sessions: Counter[str] = Counter()
        for message in self._tail.new_lines():
            if found := _ACCEPTED.match(message):
                connections += found.group(1) == self._user
            elif (found := _SESSION.match(message)) and found.group(2) == self._user:
                # "command", "subsystem 'sftp'", "forced-command (config) '...'"
                sessions[found.group(1).split(" (")[0]] += 1
        return {
            "connections": connections,
            "sessions": dict(sessions),
        }


class AccessLogCounts:
    """HTTP requests of one user by endpoint, and their body bytes, from the API server's
    JSON access log (`firecrest_server.access`)."""

    def __init__(self, log: Path, user: str) -> None:
        self._tail = LogTail(log)
        self._user = user

    def take(self) -> dict[str, Any]:
        requests: Counter[str] = Counter()
        body = {"in": 0, "out": 0}
        for line in self._tail.new_lines():
            if '"firecrest_server.access"' not in line:
                continue
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if record.get("user") != self._user:
                continue
            requests[f"{record.get('method')} {record.get('route') or record.get('path')}"] += 1
            body["in"] += int(record.get("bytes_in") or 0)
            body["out"] += int(record.get("bytes_out") or 0)
        return {"http_requests": dict(requests), "http_body_bytes": body}


def per_calculation(counts: dict[str, Any], count: int) -> dict[str, Any]:
    """Every number in ``counts`` (nested) divided by ``count``, rounded to 2 decimals."""
    if isinstance(counts, dict):
        return {key: per_calculation(value, count) for key, value in counts.items()}
    return round(counts / count, 2)
