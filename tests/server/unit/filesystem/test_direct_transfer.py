"""Upload and download over an in-memory SFTP server: names, limits, atomic replace, cleanup."""

from __future__ import annotations

import asyncio
import contextlib
import posixpath
import stat as stat_module
from collections.abc import AsyncIterator

import asyncssh
import pytest

from firecrest_server.errors import BadRequest, Forbidden, NotFound, PayloadTooLarge, RequestTimeout
from firecrest_server.filesystem.direct_transfer import (
    READS_IN_FLIGHT,
    WRITES_IN_FLIGHT,
    check_file_name,
    open_download,
    temporary_name,
    upload,
)

# --------------------------------------------------------------------------------- fake SFTP


class FakeFile:
    def __init__(self, server: FakeSFTP, path: str) -> None:
        self.server, self.path, self.offset = server, path, 0
        self.closed = False

    async def __aenter__(self) -> FakeFile:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.closed = True

    async def close(self) -> None:
        self.server.requests.append("close")
        self.closed = True

    async def write(self, data: bytes, offset: int) -> None:
        if self.server.hang_writes:
            await asyncio.Event().wait()
        if self.server.fail_write:
            raise asyncssh.SFTPFailure("Disk quota exceeded")
        self.server.writes.append(len(data))
        content = self.server.files[self.path]
        if len(content) < offset:
            content += bytes(offset - len(content))  # pwrite past the end leaves a hole
        content[offset : offset + len(data)] = data

    async def chmod(self, mode: int) -> None:
        self.server.modes[self.path] = mode

    async def read(self, size: int, offset: int) -> bytes:
        if self.server.hang_reads:
            await asyncio.Event().wait()
        self.server.requests.append("read")
        self.server.reads.append((offset, size))
        size = min(size, self.server.max_answer)  # a server may answer less than asked
        return bytes(self.server.files[self.path][offset : offset + size])

    async def stat(self) -> asyncssh.SFTPAttrs:
        return await self.server.lstat(self.path)


class FakeSFTP:
    def __init__(self) -> None:
        self.dirs = {"/home", "/home/a"}
        self.files: dict[str, bytearray] = {}
        self.modes: dict[str, int] = {}
        self.writes: list[int] = []
        self.fail_write = False
        self.opened: list[FakeFile] = []
        self.reads: list[tuple[int, int]] = []
        self.max_answer = 1 << 40
        self.limits = asyncssh.sftp.SFTPLimits(1 << 18, 1000, 1000, 0)
        # FIFOs, sockets and devices (path -> mode): opening one never returns, as a FIFO's.
        self.specials: dict[str, int] = {}
        self.requests: list[str] = []  # the SFTP requests a download makes, in order
        self.hang_reads = False
        self.hang_writes = False

    async def stat(self, path: str) -> asyncssh.SFTPAttrs:
        self.requests.append("stat")
        if path in self.specials:
            return asyncssh.SFTPAttrs(permissions=self.specials[path] | 0o644, size=0)
        return await self.lstat(path)

    async def lstat(self, path: str) -> asyncssh.SFTPAttrs:
        if path.startswith("/home/b"):
            raise asyncssh.SFTPPermissionDenied("Permission denied")
        if path in self.dirs:
            return asyncssh.SFTPAttrs(permissions=stat_module.S_IFDIR | 0o755)
        if path in self.files:
            mode = self.modes.get(path, 0o644)
            return asyncssh.SFTPAttrs(
                permissions=stat_module.S_IFREG | mode, size=len(self.files[path])
            )
        raise asyncssh.SFTPNoSuchFile("No such file")

    async def open(
        self, path: str, mode: object, encoding: object = None, block_size: int = -1
    ) -> FakeFile:
        self.requests.append("open")
        if path.startswith("/home/b"):
            raise asyncssh.SFTPPermissionDenied("Permission denied")
        if path in self.specials:
            await asyncio.Event().wait()
        if mode == "rb":
            await self.lstat(path)
        else:
            if posixpath.dirname(path) not in self.dirs:
                raise asyncssh.SFTPNoSuchFile("No such file")
            assert path not in self.files, "opened with FXF_EXCL"
            self.files[path] = bytearray()
        file = FakeFile(self, path)
        self.opened.append(file)
        return file

    async def posix_rename(self, source: str, target: str) -> None:
        if target in self.dirs:  # what OpenSSH's sftp-server answers: a generic failure
            raise asyncssh.SFTPFailure("Failure")
        self.files[target] = self.files.pop(source)
        if source in self.modes:
            self.modes[target] = self.modes.pop(source)
        else:
            self.modes.pop(target, None)

    async def remove(self, path: str) -> None:
        self.requests.append("remove")
        del self.files[path]


