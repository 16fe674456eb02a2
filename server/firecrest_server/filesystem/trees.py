"""Whole directory trees as one tar stream (an extension beyond FirecREST v2).

AiiDA moves calculation inputs and outputs as trees of many small files; file by file, each
costs a request. Here a tree goes up or down in one request: the HTTP body is streamed straight
into or out of a remote ``tar`` process, in chunks, so memory stays bounded whatever the size.
Modes and symlinks are kept. GNU tar already refuses member names with ``..`` and strips
leading ``/``, so an archive cannot write outside the target directory by name; Unix
permissions on the cluster remain the final guard. An upload is unpacked within the system's
``data_operation.max_extract_bytes`` and ``max_extract_files`` (see ``unpacking``): over them,
413 and the directory as it was.

The whole transfer is bounded by TREE_TIMEOUT on the login node; each step of it (a chunk read,
a write drained) by the SFTP deadline, so a stalled file system or login
node ends the request rather than holding it and its channel for hours. tar writes as it reads
and never reads the bytes of FIFOs, sockets or devices in a tree (it archives them as such),
so no member can stall it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable
from typing import TypeVar

import asyncssh

from ..cluster import CheckedPath, Remote
from ..cluster.sftp import is_dir
from ..errors import BadRequest, RequestTimeout
from . import changes
from .unpacking import unpack_argv, unpack_error

T = TypeVar("T")

CHUNK = 256 * 1024
# A tree transfer may take long; it is bounded by this remote timeout, not the command timeout.
TREE_TIMEOUT = 6 * 3600


def download_argv(path: str, dereference: bool) -> list[str]:
    argv = ["tar", "--create", "--file=-", f"--directory={path}"]
    if dereference:
        argv.append("--dereference")
    return [*argv, "--", "."]


def upload_argv(path: str, max_bytes: int, max_files: int) -> list[str]:
    return unpack_argv(
        "-",
        path,
        compression="none",
        max_bytes=max_bytes,
        max_files=max_files,
        keep_permissions=True,
    )


async def _step(step: Awaitable[T], deadline: float, path: str) -> T:
    """One step of a streamed tree transfer; past ``deadline`` seconds without progress, 408."""
    try:
        async with asyncio.timeout(deadline):
            return await step
    except TimeoutError:
        raise RequestTimeout(f"Tree transfer of {path} stalled for {deadline:g} s") from None


async def _require_directory(remote: Remote, path: str, readable: bool = False) -> None:
    async def check(sftp: asyncssh.SFTPClient) -> None:
        attrs = await sftp.stat(path)
        if not is_dir(attrs):
            raise BadRequest(f"{path}: Not a directory")
        if readable:
            # Opening the directory checks read and search permission before any byte of a
            # 200 response is sent.
            async for _entry in sftp.scandir(path):
                break

    await remote.sftp(path, check)


class TreeStreamFailed(Exception):
    """tar failed after the response started: the connection is dropped, so the client sees a
    broken transfer rather than a silently incomplete archive."""


async def _stderr_tail(process: asyncssh.SSHClientProcess[bytes], limit: int = 64 * 1024) -> bytes:
    data = b""
    while chunk := await process.stderr.read(CHUNK):
        data = (data + chunk)[-limit:]
    return data


async def download(
    remote: Remote, path: CheckedPath, dereference: bool = False
) -> AsyncIterator[bytes]:
    """Check ``path`` first (so errors are proper HTTP errors), then stream its tar archive."""
    await _require_directory(remote, path, readable=True)

    deadline = remote.sftp_deadline

    async def stream() -> AsyncIterator[bytes]:
        argv = download_argv(path, dereference)
        async with remote.runner.open_process(argv, timeout=TREE_TIMEOUT) as process:
            process.stdin.write_eof()
            stderr = asyncio.create_task(_stderr_tail(process))
            try:
                try:
                    while chunk := await _step(process.stdout.read(CHUNK), deadline, path):
                        yield chunk
                    completed = await _step(process.wait(check=False), deadline, path)
                    errors = await _step(stderr, deadline, path)
                except RequestTimeout as exc:
                    # The 200 has been sent: only a broken transfer can say so.
                    raise TreeStreamFailed(exc.message) from None
            finally:
                stderr.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await stderr
        if completed.exit_status != 0:
            message = errors.decode("utf-8", "replace").strip()
            raise TreeStreamFailed(f"tar of {path} failed: {message}")

    return stream()


async def upload(
    remote: Remote, path: CheckedPath, body: AsyncIterator[bytes], *, create: bool = False
) -> None:
    if create:
        # As ops/mkdir without parents: 400 "File exists" if anything is there, 404 if the
        # parent is missing.
        await changes.make_directory(remote, path, parent=False)
    else:
        await _require_directory(remote, path)
    limits = remote.system.data_operation
    argv = upload_argv(path, limits.max_extract_bytes, limits.max_extract_files)
    deadline = remote.sftp_deadline
    async with remote.runner.open_process(argv, timeout=TREE_TIMEOUT) as process:
        stderr = asyncio.create_task(_stderr_tail(process))
        stdout = asyncio.create_task(process.stdout.read())
        try:
            try:
                async for chunk in body:
                    if chunk:
                        process.stdin.write(chunk)
                        # backpressure: never buffer the whole upload
                        await _step(process.stdin.drain(), deadline, path)
                process.stdin.write_eof()
            except (BrokenPipeError, asyncssh.Error):
                pass  # the unpacking ended early (a limit, a damaged archive): its status says
            # After the last byte the script still links a whole tree into place and removes
            # its unpacking directory: that can outlast one step's deadline on a large tree,
            # and it is bounded on the login node by TREE_TIMEOUT.
            completed = await _step(process.wait(check=False), TREE_TIMEOUT + deadline, path)
            errors = await _step(asyncio.shield(stderr), deadline, path)
        finally:
            stderr.cancel()
            stdout.cancel()
    status = completed.exit_status if completed.exit_status is not None else 1
    if status != 0:
        raise unpack_error(path, status, errors.decode("utf-8", "replace"))
