"""Joined writes: what uvicorn's HTTP/1.1 protocol writes in one event-loop turn leaves as one.

The edge protocol (edge_protocol.py) gives uvicorn this transport.

uvicorn writes a response's status line and headers to the socket as soon as the app starts the
response, and the body in a second write. A replica that dies between the two (SIGKILL, OOM;
on a busy machine the process can be descheduled right there for tens of milliseconds) leaves
the balancer holding a response it has begun to forward: it cannot retry it elsewhere, and the
client gets headers and a cut-off body. Joined, a response whose head and body the app sends
without waiting in between (every JSON answer) leaves in one write: a crash delivers all of it
or nothing, and "nothing" is an empty response that the balancer retries for safe methods.

Writes are collected and handed to the real transport at the end of the loop's current turn
(``call_soon``), and at once before the transport closes. Streamed bodies (downloads) still
leave chunk by chunk: each chunk waits for SFTP, which ends the turn.
"""

from __future__ import annotations

import asyncio
from typing import Any


class JoinedWrites:
    """A transport whose writes within one turn of the event loop reach the socket as one."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not self._pending:
            self._loop.call_soon(self.flush)
        self._pending.append(bytes(data))

    def writelines(self, chunks: Any) -> None:
        for chunk in chunks:
            self.write(chunk)

    def flush(self) -> None:
        if not self._pending:
            return
        data = b"".join(self._pending)
        self._pending.clear()
        if not self._transport.is_closing():
            self._transport.write(data)

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + sum(map(len, self._pending))

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        # Everything else (is_closing, get_extra_info, pause_reading, abort, ...) as is.
        return getattr(self._transport, name)
