"""The connection protocol on a real uvicorn server on loopback, serving a tiny app.

Timeouts are set to fractions of a second here; the assertions count closed connections and
statuses, never durations.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import resource
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from firecrest_server.config import EdgeLimits
from firecrest_server.edge_protocol import (
    EDGE_STATE,
    ConnectionBudget,
    EdgeProtocol,
    over_capacity_response,
    raise_fd_limit,
)


def test_budget_stays_inside_the_descriptor_limit() -> None:
    limits = EdgeLimits(max_connections=4096, fd_reserve=256)
    roomy = ConnectionBudget.derive(limits, 100_000)
    assert (roomy.soft_cap, roomy.hard_cap) == (4096, 100_000 - 128)
    tight = ConnectionBudget.derive(limits, 1024)
    assert tight.soft_cap == 1024 - 256
    assert tight.soft_cap < tight.hard_cap <= 1024 - 128
    tiny = ConnectionBudget.derive(limits, 100)  # below the reserve: still serves someone
    assert 1 <= tiny.soft_cap < tiny.hard_cap


def test_soft_descriptor_limit_is_raised_to_the_hard_one() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(soft, 512), hard))
    try:
        raised = raise_fd_limit()
        assert raised == resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        assert raised > 512 or hard <= 512
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_over_capacity_answer_is_a_firecrest_error() -> None:
    head, body = over_capacity_response().split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 503 ")
    assert b"retry-after: 2" in head
    assert b"connection: close" in head
    assert set(json.loads(body)) == {"errorType", "message", "causedBy", "data", "user"}
    assert f"content-length: {len(body)}".encode() in head


# ------------------------------------------------------------------ on a real server


def _app(budget: ConnectionBudget, read_delay: float = 0.0) -> Starlette:
    async def echo(request: Request) -> JSONResponse:
        await asyncio.sleep(read_delay)
        try:
            body = await request.body()
        except ClientDisconnect:  # a timed-out body: nobody to answer
            return JSONResponse({}, status_code=400)
        return JSONResponse({"size": len(body)})

    @asynccontextmanager
    async def lifespan(app) -> AsyncIterator[dict]:
        yield {EDGE_STATE: budget}

    async def refuse(request: Request) -> JSONResponse:
        # As body_limits.py does: answer without reading the body, and close.
        return JSONResponse({}, status_code=401, headers={"Connection": "close"})

    routes = [Route("/", echo, methods=["GET", "POST"]), Route("/refuse", refuse, methods=["POST"])]
    return Starlette(routes=routes, lifespan=lifespan)


@asynccontextmanager
async def _serve(budget: ConnectionBudget, read_delay: float = 0.0) -> AsyncIterator[int]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(
        _app(budget, read_delay), http=EdgeProtocol, lifespan="on", log_level="warning"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    for _ in range(1000):  # uvicorn offers no event for "listening"
        if server.started:
            break
        await asyncio.sleep(0.01)
    try:
        yield sock.getsockname()[1]
    finally:
        server.should_exit = True
        await task
        sock.close()


async def _closed_by_server(reader: asyncio.StreamReader, wait: float) -> bool:
    """True when the server closed the connection (EOF or reset) within ``wait`` seconds."""
    try:
        while await asyncio.wait_for(reader.read(65536), wait):
            pass
        return True
    except (ConnectionError, OSError):
        return True
    except TimeoutError:
        return False


async def _request(port: int, raw: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(raw)
    await writer.drain()
    data = await asyncio.wait_for(reader.read(65536), 10)
    writer.close()
    return data


def _budget(**overrides) -> ConnectionBudget:
    values = {"soft_cap": 1000, "hard_cap": 2000, "header_timeout": 0.4, "body_timeout": 0.4}
    return ConnectionBudget(**(values | overrides))


async def test_half_sent_requests_are_closed_and_others_served() -> None:
    partial = [b"", b"GET / HT", b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: "] * 15
    async with _serve(_budget()) as port:
        connections = [await asyncio.open_connection("127.0.0.1", port) for _ in partial]
        for (_reader, writer), data in zip(connections, partial, strict=True):
            writer.write(data)
        answer = await _request(port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        closed = await asyncio.gather(*(_closed_by_server(r, 10) for r, _w in connections))
        for _reader, writer in connections:
            writer.close()
    print(f"\nhalf-sent connections closed by the server: {sum(closed)} of {len(partial)}")
    assert sum(closed) == len(partial)
    assert answer.startswith(b"HTTP/1.1 200 ")


async def test_a_kept_alive_connection_gets_a_header_deadline_per_request() -> None:
    async with _serve(_budget()) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        first = await asyncio.wait_for(reader.read(65536), 10)
        writer.write(b"GET / HTTP/1.1\r\nHo")  # the next request stops half-way
        closed = await _closed_by_server(reader, 10)
        writer.close()
    assert first.startswith(b"HTTP/1.1 200 ")
    assert closed


async def test_a_stalled_body_is_timed_out() -> None:
    async with _serve(_budget()) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n" + b"x" * 10)
        closed = await _closed_by_server(reader, 10)
        writer.close()
    assert closed


async def test_a_body_waiting_for_a_slow_app_is_not_timed_out() -> None:
    # 1 MiB is more than uvicorn buffers (64 KiB), so reading is paused while the app sleeps
    # for longer than the body timeout: that wait is the server's, not the client's.
    body = b"x" * 2**20
    raw = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body) + body
    async with _serve(_budget(), read_delay=1.2) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(raw)
        response = await asyncio.wait_for(reader.read(65536), 10)
        writer.close()
    assert response.startswith(b"HTTP/1.1 200 ")
    assert response.endswith(b'{"size":1048576}')


async def test_connections_over_the_cap_get_503() -> None:
    async with _serve(_budget(soft_cap=3, hard_cap=6, header_timeout=30)) as port:
        held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(3)]
        await asyncio.sleep(0.2)  # let the server register them
        refused = await _request(port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        # Over the hard cap a connection is closed before any request is read.
        extra = [await asyncio.open_connection("127.0.0.1", port) for _ in range(4)]
        await asyncio.sleep(0.2)
        aborted = await asyncio.gather(*(_closed_by_server(r, 5) for r, _w in extra[3:]))
        for _reader, writer in held + extra:
            writer.close()
        await asyncio.sleep(0.2)
        after = await _request(port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert refused.startswith(b"HTTP/1.1 503 ")
    assert json.loads(refused.split(b"\r\n\r\n", 1)[1])["message"].startswith("The server has")
    assert aborted == [True]
    assert after.startswith(b"HTTP/1.1 200 ")


async def test_a_refusal_before_the_body_reaches_the_client() -> None:
    # A client that sends its whole body before reading (as Python's http.client does). Closed
    # at once, the server's socket would answer the bytes still coming with a reset, and the
    # client's kernel would drop the 401 it had not read yet.
    answers = []
    size = 16 * 2**20
    async with _serve(_budget(body_timeout=30)) as port:
        for _ in range(3):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"POST /refuse HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % size)
            with contextlib.suppress(ConnectionError):
                for _ in range(size // 2**18):
                    writer.write(b"x" * 2**18)
                    await writer.drain()
            try:
                answers.append(await asyncio.wait_for(reader.readline(), 10))
            except ConnectionError:
                answers.append(b"reset")
            closed = await _closed_by_server(reader, 10)
            writer.close()
            assert closed
    assert answers == [b"HTTP/1.1 401 Unauthorized\r\n"] * 3


@pytest.fixture(autouse=True)
def _quiet_uvicorn(caplog) -> None:
    caplog.set_level("ERROR", logger="uvicorn.error")
