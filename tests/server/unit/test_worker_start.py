"""Workers of one server wait for each other before serving (worker_start.py)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from firecrest_server import worker_start


async def test_a_started_worker_waits_for_its_sibling(tmp_path: Path, monkeypatch) -> None:
    directory = tmp_path / "start"
    directory.mkdir()
    first = asyncio.create_task(worker_start.wait_for_all_workers(directory, 2, timeout=30))
    await asyncio.sleep(0.2)
    assert not first.done(), "the first worker served before the second had started"
    # The second worker is another process: its mark carries its own process id.
    monkeypatch.setattr(worker_start.os, "getpid", lambda: 99999999)
    assert await worker_start.wait_for_all_workers(directory, 2, timeout=30) is True
    assert await asyncio.wait_for(first, 5) is True
    # Removed once every worker had started: a killed server leaves nothing behind.
    assert not directory.exists()


async def test_a_worker_serves_alone_after_the_wait(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="firecrest_server.worker_start"):
        assert await worker_start.wait_for_all_workers(tmp_path, 3, timeout=0.1) is False
    assert "1 of 3 workers started" in caplog.text
    # Left for the late workers (the command line removes it when the server stops).
    assert worker_start.workers_started(tmp_path) == 1


async def test_a_replacement_worker_serves_at_once(tmp_path: Path) -> None:
    # Marks of workers that started before (one of them has died since): no waiting.
    (tmp_path / "worker-1").touch()
    (tmp_path / "worker-2").touch()
    assert await asyncio.wait_for(worker_start.wait_for_all_workers(tmp_path, 2, 30), 1)


async def test_a_worker_whose_directory_is_gone_serves_at_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Removed by the siblings once they had all started, or by a temporary-file cleaner: a
    # worker started later to replace a dead one must serve, not fail its start (uvicorn
    # stops the whole server on a failed start).
    gone = tmp_path / "removed"
    with caplog.at_level(logging.WARNING, logger="firecrest_server.worker_start"):
        assert await asyncio.wait_for(worker_start.wait_for_all_workers(gone, 2, 30), 1)
    assert caplog.text == ""


async def test_a_directory_removed_while_waiting_ends_the_wait(tmp_path: Path) -> None:
    directory = tmp_path / "start"
    directory.mkdir()
    waiting = asyncio.create_task(worker_start.wait_for_all_workers(directory, 2, timeout=30))
    await asyncio.sleep(0.1)
    assert not waiting.done()
    for entry in directory.iterdir():
        entry.unlink()
    directory.rmdir()
    assert await asyncio.wait_for(waiting, 1) is True