class FakeRemote:
    def __init__(self) -> None:
        self.server = FakeSFTP()
        self.sessions_open = 0
        self.sftp_deadline = 5.0
        self.timeouts_seen = 0  # timeouts the session saw (it closes the channel on them)

    @contextlib.asynccontextmanager
    async def sftp_session(self) -> AsyncIterator[FakeSFTP]:
        self.sessions_open += 1
        try:
            yield self.server
        except RequestTimeout:
            self.timeouts_seen += 1
            raise
        finally:
            self.sessions_open -= 1


async def _chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


# ---------------------------------------------------------------------------------- names


@pytest.mark.parametrize("name", ["a.txt", "-rf", "$(id)", "new\nline", "ünï ☃", ".hidden", "..."])
def test_plain_names_are_accepted(name: str) -> None:
    assert check_file_name(name) == name


@pytest.mark.parametrize("name", [None, "", ".", "..", "a/b", "/etc/passwd", "../x", "a\x00b"])
def test_paths_and_special_names_are_400(name) -> None:
    with pytest.raises(BadRequest):
        check_file_name(name)


def test_names_longer_than_name_max_are_400() -> None:
    check_file_name("x" * 255)
    with pytest.raises(BadRequest, match="255 bytes"):
        check_file_name("é" * 128)


def test_temporary_names_are_hidden_unique_and_short() -> None:
    names = {temporary_name("x" * 255) for _ in range(100)}
    assert len(names) == 100
    assert all(n.startswith(".") and ".fcpart-" in n and len(n) < 80 for n in names)


# ----------------------------------------------------------------------------------- upload


async def test_upload_writes_the_file_and_leaves_no_temporary() -> None:
    remote = FakeRemote()
    size = await upload(remote, "/home/a", "f.txt", _chunks(b"hello ", b"world"), limit=100)
    assert size == 11
    assert remote.server.files == {"/home/a/f.txt": bytearray(b"hello world")}
    assert remote.sessions_open == 0


async def test_upload_writes_requests_of_the_servers_maximum_length() -> None:
    remote = FakeRemote()
    data = bytes(range(256)) * 40
    pieces = [data[i : i + 700] for i in range(0, len(data), 700)]  # not aligned to 1000
    await upload(remote, "/home/a", "big", _chunks(*pieces), limit=len(data))
    assert remote.server.writes == [1000] * 10 + [240]
    assert remote.server.files["/home/a/big"] == data


