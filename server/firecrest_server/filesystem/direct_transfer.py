"""Small-file upload and download, streamed through SFTP with bounded memory.

An upload is written to a temporary name in the target directory and renamed into place when
complete (OpenSSH's posix-rename: an existing file is replaced atomically), so readers never see
half a file and a failed upload leaves nothing behind. The upload keeps one batch of writes
in flight on the SFTP side while the next batch arrives over HTTP (write-behind): at most two
batches in memory. A download keeps a few SFTP read requests outstanding and sends each answer
on as it arrives, in file order (read-ahead): at most READS_IN_FLIGHT answers in memory. Both
are limited to ``data_operation.max_ops_file_size``; larger files go through transfer jobs.

Every SFTP request is bounded by the system's SFTP deadline (``Remote.sftp_deadline``), each
on its own: a transfer may take long, but no single request may hang it. A download stats the
path before it opens it, so a FIFO, socket or device is refused (400) without being opened.
"""

from __future__ import annotations

import asyncio
import contextlib
import posixpath
import secrets
import stat as stat_module
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import asyncssh

from ..cluster import CheckedPath, Remote, sftp_request
from ..cluster.failures import file_error, sftp_error
from ..cluster.sftp import is_dir, lstat_or_none
from ..diagnostics import Failure
from ..errors import BadRequest, PayloadTooLarge, RequestTimeout
from ..ssh.pool import ConnectionLost
from .ranges import parse_range
from .special import refuse_special

# One SFTP request per REQUEST_SIZE bytes (or the server's smaller maximum: 255 KiB for
# OpenSSH), several outstanding at explicit offsets, each sent or answered as it comes.
# Measured against asyncssh's own parallel reads and writes of 1 MiB batches, which split a
# batch into the same requests but copy every byte once more to reassemble or slice it: ~10-20 %
# less server CPU per GiB each way (docs/benchmarks.md).
REQUEST_SIZE = 255 * 1024
READS_IN_FLIGHT = 8
WRITES_IN_FLIGHT = 4
# NAME_MAX on Linux file systems, in bytes.
MAX_NAME_BYTES = 255
_TEMP_SUFFIX = ".fcpart-"


def check_file_name(name: str | None) -> str:
    """``name`` if it names a file directly inside a directory, else 400."""
    if not name:
        raise BadRequest("The uploaded file needs a file name")
    if "/" in name or "\x00" in name or name in (".", ".."):
        raise BadRequest(f"Invalid file name {name!r}: give a plain name, not a path")
    if len(name.encode("utf-8", errors="surrogateescape")) > MAX_NAME_BYTES:
        raise BadRequest(f"Invalid file name: longer than {MAX_NAME_BYTES} bytes")
    return name


def temporary_name(name: str) -> str:
    """A hidden name next to the target that cannot collide and stays within NAME_MAX."""
    return f".{name[:40]}{_TEMP_SUFFIX}{secrets.token_hex(8)}"


def too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"File is larger than {limit} bytes, the limit for direct transfers; "
        "use a transfer job (/filesystem/<system>/transfer) for large files"
    )


# ------------------------------------------------------------------------------------ upload


async def _copy(
    file: asyncssh.SFTPClientFile,
    chunks: AsyncIterable[bytes],
    limit: int,
    write_size: int,
    deadline: float,
    path: str,
) -> int:
    """Write ``chunks`` as requests of ``write_size`` bytes at explicit offsets, up to
    WRITES_IN_FLIGHT at once, while the next bytes arrive (write-behind). Each write must be
    answered within ``deadline`` seconds of being waited for."""
    size = 0  # received so far
    handed_on = 0  # of those, given to write requests
    buffer = bytearray()
    writing: deque[asyncio.Future[int]] = deque()

    async def write(piece: bytes) -> None:
        nonlocal handed_on
        if len(writing) >= WRITES_IN_FLIGHT:
            await sftp_request(writing.popleft(), deadline, path)
        writing.append(asyncio.ensure_future(file.write(piece, handed_on)))
        handed_on += len(piece)

    try:
        async for chunk in chunks:
            size += len(chunk)
            if size > limit:
                raise too_large(limit)
            buffer += chunk
            while len(buffer) >= write_size:
                with memoryview(buffer) as view:
                    piece = bytes(view[:write_size])
                del buffer[:write_size]
                await write(piece)
        if buffer:
            await write(bytes(buffer))
        while writing:
            await sftp_request(writing.popleft(), deadline, path)
    finally:
        # Never leave a write in flight: the caller closes and removes the file next.
        while writing:
            await _settle(writing.popleft(), deadline)
    return size


