"""``save_chunks``: a streamed body written to disk in batches, off the event loop."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from aiida_firecrest.client import localfiles
from aiida_firecrest.client.localfiles import WRITE_BATCH, save_chunks


async def pieces(data: bytes, size: int, fail_after: int | None = None) -> AsyncIterator[bytes]:
    for n, start in enumerate(range(0, len(data), size)):
        if fail_after is not None and n == fail_after:
            raise ConnectionResetError("the body broke off")
        yield data[start : start + size]
        await asyncio.sleep(0)


async def test_pieces_land_in_order_and_the_count_is_returned(tmp_path: Path) -> None:
    data = os.urandom(3 * WRITE_BATCH + 12345)
    written = await save_chunks(pieces(data, 65536), tmp_path / "out")
    assert written == len(data)
    assert (tmp_path / "out").read_bytes() == data


async def test_no_pieces_leave_an_empty_file_and_replace_an_old_one(tmp_path: Path) -> None:
    target = tmp_path / "out"
    target.write_bytes(b"old contents")
    assert await save_chunks(pieces(b"", 10), target) == 0
    assert target.read_bytes() == b""


async def test_writes_are_batched_and_leave_the_event_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One worker-thread call per batch of at least WRITE_BATCH bytes, not one per piece."""
    calls: list[tuple[str, int]] = []
    real = asyncio.to_thread

    async def counting(function, *args):
        if getattr(function, "__name__", "") == "writelines":
            calls.append((threading.current_thread().name, sum(map(len, args[0]))))
        return await real(function, *args)

    monkeypatch.setattr(localfiles.asyncio, "to_thread", counting)
    data = os.urandom(4 * WRITE_BATCH)
    await save_chunks(pieces(data, 65536), tmp_path / "out")
    assert [size for _, size in calls] == [WRITE_BATCH] * 4
    assert (tmp_path / "out").read_bytes() == data


async def test_a_broken_body_raises_after_the_write_in_flight_ends(tmp_path: Path) -> None:
    data = os.urandom(3 * WRITE_BATCH)
    with pytest.raises(ConnectionResetError):
        await save_chunks(pieces(data, 65536, fail_after=40), tmp_path / "out")
    # Whatever was written before the break is on disk, in order, and the file is closed.
    saved = (tmp_path / "out").read_bytes()
    assert saved == data[: len(saved)]
    assert len(saved) == 2 * WRITE_BATCH
