"""Workers of one server wait for each other before serving (worker_start.py)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from firecrest_server import worker_start


async def test_a_started_worker_waits_for_its_sibling(tmp_path: Path, monkeypatch) -> None:
    first = asyncio.create_task(worker_start.wait_for_all_workers(tmp_path, 2, timeout=30))
    await asyncio.sleep(0.2)
    assert not first.done(), "the first worker served before the second had started"
    # The second worker is another process: its mark carries its own process id.
    monkeypatch.setattr(worker_start.os, "getpid", lambda: 99999999)
    assert await worker_start.wait_for_all_workers(tmp_path, 2, timeout=30) == 2
    assert await asyncio.wait_for(first, 5) == 2


async def test_a_worker_serves_alone_after_the_wait(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="firecrest_server.worker_start"):
        assert await worker_start.wait_for_all_workers(tmp_path, 3, timeout=0.1) == 1
    assert "1 of 3 workers started" in caplog.text


async def test_a_replacement_worker_serves_at_once(tmp_path: Path) -> None:
    # The marks of the first start stay: a worker started to replace one that died serves
    # without waiting for anyone.
    (tmp_path / "worker-1").touch()
    (tmp_path / "worker-2").touch()
    assert await asyncio.wait_for(worker_start.wait_for_all_workers(tmp_path, 2, 30), 1) == 3


async def test_a_worker_whose_directory_is_gone_serves_at_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    gone = tmp_path / "removed-by-a-cleaner"
    with caplog.at_level(logging.WARNING, logger="firecrest_server.worker_start"):
        assert await asyncio.wait_for(worker_start.wait_for_all_workers(gone, 2, 30), 1) == 0
    assert "serving at once" in caplog.text


async def test_a_directory_removed_while_waiting_ends_the_wait(tmp_path: Path) -> None:
    directory = tmp_path / "start"
    directory.mkdir()
    waiting = asyncio.create_task(worker_start.wait_for_all_workers(directory, 2, timeout=30))
    await asyncio.sleep(0.1)
    assert not waiting.done()
    for entry in directory.iterdir():
        entry.unlink()
    directory.rmdir()
    assert await asyncio.wait_for(waiting, 1) == 0