async def _settle(future: asyncio.Future[Any], deadline: float) -> None:
    """Wait for ``future`` to finish without raising its error (the one that matters is
    already propagating), and mark that error retrieved; cancel it if it is not answered
    within ``deadline`` seconds."""
    await asyncio.wait([future], timeout=deadline)
    if not future.done():
        future.cancel()
        await asyncio.wait([future])
    if not future.cancelled():
        future.exception()


async def _replace(sftp: asyncssh.SFTPClient, source: str, target: str) -> None:
    try:
        await sftp.posix_rename(source, target)
    except asyncssh.SFTPFailure:
        # SFTP's generic failure says nothing more; the usual cause is a directory that
        # appeared at the target while the upload ran (checked before it started).
        current = await lstat_or_none(sftp, target)
        if current is not None and is_dir(current):
            raise file_error("upload", Failure.IS_A_DIRECTORY, target) from None
        raise
    except asyncssh.SFTPOpUnsupported:
        # A server without the posix-rename extension: plain SFTP rename refuses to overwrite.
        with contextlib.suppress(asyncssh.SFTPNoSuchFile):
            await sftp.remove(target)
        await sftp.rename(source, target)


async def upload(
    remote: Remote,
    directory: CheckedPath,
    name: str,
    chunks: AsyncIterable[bytes],
    limit: int,
) -> int:
    """Write ``chunks`` to ``directory/name``, replacing an existing file; returns the size."""
    target = posixpath.join(directory, check_file_name(name))
    temp = posixpath.join(directory, temporary_name(name))
    try:
        return await _upload(remote, directory, target, temp, chunks, limit)
    except RequestTimeout:
        # The hung channel is closed by now: remove the partial file through a new one.
        with contextlib.suppress(Exception):
            await asyncio.shield(_remove_quietly(remote, temp))
        raise


async def _remove_quietly(remote: Remote, path: str) -> None:
    async with remote.sftp_session() as sftp:
        with contextlib.suppress(asyncssh.SFTPNoSuchFile):
            await sftp_request(sftp.remove(path), remote.sftp_deadline, path)


async def _upload(
    remote: Remote,
    directory: CheckedPath,
    target: str,
    temp: str,
    chunks: AsyncIterable[bytes],
    limit: int,
) -> int:
    deadline = remote.sftp_deadline
    async with remote.sftp_session() as sftp:
        try:
            existing = await sftp_request(lstat_or_none(sftp, target), deadline, target)
        except asyncssh.SFTPError as exc:
            raise sftp_error(exc, target, "upload") from None
        if existing is not None and is_dir(existing):
            raise file_error("upload", Failure.IS_A_DIRECTORY, target)
        flags = asyncssh.FXF_WRITE | asyncssh.FXF_CREAT | asyncssh.FXF_EXCL
        try:
            file = await sftp_request(
                sftp.open(temp, flags, encoding=None, block_size=0), deadline, directory
            )
        except asyncssh.SFTPError as exc:
            raise sftp_error(exc, target, "upload") from None
        try:
            try:
                write_size = _request_size(sftp.limits.max_write_len)
                size = await _copy(file, chunks, limit, write_size, deadline, target)
                if existing is not None and stat_module.S_ISREG(existing.permissions or 0):
                    # Overwriting keeps the file's permissions, as writing into it would.
                    mode = stat_module.S_IMODE(existing.permissions or 0)
                    await sftp_request(file.chmod(mode), deadline, target)
            finally:
                await sftp_request(file.close(), deadline, target)
            await sftp_request(_replace(sftp, temp, target), deadline, target)
        except BaseException as exc:
            # Also on cancellation or a client that went away: never leave the partial file.
            # After a timeout the channel is hung and the removal would wait behind it: it is
            # made through a new channel once this one is closed (``upload``).
            if not isinstance(exc, RequestTimeout):
                with contextlib.suppress(Exception):
                    await asyncio.shield(sftp_request(sftp.remove(temp), deadline, temp))
            if isinstance(exc, asyncssh.SFTPError):
                raise sftp_error(exc, target, "upload") from None
            raise
    return size


# ---------------------------------------------------------------------------------- download