async def test_upload_writes_land_at_their_offsets_whatever_order_they_finish_in(
    monkeypatch,
) -> None:
    written = FakeFile.write
    in_flight = peak = 0

    async def slow_write(self: FakeFile, data: bytes, offset: int) -> None:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.001 * ((offset // 1000) % 3))  # later writes may finish first
        await written(self, data, offset)
        in_flight -= 1

    monkeypatch.setattr(FakeFile, "write", slow_write)
    remote = FakeRemote()
    data = bytes(range(256)) * 100
    await upload(remote, "/home/a", "f", _chunks(data[:9999], data[9999:]), limit=len(data))
    assert remote.server.files["/home/a/f"] == data
    assert peak == WRITES_IN_FLIGHT  # several at once, never more than the bound


async def test_a_failing_body_waits_for_the_writes_in_flight_before_removing(monkeypatch) -> None:
    # Writes are in flight while the next bytes arrive: when the body then fails, they end
    # before the partial file is closed and removed (a late write would find no file).
    written = FakeFile.write

    async def slow_write(self: FakeFile, data: bytes, offset: int) -> None:
        await asyncio.sleep(0.05)
        await written(self, data, offset)

    monkeypatch.setattr(FakeFile, "write", slow_write)
    remote = FakeRemote()

    async def broken() -> AsyncIterator[bytes]:
        yield b"x" * 2500
        raise BadRequest("Invalid multipart data")

    with pytest.raises(BadRequest):
        await upload(remote, "/home/a", "f", broken(), limit=10_000)
    assert remote.server.writes == [1000, 1000]  # both finished; the rest was never sent
    assert remote.server.files == {}
    assert remote.sessions_open == 0


async def test_upload_replaces_a_file_keeping_its_permissions() -> None:
    remote = FakeRemote()
    remote.server.files["/home/a/run.sh"] = bytearray(b"old")
    remote.server.modes["/home/a/run.sh"] = 0o750
    await upload(remote, "/home/a", "run.sh", _chunks(b"new"), limit=100)
    assert remote.server.files == {"/home/a/run.sh": bytearray(b"new")}
    assert remote.server.modes["/home/a/run.sh"] == 0o750


async def test_upload_over_the_limit_is_413_and_removes_the_partial_file() -> None:
    remote = FakeRemote()
    with pytest.raises(PayloadTooLarge):
        await upload(remote, "/home/a", "f", _chunks(b"12345", b"67890", b"x"), limit=10)
    assert remote.server.files == {}


async def test_upload_of_exactly_the_limit_is_fine() -> None:
    remote = FakeRemote()
    assert await upload(remote, "/home/a", "f", _chunks(b"12345", b"67890"), limit=10) == 10


async def test_a_failing_body_removes_the_partial_file_and_keeps_the_old_one() -> None:
    remote = FakeRemote()
    remote.server.files["/home/a/f"] = bytearray(b"old")

    async def broken() -> AsyncIterator[bytes]:
        yield b"partial"
        raise BadRequest("Invalid multipart data")

    with pytest.raises(BadRequest):
        await upload(remote, "/home/a", "f", broken(), limit=100)
    assert remote.server.files == {"/home/a/f": bytearray(b"old")}


async def test_a_failing_write_is_mapped_and_cleaned_up() -> None:
    remote = FakeRemote()
    remote.server.fail_write = True
    with pytest.raises(Exception, match="/home/a/f: Disk quota exceeded"):
        await upload(remote, "/home/a", "f", _chunks(b"data"), limit=100)
    assert remote.server.files == {}


async def test_upload_onto_a_directory_is_400() -> None:
    remote = FakeRemote()
    remote.server.dirs.add("/home/a/d")
    with pytest.raises(BadRequest, match="/home/a/d: Is a directory"):
        await upload(remote, "/home/a", "d", _chunks(b"x"), limit=100)


async def test_a_directory_made_at_the_target_during_the_upload_is_400() -> None:
    remote = FakeRemote()

    async def racing() -> AsyncIterator[bytes]:
        yield b"x"
        remote.server.dirs.add("/home/a/d")  # someone's mkdir, after the upload's check

    with pytest.raises(BadRequest, match="/home/a/d: Is a directory"):
        await upload(remote, "/home/a", "d", racing(), limit=100)
    assert remote.server.files == {}  # and the temporary file is gone


async def test_upload_into_a_missing_directory_is_404_naming_it() -> None:
    with pytest.raises(NotFound) as excinfo:
        await upload(FakeRemote(), "/home/a/nope", "f", _chunks(b"x"), limit=100)
    # FirecREST v2's words: its login shell fails to open the target for `base64 -d > path`.
    assert excinfo.value.message.endswith(
        "error message:bash: line 1: /home/a/nope/f: No such file or directory"
    )


async def test_upload_into_a_forbidden_directory_is_403() -> None:
    with pytest.raises(Forbidden):
        await upload(FakeRemote(), "/home/b", "f", _chunks(b"x"), limit=100)


# --------------------------------------------------------------------------------- download


async def test_download_streams_exactly_the_size_it_announced() -> None:
    remote = FakeRemote()
    data = bytes(range(256)) * 40  # 10 reads of the fake's 1000-byte maximum, plus a part
    remote.server.files["/home/a/f"] = bytearray(data)
    source = await open_download(remote, "/home/a/f", limit=len(data))
    assert source.size == len(data)
    remote.server.files["/home/a/f"] += b"grown meanwhile"
    chunks = [chunk async for chunk in source.chunks()]
    assert b"".join(chunks) == data
    # One SFTP request per piece of the server's maximum read length, each asked once.
    assert [len(c) for c in chunks] == [1000] * 10 + [240]
    assert sorted(remote.server.reads) == [(i * 1000, 1000) for i in range(10)] + [(10000, 240)]
    assert remote.sessions_open == 1
    await source.aclose()
    assert remote.sessions_open == 0
    assert remote.server.opened[-1].closed


async def test_download_keeps_a_bounded_number_of_reads_in_flight() -> None:
    remote = FakeRemote()
    remote.server.files["/home/a/f"] = bytearray(b"x" * 100_000)
    source = await open_download(remote, "/home/a/f", limit=None)
    chunks = source.chunks()
    assert await anext(chunks) == b"x" * 1000
    # The first read answered; the next ones are asked for while this one is sent.
    assert len(remote.server.reads) == READS_IN_FLIGHT
    assert len(source._reading) == READS_IN_FLIGHT
    await chunks.aclose()
    await source.aclose()


async def test_a_short_read_is_continued_where_it_ended() -> None:
    remote = FakeRemote()
    data = bytes(range(256)) * 20
    remote.server.files["/home/a/f"] = bytearray(data)
    remote.server.max_answer = 300  # answers shorter than the 1000 bytes asked for
    source = await open_download(remote, "/home/a/f", limit=None)
    assert b"".join([chunk async for chunk in source.chunks()]) == data
    await source.aclose()


async def test_a_byte_range_reads_only_that_range() -> None:
    remote = FakeRemote()
    data = bytes(range(256)) * 20
    remote.server.files["/home/a/f"] = bytearray(data)
    source = await open_download(remote, "/home/a/f", limit=None, range_header="bytes=1500-3999")
    assert b"".join([chunk async for chunk in source.chunks()]) == data[1500:4000]
    assert min(offset for offset, _ in remote.server.reads) == 1500
    assert max(offset + size for offset, size in remote.server.reads) == 4000
    await source.aclose()


async def test_an_abandoned_download_finishes_its_reads_before_closing() -> None:
    remote = FakeRemote()
    remote.server.files["/home/a/f"] = bytearray(b"x" * 100_000)
    source = await open_download(remote, "/home/a/f", limit=None)
    chunks = source.chunks()
    assert await anext(chunks) == b"x" * 1000  # the next ones are being read meanwhile
    await source.aclose()  # the client went away
    assert not source._reading
    assert remote.server.opened[-1].closed
    assert remote.sessions_open == 0
    await chunks.aclose()


async def test_download_of_a_file_that_shrank_ends_early() -> None:
    remote = FakeRemote()
    remote.server.files["/home/a/f"] = bytearray(b"x" * 5000)
    source = await open_download(remote, "/home/a/f", limit=10_000)
    del remote.server.files["/home/a/f"][2500:]
    assert b"".join([chunk async for chunk in source.chunks()]) == b"x" * 2500
    await source.aclose()


@pytest.mark.parametrize(
    ("path", "error", "message"),
    [
        ("/home/a/missing", NotFound, "base64: /home/a/missing: No such file or directory"),
        ("/home/b/f", Forbidden, "base64: /home/b/f: Permission denied"),
        ("/home/a", BadRequest, "base64: read error: Is a directory"),
        ("/home/a/big", PayloadTooLarge, "larger than 10 bytes"),
    ],
)
async def test_download_refusals_release_the_session(path, error, message) -> None:
    remote = FakeRemote()
    remote.server.files["/home/a/big"] = bytearray(b"x" * 11)
    with pytest.raises(error, match=message):
        await open_download(remote, path, limit=10)
    assert remote.sessions_open == 0
    assert all(f.closed for f in remote.server.opened)


# ----------------------------------------------------------------- special files and deadlines


@pytest.mark.parametrize(
    ("mode", "kind"),
    [
        (stat_module.S_IFIFO, "named pipe"),
        (stat_module.S_IFCHR, "character device"),
        (stat_module.S_IFBLK, "block device"),
        (stat_module.S_IFSOCK, "socket"),
    ],
)
async def test_download_of_a_special_file_is_400_without_opening_it(mode, kind) -> None:
    remote = FakeRemote()
    remote.server.specials["/home/a/special"] = mode
    with pytest.raises(BadRequest, match=f"/home/a/special: Not a regular file .*{kind}"):
        await open_download(remote, "/home/a/special", limit=None)
    assert remote.server.requests == ["stat"]  # the open, which would hang, never happens
    assert remote.sessions_open == 0


async def test_download_makes_as_many_requests_before_reading_as_before_the_check() -> None:
    # Before: open + fstat, then the reads. Now: stat + open; the stat's size is the size.
    remote = FakeRemote()
    remote.server.files["/home/a/f"] = bytearray(b"x" * 2500)
    source = await open_download(remote, "/home/a/f", limit=None)
    assert b"".join([chunk async for chunk in source.chunks()]) == b"x" * 2500
    await source.aclose()
    assert remote.server.requests == ["stat", "open", "read", "read", "read", "close"]


async def test_a_read_that_is_never_answered_is_408_and_closes_the_channel() -> None:
    remote = FakeRemote()
    remote.sftp_deadline = 0.05
    remote.server.files["/home/a/f"] = bytearray(b"x" * 5000)
    source = await open_download(remote, "/home/a/f", limit=None)
    remote.server.hang_reads = True
    with pytest.raises(RequestTimeout, match="/home/a/f"):
        _ = [chunk async for chunk in source.chunks()]
    await source.aclose()
    assert remote.timeouts_seen == 1
    assert remote.sessions_open == 0
    assert not source._reading


async def test_a_write_that_is_never_answered_is_408_and_closes_the_channel() -> None:
    remote = FakeRemote()
    remote.sftp_deadline = 0.05
    remote.server.hang_writes = True
    with pytest.raises(RequestTimeout, match="/home/a/f"):
        await upload(remote, "/home/a", "f", _chunks(b"x" * 5000), limit=10_000)
    assert remote.timeouts_seen == 1
    assert remote.sessions_open == 0
    assert "/home/a/f" not in remote.server.files
    # The partial file is removed through a new channel once the hung one is closed.
    assert remote.server.requests[-1] == "remove"
    assert not [path for path in remote.server.files if ".fcpart-" in path]
