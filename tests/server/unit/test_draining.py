"""The SIGTERM drain: health fails first, the server's own stop comes later, once."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
from collections.abc import Iterator

import pytest

from firecrest_server.draining import Drain


@pytest.fixture
def server_handler() -> Iterator[list[int]]:
    """A Python SIGTERM handler standing in for uvicorn's; records the signals it is handed."""
    handed: list[int] = []
    original = signal.signal(signal.SIGTERM, lambda signum, _frame: handed.append(signum))
    try:
        yield handed
    finally:
        signal.signal(signal.SIGTERM, original)


async def _until(condition, limit: int = 500) -> None:
    for _ in range(limit):
        if condition():
            return
        await asyncio.sleep(0.01)


async def test_sigterm_fails_health_first_and_hands_over_later(server_handler) -> None:
    drain = Drain(drain_seconds=0.2)
    assert drain.install(asyncio.get_running_loop())
    os.kill(os.getpid(), signal.SIGTERM)
    await asyncio.sleep(0)  # the Python-level handler runs between bytecodes of this thread
    assert drain.draining
    assert server_handler == []  # still serving while the balancer notices
    await _until(lambda: server_handler)
    assert server_handler == [signal.SIGTERM]
    drain.uninstall()
    assert signal.getsignal(signal.SIGTERM) != drain._on_sigterm


async def test_repeated_sigterm_keeps_draining_and_hands_over_once(server_handler) -> None:
    # uvicorn's supervisor and a signal to the whole process group both reach a worker.
    drain = Drain(drain_seconds=0.3)
    drain.install(asyncio.get_running_loop())
    for _ in range(3):
        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.sleep(0)
    assert drain.draining
    assert server_handler == []
    await _until(lambda: server_handler)
    await asyncio.sleep(0.2)
    assert server_handler == [signal.SIGTERM]
    drain.uninstall()


async def test_no_drain_hands_over_at_once(server_handler) -> None:
    drain = Drain(drain_seconds=0)
    drain.install(asyncio.get_running_loop())
    os.kill(os.getpid(), signal.SIGTERM)
    await asyncio.sleep(0)
    assert drain.draining
    assert server_handler == [signal.SIGTERM]
    drain.uninstall()


async def test_not_installed_over_a_default_handler_or_off_the_main_thread() -> None:
    loop = asyncio.get_running_loop()
    original = signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        assert not Drain(1).install(loop)
        signal.signal(signal.SIGTERM, lambda *_: None)
        results: list[bool] = []
        thread = threading.Thread(target=lambda: results.append(Drain(1).install(loop)))
        thread.start()
        thread.join()
        assert results == [False]
    finally:
        signal.signal(signal.SIGTERM, original)