@dataclass
class Download:
    """An open remote file: its size, its bytes in chunks, and ``aclose`` to release it."""

    path: str
    size: int  # of the whole file
    _file: asyncssh.SFTPClientFile
    _resources: contextlib.AsyncExitStack
    # The inclusive byte range to send (HTTP Range); None for the whole file.
    byte_range: tuple[int, int] | None = None
    # Bytes per SFTP read request: the server's maximum read length.
    read_size: int = REQUEST_SIZE
    # Seconds each read may take once waited for (Remote.sftp_deadline).
    deadline: float = 40.0
    # The reads in flight, in file order: (offset, size, the read).
    _reading: deque[tuple[int, int, asyncio.Future[bytes]]] = field(
        default_factory=deque, repr=False
    )
    _next: int = field(default=0, repr=False)
    _timed_out: RequestTimeout | None = field(default=None, repr=False)

    @property
    def length(self) -> int:
        if self.byte_range is None:
            return self.size
        return self.byte_range[1] - self.byte_range[0] + 1

    async def chunks(self) -> AsyncIterator[bytes]:
        # Exactly `length` bytes, the Content-Length already promised, even if the file grows.
        self._next = self.byte_range[0] if self.byte_range else 0
        end = self._next + self.length
        self._read_ahead(end)
        while self._reading:
            offset, size, reading = self._reading.popleft()
            try:
                data = await sftp_request(reading, self.deadline, self.path)
            except RequestTimeout as exc:
                self._timed_out = exc
                raise
            if not data:  # the file shrank meanwhile: the client sees a short body
                return
            if len(data) < size:
                # A short read (the file shrank, or a server that answers less than asked):
                # the reads after it started at the wrong offsets; ask again from here.
                await self._settle_reads()
                self._next = offset + len(data)
            self._read_ahead(end)
            yield data

    def _read_ahead(self, end: int) -> None:
        while self._next < end and len(self._reading) < READS_IN_FLIGHT:
            size = min(self.read_size, end - self._next)
            read = asyncio.ensure_future(self._file.read(size, self._next))
            # asyncssh types read() as an unbound AnyStr; a file opened "rb" reads bytes.
            self._reading.append((self._next, size, read))  # type: ignore[arg-type]
            self._next += size

    async def _settle_reads(self) -> None:
        # After a timeout the channel is hung: the reads behind it would not be answered.
        deadline = 0 if self._timed_out is not None else self.deadline
        while self._reading:
            await _settle(self._reading.popleft()[2], deadline)

    async def aclose(self) -> None:
        # A client that went away leaves reads in flight: let them end before the file closes
        # under them.
        await self._settle_reads()
        # Closing fails only when the connection died; the pool has discarded it by then, and
        # the response is over: there is nobody left to tell. After a read timed out, the
        # timeout goes through the SFTP session, which closes the hung channel.
        with contextlib.suppress(asyncssh.Error, OSError, ConnectionLost, RequestTimeout):
            if self._timed_out is None:
                try:
                    await sftp_request(self._file.close(), self.deadline, self.path)
                except RequestTimeout as exc:
                    self._timed_out = exc
            if self._timed_out is not None:
                timed_out = self._timed_out
                await self._resources.__aexit__(type(timed_out), timed_out, timed_out.__traceback__)
            else:
                await self._resources.aclose()


def _request_size(advertised: int) -> int:
    """REQUEST_SIZE, or the server's smaller maximum read or write length."""
    return min(advertised, REQUEST_SIZE) if advertised > 0 else REQUEST_SIZE


async def open_download(
    remote: Remote, path: CheckedPath, limit: int | None, range_header: str | None = None
) -> Download:
    """Open ``path`` for reading; 404/403 as usual, 400 for a directory, a FIFO, a socket or
    a device, 413 above ``limit`` (None: no limit), 416 for a range outside the file.

    Two SFTP requests before the reads, as before the special-file check: stat (which follows
    symlinks; it says what the path is and its size) and open, only if the stat allowed it.
    The SFTP channel slot stays held until ``aclose``: the caller must call it.
    """
    deadline = remote.sftp_deadline
    resources = contextlib.AsyncExitStack()
    try:
        sftp = await resources.enter_async_context(remote.sftp_session())
        try:
            attrs = await sftp_request(sftp.stat(path), deadline, path)
            refuse_special(path, attrs.permissions)
            if is_dir(attrs):
                raise file_error("download", Failure.IS_A_DIRECTORY, path)
            size = attrs.size or 0
            if limit is not None and size > limit:
                raise too_large(limit)
            byte_range = parse_range(range_header, size)
            file = await sftp_request(
                sftp.open(path, "rb", encoding=None, block_size=0), deadline, path
            )
        except asyncssh.SFTPError as exc:
            raise sftp_error(exc, path, "download") from None
        return Download(
            path,
            size,
            file,
            resources,
            byte_range,
            _request_size(sftp.limits.max_read_len),
            deadline,
        )
    except BaseException as exc:
        # A timeout passes through the session, which closes the hung channel.
        with contextlib.suppress(RequestTimeout):
            await resources.__aexit__(type(exc), exc, exc.__traceback__)
        raise
