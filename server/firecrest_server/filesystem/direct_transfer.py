"""Small-file upload and download, streamed through SFTP with bounded memory.

An upload is written to a temporary name in the target directory and renamed into place when
complete (OpenSSH's posix-rename: an existing file is replaced atomically), so readers never see
half a file and a failed upload leaves nothing behind. A download is read in chunks as the client
takes them. Both keep one chunk in flight on the SFTP side while the next one travels over HTTP
(write-behind, read-ahead): at most two chunks per transfer in memory. Both are limited to
``data_operation.max_ops_file_size``; larger files go through transfer jobs.
"""

from __future__ import annotations

import asyncio
import contextlib
import posixpath
import secrets
import stat as stat_module
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass, field

import asyncssh

from ..errors import BadRequest, PayloadTooLarge, sftp_error
from ..remote import Remote
from ..ssh.pool import ConnectionLost
from .ranges import parse_range

# Bytes per SFTP write or read request batch; asyncssh splits these into parallel requests
# (of the server's maximum read/write length, 255 KiB for OpenSSH). With one batch in flight
# while the next is received or sent, 1 MiB measured 15-30% more MiB/s and ~15% less server CPU
# per GiB than 256 KiB without overlap (benchmarks/transfer.py, docs/benchmarks.md).
CHUNK = 1024 * 1024
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


def _is_dir(attrs: asyncssh.SFTPAttrs) -> bool:
    return stat_module.S_ISDIR(attrs.permissions or 0)


# ------------------------------------------------------------------------------------ upload


async def _lstat_or_none(sftp: asyncssh.SFTPClient, path: str) -> asyncssh.SFTPAttrs | None:
    try:
        return await sftp.lstat(path)
    except asyncssh.SFTPNoSuchFile:
        return None


async def _copy(file: asyncssh.SFTPClientFile, chunks: AsyncIterable[bytes], limit: int) -> int:
    """Write ``chunks`` in batches of CHUNK; one batch is written while the next arrives."""
    size = 0
    buffer = bytearray()
    # One write at a time, so the file position advances in order (each write continues where
    # the previous one ended).
    writing: asyncio.Future[int] | None = None
    try:
        async for chunk in chunks:
            size += len(chunk)
            if size > limit:
                raise too_large(limit)
            buffer += chunk
            if len(buffer) >= CHUNK:
                if writing is not None:
                    await writing
                writing = asyncio.ensure_future(file.write(bytes(buffer)))
                buffer.clear()
        if writing is not None:
            await writing
            writing = None
        if buffer:
            await file.write(bytes(buffer))
    finally:
        if writing is not None:
            # Never leave a write in flight: the caller closes and removes the file next.
            await _settle(writing)
    return size


async def _settle(future: asyncio.Future) -> None:
    """Wait for ``future`` to finish without raising its error (the one that matters is
    already propagating), and mark that error retrieved."""
    await asyncio.wait([future])
    if not future.cancelled():
        future.exception()


async def _replace(sftp: asyncssh.SFTPClient, source: str, target: str) -> None:
    try:
        await sftp.posix_rename(source, target)
    except asyncssh.SFTPFailure:
        # SFTP's generic failure says nothing more; the usual cause is a directory that
        # appeared at the target while the upload ran (checked before it started).
        current = await _lstat_or_none(sftp, target)
        if current is not None and _is_dir(current):
            raise BadRequest(f"{target}: Is a directory") from None
        raise
    except asyncssh.SFTPOpUnsupported:
        # A server without the posix-rename extension: plain SFTP rename refuses to overwrite.
        with contextlib.suppress(asyncssh.SFTPNoSuchFile):
            await sftp.remove(target)
        await sftp.rename(source, target)


async def upload(
    remote: Remote,
    directory: str,
    name: str,
    chunks: AsyncIterable[bytes],
    limit: int,
) -> int:
    """Write ``chunks`` to ``directory/name``, replacing an existing file; returns the size."""
    target = posixpath.join(directory, check_file_name(name))
    temp = posixpath.join(directory, temporary_name(name))
    async with remote.sftp_session() as sftp:
        try:
            existing = await _lstat_or_none(sftp, target)
        except asyncssh.SFTPError as exc:
            raise sftp_error(exc, target) from None
        if existing is not None and _is_dir(existing):
            raise BadRequest(f"{target}: Is a directory")
        flags = asyncssh.FXF_WRITE | asyncssh.FXF_CREAT | asyncssh.FXF_EXCL
        try:
            file = await sftp.open(temp, flags, encoding=None)
        except asyncssh.SFTPError as exc:
            raise sftp_error(exc, directory) from None
        try:
            async with file:
                size = await _copy(file, chunks, limit)
                if existing is not None and stat_module.S_ISREG(existing.permissions or 0):
                    # Overwriting keeps the file's permissions, as writing into it would.
                    await file.chmod(stat_module.S_IMODE(existing.permissions or 0))
            await _replace(sftp, temp, target)
        except BaseException as exc:
            # Also on cancellation or a client that went away: never leave the partial file.
            with contextlib.suppress(Exception):
                await asyncio.shield(sftp.remove(temp))
            if isinstance(exc, asyncssh.SFTPError):
                raise sftp_error(exc, target) from None
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
    # The read of the next chunk, started while the current one is sent.
    _reading: asyncio.Future[bytes] | None = field(default=None, repr=False)

    @property
    def length(self) -> int:
        if self.byte_range is None:
            return self.size
        return self.byte_range[1] - self.byte_range[0] + 1

    async def chunks(self) -> AsyncIterator[bytes]:
        # Exactly `length` bytes, the Content-Length already promised, even if the file grows.
        offset = self.byte_range[0] if self.byte_range else 0
        end = offset + self.length
        self._read_ahead(offset, end)
        while self._reading is not None:
            data = await self._reading
            self._reading = None
            if not data:  # the file shrank meanwhile: the client sees a short body
                return
            offset += len(data)
            self._read_ahead(offset, end)
            yield data

    def _read_ahead(self, offset: int, end: int) -> None:
        if offset < end:
            read = self._file.read(min(CHUNK, end - offset), offset)
            self._reading = asyncio.ensure_future(read)

    async def aclose(self) -> None:
        if self._reading is not None:
            # A client that went away leaves a read-ahead behind: let it end before the file
            # closes under it.
            await _settle(self._reading)
            self._reading = None
        # Closing fails only when the connection died; the pool has discarded it by then, and
        # the response is over: there is nobody left to tell.
        with contextlib.suppress(asyncssh.Error, OSError, ConnectionLost):
            await self._resources.aclose()


async def open_download(
    remote: Remote, path: str, limit: int | None, range_header: str | None = None
) -> Download:
    """Open ``path`` for reading; 404/403 as usual, 400 for a directory, 413 above ``limit``
    (None: no limit), 416 for a range outside the file.

    The SFTP channel slot stays held until ``aclose``: the caller must call it.
    """
    resources = contextlib.AsyncExitStack()
    try:
        sftp = await resources.enter_async_context(remote.sftp_session())
        try:
            file = await resources.enter_async_context(await sftp.open(path, "rb", encoding=None))
            attrs = await file.stat()
        except asyncssh.SFTPError as exc:
            raise sftp_error(exc, path) from None
        if _is_dir(attrs):
            raise BadRequest(f"{path}: Is a directory")
        size = attrs.size or 0
        if limit is not None and size > limit:
            raise too_large(limit)
        return Download(path, size, file, resources, parse_range(range_header, size))
    except BaseException:
        await resources.aclose()
        raise
