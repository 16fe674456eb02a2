"""Gathered writes: one write per loop turn, in order, nothing lost at close."""

from __future__ import annotations

import asyncio

import uvloop

from firecrest_server.ssh.coalescing import CoalescingTCP, GatheringTransport


class RecordingTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.events: list[str] = []
        self.closing = False

    def write(self, data) -> None:
        self.writes.append(bytes(data))
        self.events.append("write")

    def writelines(self, pieces) -> None:  # one call: recorded as one write
        self.write(b"".join(pieces))

    def close(self) -> None:
        self.closing = True
        self.events.append("close")

    def abort(self) -> None:
        self.closing = True
        self.events.append("abort")

    def is_closing(self) -> bool:
        return self.closing

    def get_write_buffer_size(self) -> int:
        return 7


async def test_writes_of_one_turn_leave_together_and_in_order() -> None:
    inner = RecordingTransport()
    transport = GatheringTransport(inner, asyncio.get_running_loop())
    transport.write(b"ignore-")
    transport.write(bytearray(b"packet-1 "))
    transport.write(memoryview(b"packet-2"))
    transport.write(b"")
    assert inner.writes == []  # nothing yet: the turn is not over
    assert transport.get_write_buffer_size() == 7 + len(b"ignore-packet-1 packet-2")
    await asyncio.sleep(0)
    assert inner.writes == [b"ignore-packet-1 packet-2"]
    transport.write(b"next turn")
    await asyncio.sleep(0)
    assert inner.writes == [b"ignore-packet-1 packet-2", b"next turn"]


async def test_close_sends_what_is_queued_first_and_abort_drops_it() -> None:
    inner = RecordingTransport()
    transport = GatheringTransport(inner, asyncio.get_running_loop())
    transport.write(b"disconnect message")
    transport.close()
    assert inner.events == ["write", "close"]
    assert inner.writes == [b"disconnect message"]
    await asyncio.sleep(0)  # the scheduled flush finds nothing more to send
    assert inner.writes == [b"disconnect message"]

    inner = RecordingTransport()
    transport = GatheringTransport(inner, asyncio.get_running_loop())
    transport.write(b"never sent")
    transport.abort()
    await asyncio.sleep(0)
    assert inner.events == ["abort"]


async def test_a_real_connection_carries_the_protocol_both_ways() -> None:
    await _echo_upper_through_a_gathering_connection()


def test_on_uvloop_the_pieces_leave_in_one_vectored_write() -> None:
    # uvloop's writelines sends the queued pieces with one writev: still one segment.
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(_echo_upper_through_a_gathering_connection())


async def _echo_upper_through_a_gathering_connection() -> None:
    received: list[bytes] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(1024):
            received.append(data)
            writer.write(data.upper())
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    host, port = server.sockets[0].getsockname()[:2]

    class Client(asyncio.Protocol):
        def __init__(self) -> None:
            self.data = b""
            self.lost = asyncio.get_running_loop().create_future()

        def connection_made(self, transport) -> None:
            self.transport = transport

        def data_received(self, data: bytes) -> None:
            self.data += data
            if self.data == b"ONE TWO":
                self.transport.close()

        def connection_lost(self, exc) -> None:
            self.lost.set_result(exc)

    _, client = await CoalescingTCP().create_connection(Client, host, port)
    assert isinstance(client.transport, GatheringTransport)
    client.transport.write(b"one ")
    client.transport.write(b"two")
    assert await asyncio.wait_for(client.lost, 5) is None
    assert client.data == b"ONE TWO"
    assert received == [b"one two"]  # one segment: both writes left in one call
    server.close()
    await server.wait_closed()
