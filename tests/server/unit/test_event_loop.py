"""The batch-accepting uvloop: what it serves, how fast it drains a burst, how it fails."""

from __future__ import annotations

import asyncio
import errno
import socket
from collections.abc import Callable, Coroutine
from typing import Any

import uvloop

from firecrest_server import event_loop
from firecrest_server.event_loop import ACCEPT_BATCH, BatchAcceptServer, new_event_loop


class Echo(asyncio.Protocol):
    made: list[Echo] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        Echo.made.append(self)

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)  # type: ignore[attr-defined]


def run(loop_factory: Callable[[], asyncio.AbstractEventLoop], main: Coroutine[Any, Any, Any]):
    loop = loop_factory()
    try:
        return loop.run_until_complete(main)
    finally:
        loop.close()


def listening_socket(backlog: int = 512) -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(backlog)
    return sock


async def turns_to_serve(clients: int, listener: socket.socket) -> int:
    """Queue ``clients`` connections while the loop is not running, then count the loop's
    turns until every one of them has been handed to its protocol."""
    Echo.made = []
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Echo, sock=listener, backlog=512)
    # Connections complete in the kernel and wait in the accept queue until accepted.
    queued = [socket.create_connection(listener.getsockname()) for _ in range(clients)]
    turns = 0
    while len(Echo.made) < clients and turns < 10 * clients:
        await asyncio.sleep(0)  # one turn of the loop
        turns += 1
    server.close()
    await server.wait_closed()
    for sock in queued:
        sock.close()
    assert len(Echo.made) == clients
    return turns


def test_a_burst_is_accepted_in_batches_where_plain_uvloop_takes_one_per_turn() -> None:
    clients = 200
    plain = run(uvloop.new_event_loop, turns_to_serve(clients, listening_socket()))
    batched = run(new_event_loop, turns_to_serve(clients, listening_socket()))
    # libuv (since 1.45) accepts one connection per turn: the reason this module exists. If a
    # later uvloop accepts more, the batching could go.
    assert plain >= clients
    # Each turn accepts up to ACCEPT_BATCH; handing a socket to uvloop takes a few turns more.
    assert batched <= clients // ACCEPT_BATCH + 10, batched


def test_serves_from_host_and_port_and_stops_on_close() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(Echo, host="127.0.0.1", port=0)
        assert isinstance(server, BatchAcceptServer)
        assert server.is_serving()
        address = server.sockets[0].getsockname()
        reader, writer = await asyncio.open_connection(*address)
        writer.write(b"ping")
        assert await reader.readexactly(4) == b"ping"
        server.close()
        await server.wait_closed()
        assert not server.is_serving()
        # An open connection outlives the listener, as with asyncio's servers ...
        writer.write(b"again")
        assert await reader.readexactly(5) == b"again"
        writer.close()
        # ... and nobody listens any more.
        try:
            await asyncio.open_connection(*address)
        except ConnectionRefusedError:
            pass
        else:
            raise AssertionError("the closed server still accepts")

    run(new_event_loop, main())


def test_tls_is_left_to_uvloop() -> None:
    import ssl

    async def main() -> None:
        loop = asyncio.get_running_loop()
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        server = await loop.create_server(Echo, sock=listening_socket(), ssl=context)
        assert not isinstance(server, BatchAcceptServer)
        server.close()

    run(new_event_loop, main())


class _FailingSocket(socket.socket):
    """A listening socket whose accept fails as the kernel would."""

    errors: list[OSError] = []

    def accept(self):  # type: ignore[override]
        if self.errors:
            raise self.errors.pop(0)
        return super().accept()


async def serve_failing(*errors: OSError) -> tuple[_FailingSocket, BatchAcceptServer]:
    """A batch-accepting echo server whose first accepts fail with ``errors``."""
    listener = _FailingSocket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.errors = list(errors)
    Echo.made = []
    server = BatchAcceptServer(asyncio.get_running_loop(), Echo, listener)
    await server.start_serving()
    return listener, server


def test_out_of_descriptors_pauses_accepting_then_resumes(monkeypatch) -> None:
    monkeypatch.setattr(event_loop, "ACCEPT_RETRY_DELAY", 0.05)

    async def main() -> None:
        listener, server = await serve_failing(OSError(errno.EMFILE, "Too many open files"))
        reader, writer = await asyncio.open_connection(*listener.getsockname())
        # The first attempt fails: no spinning on the readable socket, a pause instead ...
        for _ in range(5):
            await asyncio.sleep(0)
        assert Echo.made == []
        assert server._resume is not None
        # ... after which the waiting connection is served.
        writer.write(b"late")
        assert await asyncio.wait_for(reader.readexactly(4), 5) == b"late"
        writer.close()
        server.close()
        await server.wait_closed()

    run(new_event_loop, main())


def test_a_connection_aborted_in_the_queue_is_skipped() -> None:
    async def main() -> None:
        aborted = ConnectionAbortedError(errno.ECONNABORTED, "aborted")
        listener, server = await serve_failing(aborted)
        reader, writer = await asyncio.open_connection(*listener.getsockname())
        writer.write(b"ok")
        assert await asyncio.wait_for(reader.readexactly(2), 5) == b"ok"
        writer.close()
        server.close()
        await server.wait_closed()

    run(new_event_loop, main())
