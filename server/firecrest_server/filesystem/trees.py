"""Whole directory trees as one tar stream (an extension beyond FirecREST v2).

AiiDA moves calculation inputs and outputs as trees of many small files; file by file, each
costs a request. Here a tree goes up or down in one request: the HTTP body is streamed straight
into or out of a remote ``tar`` process, in chunks, so memory stays bounded whatever the size.
Modes and symlinks are kept. GNU tar already refuses member names with ``..`` and strips
leading ``/``, so an archive cannot write outside the target directory by name; Unix
permissions on the cluster remain the final guard.
"""

from __future__ import annotations

import asyncio
import contextlib
import stat as stat_module
from collections.abc import AsyncIterator

import asyncssh

from ..errors import BadRequest, command_error
from ..remote import Remote

CHUNK = 256 * 1024
# A tree transfer may take long; it is bounded by this remote timeout, not the command timeout.
TREE_TIMEOUT = 6 * 3600


def download_argv(path: str, dereference: bool) -> list[str]:
    argv = ["tar", "--create", "--file=-", f"--directory={path}"]
    if dereference:
        argv.append("--dereference")
    return [*argv, "--", "."]


def upload_argv(path: str) -> list[str]:
    return [
        "tar",
        "--extract",
        "--file=-",
        f"--directory={path}",
        "--preserve-permissions",
        "--no-same-owner",
        "--delay-directory-restore",
    ]


async def _require_directory(remote: Remote, path: str, readable: bool = False) -> None:
    async def check(sftp: asyncssh.SFTPClient) -> None:
        attrs = await sftp.stat(path)
        if not stat_module.S_ISDIR(attrs.permissions or 0):
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


async def _stderr_tail(process: asyncssh.SSHClientProcess, limit: int = 64 * 1024) -> bytes:
    data = b""
    while chunk := await process.stderr.read(CHUNK):
        data = (data + chunk)[-limit:]
    return data


async def download(remote: Remote, path: str, dereference: bool = False) -> AsyncIterator[bytes]:
    """Check ``path`` first (so errors are proper HTTP errors), then stream its tar archive."""
    await _require_directory(remote, path, readable=True)

    async def stream() -> AsyncIterator[bytes]:
        argv = download_argv(path, dereference)
        async with remote.runner.open_process(argv, timeout=TREE_TIMEOUT) as process:
            process.stdin.write_eof()
            stderr = asyncio.create_task(_stderr_tail(process))
            try:
                while chunk := await process.stdout.read(CHUNK):
                    yield chunk
                completed = await process.wait(check=False)
                errors = await stderr
            finally:
                stderr.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await stderr
        if completed.exit_status != 0:
            message = errors.decode("utf-8", "replace").strip()
            raise TreeStreamFailed(f"tar of {path} failed: {message}")

    return stream()


async def upload(remote: Remote, path: str, body: AsyncIterator[bytes]) -> None:
    await _require_directory(remote, path)
    async with remote.runner.open_process(upload_argv(path), timeout=TREE_TIMEOUT) as process:
        stderr = asyncio.create_task(_stderr_tail(process))
        stdout = asyncio.create_task(process.stdout.read())
        try:
            async for chunk in body:
                if chunk:
                    process.stdin.write(chunk)
                    await process.stdin.drain()  # backpressure: never buffer the whole upload
            process.stdin.write_eof()
            completed = await process.wait(check=False)
        except (BrokenPipeError, asyncssh.Error):
            completed = await process.wait(check=False)
        finally:
            errors = await stderr
            stdout.cancel()
    status = completed.exit_status if completed.exit_status is not None else 1
    if status != 0:
        raise command_error(status, errors.decode("utf-8", "replace"))
