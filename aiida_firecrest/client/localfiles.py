"""Local file I/O for the client, off the event loop.

Disk reads and writes can stall (network file systems, a busy disk), so each one runs in a worker
thread; the event loop only awaits them.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import BinaryIO

CHUNK_SIZE = 1024 * 1024


async def read_bytes(path: str | Path) -> bytes:
    return await asyncio.to_thread(Path(path).read_bytes)


async def file_size(path: str | Path) -> int:
    return (await asyncio.to_thread(os.stat, path)).st_size


async def sha256_of(path: str | Path) -> str:
    def digest() -> str:
        h = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(CHUNK_SIZE), b""):
                h.update(block)
        return h.hexdigest()

    return await asyncio.to_thread(digest)


async def file_range(
    path: str | Path, start: int, length: int, chunk_size: int = CHUNK_SIZE
) -> AsyncIterator[bytes]:
    """``length`` bytes of ``path`` from ``start``, in chunks (for streaming uploads)."""
    handle: BinaryIO = await asyncio.to_thread(open, path, "rb")
    try:
        await asyncio.to_thread(handle.seek, start)
        remaining = length
        while remaining > 0:
            block = await asyncio.to_thread(handle.read, min(chunk_size, remaining))
            if not block:
                raise OSError(f"{path} shrank while it was being uploaded")
            remaining -= len(block)
            yield block
    finally:
        await asyncio.to_thread(handle.close)


class AsyncFileWriter:
    """Writes chunks to a local file from async code; the file is created (or truncated) on
    entry, so a 0-byte download still leaves a 0-byte file."""

    def __init__(self, path: str | Path) -> None:
        self._path = path
        self._handle: BinaryIO | None = None

    async def __aenter__(self) -> AsyncFileWriter:
        self._handle = await asyncio.to_thread(open, self._path, "wb")
        return self

    async def write(self, chunk: bytes) -> None:
        assert self._handle is not None
        await asyncio.to_thread(self._handle.write, chunk)

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._handle is not None
        await asyncio.to_thread(self._handle.close)


@contextlib.asynccontextmanager
async def scratch_directory() -> AsyncIterator[Path]:
    """A private local temporary directory, removed afterwards."""
    path = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix="aiida-firecrest-"))
    try:
        yield path
    finally:
        await asyncio.to_thread(shutil.rmtree, path, True)
