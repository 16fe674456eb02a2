"""Joined writes: what an app sends in one loop turn reaches the socket in one write."""

from __future__ import annotations

import asyncio

import httpx
import uvicorn

from firecrest_server.edge_protocol import EdgeProtocol
from firecrest_server.http_protocol import JoinedWrites


class RecordingTransport:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_write_buffer_size(self) -> int:
        return 0

    def get_extra_info(self, name: str, default=None):
        return {"peername": ("127.0.0.1", 1)}.get(name, default)


async def test_writes_of_one_turn_leave_as_one_and_later_ones_apart() -> None:
    real = RecordingTransport()
    joined = JoinedWrites(real, asyncio.get_running_loop())  # type: ignore[arg-type]
    joined.write(b"HTTP/1.1 200 OK\r\n\r\n")
    joined.write(memoryview(b"{}"))
    assert real.writes == []
    assert joined.get_write_buffer_size() == 21
    await asyncio.sleep(0)
    assert real.writes == [b"HTTP/1.1 200 OK\r\n\r\n{}"]
    joined.writelines([b"a", b"b"])
    await asyncio.sleep(0)
    joined.write(b"c")
    await asyncio.sleep(0)
    assert real.writes[1:] == [b"ab", b"c"]
    assert joined.get_extra_info("peername") == ("127.0.0.1", 1)  # the rest passes through


async def test_close_sends_what_is_pending_first_and_a_closed_socket_gets_nothing() -> None:
    real = RecordingTransport()
    joined = JoinedWrites(real, asyncio.get_running_loop())  # type: ignore[arg-type]
    joined.write(b"last words")
    joined.close()
    assert real.writes == [b"last words"]
    assert real.closed
    joined.write(b"too late")
    await asyncio.sleep(0)
    assert real.writes == [b"last words"]


async def test_a_real_server_answers_through_the_protocol(unused_tcp_port: int) -> None:
    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"whole"})

    config = uvicorn.Config(
        app, host="127.0.0.1", port=unused_tcp_port, http=EdgeProtocol, lifespan="off"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    for _ in range(500):  # until it listens
        if server.started:
            break
        await asyncio.sleep(0.01)
    try:
        async with httpx.AsyncClient() as http:
            responses = [await http.get(f"http://127.0.0.1:{unused_tcp_port}/") for _ in range(3)]
        assert [(r.status_code, r.content) for r in responses] == [(200, b"whole")] * 3
    finally:
        server.should_exit = True
        await task
