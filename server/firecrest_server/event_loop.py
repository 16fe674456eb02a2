"""The event loop uvicorn runs the server on: uvloop, accepting new connections in batches.

Since libuv 1.45 (PR libuv/libuv#3696), a listening socket accepts ONE connection per turn of
the event loop and relies on level-triggered polling for the next. A worker saturated by
hundreds of open connections takes 100-300 ms per turn, so a burst of new connections drains
from the kernel's accept queue at a few per second and their first request waits seconds
(measured: 500 clients, P99 of 5-6 s for `status/systems`, whose requests take milliseconds
once accepted). asyncio's own loop accepts up to the whole backlog per turn instead, but its
transports cost about 25 % of the throughput of uvloop's.

`BatchAcceptingLoop` keeps uvloop for everything and takes over only the accepting: up to
`ACCEPT_BATCH` connections per turn, each handed to uvloop as an accepted socket. The batch is
bounded so that several workers sharing one listening socket split a burst between them: a
busy worker turns its loop more slowly and so takes fewer.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
from collections.abc import Callable
from typing import Any

import uvloop

log = logging.getLogger("firecrest_server.event_loop")

ACCEPT_BATCH = 32
# Out of file descriptors or kernel memory: stop accepting for a moment, as asyncio does,
# instead of spinning on a listening socket that stays readable.
ACCEPT_RETRY_DELAY = 1.0
_RESOURCE_ERRNOS = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}

# An accepted connection being handed to the loop (`connect_accepted_socket`).
_Handover = asyncio.Task[tuple[asyncio.Transport, asyncio.BaseProtocol]]


class BatchAcceptServer(asyncio.AbstractServer):
    """A listening socket whose connections are accepted by us and served by uvloop."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        protocol_factory: Callable[[], asyncio.BaseProtocol],
        sock: socket.socket,
        batch: int = ACCEPT_BATCH,
    ) -> None:
        self._loop = loop
        self._protocol_factory = protocol_factory
        self._sock = sock
        self._batch = batch
        self._serving = False
        self._pending: set[_Handover] = set()
        self._closed = loop.create_future()
        self._resume: asyncio.TimerHandle | None = None

    # --------------------------------------------------------------------- AbstractServer

    @property
    def sockets(self) -> tuple[socket.socket, ...]:
        return (self._sock,)

    def get_loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    def is_serving(self) -> bool:
        return self._serving

    async def start_serving(self) -> None:
        if self._serving or self._closed.done():
            return
        self._sock.setblocking(False)
        self._loop.add_reader(self._sock.fileno(), self._accept_batch)
        self._serving = True

    async def serve_forever(self) -> None:
        await self.start_serving()
        await asyncio.shield(self._closed)

    def close(self) -> None:
        """Stop accepting. Connections already handed over stay open, as with asyncio's."""
        if self._closed.done():
            return
        if self._serving:
            self._loop.remove_reader(self._sock.fileno())
        if self._resume is not None:
            self._resume.cancel()
        self._serving = False
        self._sock.close()
        self._closed.set_result(None)

    async def wait_closed(self) -> None:
        await asyncio.shield(self._closed)
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)

    # -------------------------------------------------------------------------- accepting

    def _accept_batch(self) -> None:
        for _ in range(self._batch):
            try:
                conn, _address = self._sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionAbortedError:
                continue  # the client gave up while queued: nothing to serve
            except OSError as exc:
                if exc.errno in _RESOURCE_ERRNOS:
                    log.error(
                        "cannot accept connections, retrying in %.0f s: %s",
                        ACCEPT_RETRY_DELAY,
                        exc,
                    )
                    self._loop.remove_reader(self._sock.fileno())
                    self._resume = self._loop.call_later(ACCEPT_RETRY_DELAY, self._resume_accepting)
                    return
                raise
            self._hand_over(conn)

    def _resume_accepting(self) -> None:
        self._resume = None
        if self._serving:
            self._loop.add_reader(self._sock.fileno(), self._accept_batch)

    def _hand_over(self, conn: socket.socket) -> None:
        task = self._loop.create_task(
            self._loop.connect_accepted_socket(self._protocol_factory, conn)
        )
        self._pending.add(task)
        task.add_done_callback(self._handed_over)

    def _handed_over(self, task: _Handover) -> None:
        self._pending.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("a new connection could not be set up: %s", task.exception())


class BatchAcceptingLoop(uvloop.Loop):
    """uvloop, except that plain TCP servers accept through `BatchAcceptServer`."""

    # uvloop's stub splits create_server into host/port and sock overloads; one signature that
    # takes either cannot match both, although it accepts every call they describe.
    async def create_server(  # type: ignore[override]
        self,
        protocol_factory: Callable[[], asyncio.BaseProtocol],
        host: str | None = None,
        port: int | None = None,
        *,
        sock: socket.socket | None = None,
        backlog: int = 100,
        ssl: Any = None,
        start_serving: bool = True,
        **kwargs: Any,
    ) -> asyncio.AbstractServer:
        if ssl is not None or kwargs or (sock is None and (host is None or port is None)):
            # TLS, or options we do not handle: uvloop's own server (one accept per turn).
            # The caller's arguments pass through unchanged (uvloop checks them), so they fit
            # neither of the stub's overloads alone.
            return await super().create_server(
                protocol_factory,
                host,
                port,  # type: ignore[arg-type]
                sock=sock,  # type: ignore[arg-type]
                backlog=backlog,
                ssl=ssl,
                start_serving=start_serving,
                **kwargs,
            )
        if sock is None:
            family = (await self.getaddrinfo(host, port, type=socket.SOCK_STREAM))[0][0]
            sock = socket.create_server((host, port), family=family, backlog=backlog)
        else:
            sock.listen(backlog)
        server = BatchAcceptServer(self, protocol_factory, sock)
        if start_serving:
            await server.start_serving()
        return server


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvicorn's `loop` factory (``firecrest_server.event_loop:new_event_loop``)."""
    return BatchAcceptingLoop()
