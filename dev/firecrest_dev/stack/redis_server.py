"""The stack's own Redis: what the replicas share."""

from __future__ import annotations

import shutil
import socket

from .processes import Stack, wait_for
from .render import render, write_file


def start_redis(stack: Stack) -> str:
    """A Redis of this stack's own (never the system's on 6379): the replicas' shared state."""
    d, port = stack.dir, stack.ports["redis"]
    data = d / "redis"
    data.mkdir(exist_ok=True)
    shutil.chown(data, "redis", "redis")
    data.chmod(0o750)
    config = write_file(d / "etc" / "redis.conf", render("redis.conf", port=port, data=data))
    stack.start("redis", ["/usr/bin/redis-server", str(config)], user="redis")
    wait_for("redis", lambda: redis_ping(port), stack=stack)
    return f"redis://127.0.0.1:{port}/0"


def redis_ping(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
        sock.sendall(b"PING\r\n")
        return sock.recv(16).startswith(b"+PONG")
