"""A stack of this package's own with two API server replicas behind HAProxy.

The rest of the suite keeps its one-server stack; this one is started once for the package
(module scope in each module would start it again) and stopped at the end. To iterate, point
FIRECREST_REPLICAS_STACK at the stack.json of a `dev/stack up DIR --replicas 2` of your own.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from firecrest_dev.info import StackInfo
from firecrest_dev.running import running_stack


@pytest.fixture(scope="package")
def replicas() -> Iterator[StackInfo]:
    with running_stack(os.environ.get("FIRECREST_REPLICAS_STACK"), replicas=2) as info:
        assert [r["name"] for r in info.replicas] == ["server-1", "server-2"]
        yield info


def haproxy_stats(stack: StackInfo) -> dict[str, dict[str, str]]:
    """HAProxy's counters per replica (``show stat`` on its admin socket under the stack dir)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(5)
        sock.connect(str(Path(stack.dir, "haproxy", "admin.sock")))
        sock.sendall(b"show stat\n")
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    lines = b"".join(chunks).decode().splitlines()
    header = lines[0].lstrip("# ").split(",")
    rows = [dict(zip(header, line.split(","), strict=False)) for line in lines[1:] if line]
    return {r["svname"]: r for r in rows if r.get("pxname") == "replicas"}
