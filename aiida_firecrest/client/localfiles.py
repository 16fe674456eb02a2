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
from collections.abc import AsyncIterable, AsyncIterator
from pathlib import Path
from typing import BinaryIO

CHUNK_SIZE = 1024 * 1024
# Received bytes gathered before they go to disk in one worker-thread call. httpx hands a body
# over in pieces of at most 64 KiB: one hand-off per batch, not per piece, and no re-chunking
# by httpx (which copies every byte twice more); docs/benchmarks.md, "Downloads through the
# plugin".
WRITE_BATCH = 1024 * 1024


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


async def save_chunks(chunks: AsyncIterable[bytes], path: str | Path) -> int:
    """Write ``chunks`` to ``path`` as they arrive; returns how many bytes were written.

    The file is created (or truncated) first, so a 0-byte body still leaves a 0-byte file.
    Pieces are gathered into batches of at least WRITE_BATCH bytes; each batch is written in a
    worker thread while the next one gathers (write-behind), so at most two batches (plus one
    piece) are held, whatever the file's size. The pieces are handed to ``writelines`` as they
    came: never joined into a new buffer.
    """
    handle: BinaryIO = await asyncio.to_thread(open, path, "wb")
    writing: asyncio.Future[None] | None = None
    batch: list[bytes] = []
    gathered = written = 0
    try:
        async for chunk in chunks:
            batch.append(chunk)
            gathered += len(chunk)
            if gathered >= WRITE_BATCH:
                if writing is not None:
                    await writing
                writing = asyncio.ensure_future(asyncio.to_thread(handle.writelines, batch))
                written += gathered
                batch, gathered = [], 0
        if writing is not None:
            await writing
        if batch:
            await asyncio.to_thread(handle.writelines, batch)
            written += gathered
    finally:
        if writing is not None:
            # After an error elsewhere: let the write in flight end before the file closes.
            await asyncio.wait([writing])
            if not writing.cancelled():
                writing.exception()  # seen: the error that matters is already propagating
        await asyncio.to_thread(handle.close)
    return written


@contextlib.asynccontextmanager
async def scratch_directory() -> AsyncIterator[Path]:
    """A private local temporary directory, removed afterwards."""
    path = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix="aiida-firecrest-"))
    try:
        yield path
    finally:
        await asyncio.to_thread(shutil.rmtree, path, True)
