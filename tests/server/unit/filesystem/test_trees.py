"""Tree transfers over a fake remote process: every step is bounded, limits reach the command."""

from __future__ import annotations

import asyncio
import contextlib
from types import SimpleNamespace

import pytest

from firecrest_server.config import DataOperation
from firecrest_server.errors import PayloadTooLarge, RequestTimeout
from firecrest_server.filesystem import trees
from firecrest_server.filesystem.unpacking import UNPACK_SCRIPT


class _Stream:
    def __init__(self, chunks: list[bytes], hang: bool = False) -> None:
        self.chunks, self.hang = list(chunks), hang

    async def read(self, size: int = -1) -> bytes:
        if self.hang:
            await asyncio.Event().wait()
        return self.chunks.pop(0) if self.chunks else b""


class _Stdin:
    def __init__(self, hang: bool) -> None:
        self.hang, self.written = hang, b""

    def write(self, data: bytes) -> None:
        self.written += data

    async def drain(self) -> None:
        if self.hang:
            await asyncio.Event().wait()

    def write_eof(self) -> None:
        pass


class _Process:
    def __init__(self, stdout=(), stderr=(), exit_status=0, hang_stdout=False, hang_stdin=False):
        self.stdout = _Stream(list(stdout), hang_stdout)
        self.stderr = _Stream(list(stderr))
        self.stdin = _Stdin(hang_stdin)
        self.exit_status = exit_status

    async def wait(self, check: bool = False):
        return SimpleNamespace(exit_status=self.exit_status)


class _Remote:
    def __init__(self, process: _Process) -> None:
        self.process = process
        self.argv: list[str] = []
        self.sftp_deadline = 0.05
        self.system = SimpleNamespace(
            data_operation=DataOperation(max_extract_bytes=1000, max_extract_files=7)
        )
        self.runner = SimpleNamespace(open_process=self._open_process)

    @contextlib.asynccontextmanager
    async def _open_process(self, argv, *, timeout):
        self.argv = list(argv)
        yield self.process

    async def sftp(self, path, operation):
        return None  # the directory exists


async def _body(*chunks: bytes):
    for chunk in chunks:
        yield chunk


async def test_upload_unpacks_within_the_systems_limits_keeping_permissions() -> None:
    remote = _Remote(_Process())
    await trees.upload(remote, "/home/a/dir", _body(b"tar", b"bytes"))  # type: ignore[arg-type]
    assert remote.argv[:4] == ["bash", "-c", UNPACK_SCRIPT, "bash"]
    assert remote.argv[4:6] == ["-", "/home/a/dir"]
    assert remote.argv[7:] == ["1000", "7", "p", "cat"]
    assert remote.process.stdin.written == b"tarbytes"


async def test_upload_over_a_limit_is_413() -> None:
    stderr = b"The archive has more than 7 entries, the limit (data_operation.max_extract_files)\n"
    remote = _Remote(_Process(stderr=[stderr], exit_status=3))
    with pytest.raises(PayloadTooLarge, match="max_extract_files"):
        await trees.upload(remote, "/home/a/dir", _body(b"x"))  # type: ignore[arg-type]


async def test_an_upload_the_login_node_stops_reading_is_408() -> None:
    remote = _Remote(_Process(hang_stdin=True))
    with pytest.raises(RequestTimeout, match="stalled"):
        async with asyncio.timeout(30):  # the test's own guard; the deadline is 0.05 s
            await trees.upload(remote, "/home/a/dir", _body(b"x"))  # type: ignore[arg-type]


async def test_a_download_that_stops_sending_breaks_the_stream() -> None:
    remote = _Remote(_Process(stdout=[b"first"], hang_stdout=False))
    stream = await trees.download(remote, "/home/a/dir")  # type: ignore[arg-type]
    assert [chunk async for chunk in stream] == [b"first"]

    stalled = _Remote(_Process(hang_stdout=True))
    stream = await trees.download(stalled, "/home/a/dir")  # type: ignore[arg-type]
    with pytest.raises(trees.TreeStreamFailed, match="stalled"):
        async with asyncio.timeout(30):
            _ = [chunk async for chunk in stream]
