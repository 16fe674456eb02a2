"""A TCP connection to sshd whose writes are gathered into one per turn of the event loop.

asyncssh writes every SSH packet to the socket at once, and precedes each packet it encrypts
with an `SSH_MSG_IGNORE` packet of its own: one SFTP request costs two `write` system calls,
and a pooled connection carrying a hundred requests in one turn of the loop makes two hundred.
Gathering what is written during one turn and sending it with one call at the end of the turn
costs no round trip (the bytes leave in the same turn they were written) and saves both the
server and sshd most of those calls.

asyncssh accepts, as ``tunnel``, any object with a ``create_connection(factory, host, port)``
method; `CoalescingTCP` is such an object that opens a plain TCP connection and hands
asyncssh a transport that gathers its writes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any


class GatheringTransport(asyncio.Transport):
    """Wraps a transport: ``write`` queues, one ``writelines`` per loop turn sends.

    ``writelines`` rather than one joined ``write``: uvloop sends the pieces with one vectored
    write, without copying them into a new buffer first (an upload's bytes are most of what
    passes here; joining them copied each byte once more: 12 % of the server's CPU on upload).
    asyncio's own transports join them, as before."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []
        self._flush_handle: asyncio.Handle | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not data:
            return
        self._pending.append(bytes(data))
        if self._flush_handle is None:
            self._flush_handle = self._loop.call_soon(self._flush)

    def writelines(self, list_of_data: Any) -> None:
        for data in list_of_data:
            self.write(data)

    def _flush(self) -> None:
        self._flush_handle = None
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        if self._transport.is_closing():
            return
        if len(pending) == 1:
            self._transport.write(pending[0])
        else:
            self._transport.writelines(pending)

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + sum(map(len, self._pending))

    # Everything else is the wrapped transport's; what is queued leaves before a close.

    def write_eof(self) -> None:
        self._flush()
        self._transport.write_eof()

    def can_write_eof(self) -> bool:
        return self._transport.can_write_eof()

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def abort(self) -> None:
        self._pending.clear()
        self._transport.abort()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._transport.get_extra_info(name, default)

    def pause_reading(self) -> None:
        self._transport.pause_reading()

    def resume_reading(self) -> None:
        self._transport.resume_reading()

    def is_reading(self) -> bool:
        return self._transport.is_reading()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._transport.set_write_buffer_limits(high, low)

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self._transport.get_write_buffer_limits()

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._transport.set_protocol(protocol)

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._transport.get_protocol()


class _Adapter(asyncio.Protocol):
    """Sits between the socket and asyncssh's protocol, giving it the gathering transport."""

    def __init__(self, inner: asyncio.Protocol, loop: asyncio.AbstractEventLoop) -> None:
        self.inner = inner
        self._loop = loop

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # asyncio types the argument BaseTransport; a stream connection's is always a Transport.
        self.inner.connection_made(GatheringTransport(transport, self._loop))  # type: ignore[arg-type]

    def data_received(self, data: bytes) -> None:
        self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()


class CoalescingTCP:
    """A ``tunnel`` for ``asyncssh.connect``: a direct TCP connection with gathered writes."""

    async def create_connection(
        self, session_factory: Callable[[], asyncio.Protocol], host: str, port: int
    ) -> tuple[asyncio.BaseTransport, asyncio.Protocol]:
        loop = asyncio.get_running_loop()
        transport, adapter = await loop.create_connection(
            lambda: _Adapter(session_factory(), loop), host, port
        )
        return transport, adapter.inner
