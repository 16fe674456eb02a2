"""The refresh gate: one fetch for every waiter, a floor between fetches, and a fetch that
survives the cancellation of the caller that started it."""

from __future__ import annotations

import asyncio

import pytest

from firecrest_server.auth.refresh import RefreshGate


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_waiters_share_one_fetch() -> None:
    gate = RefreshGate(30, Clock())
    release = asyncio.Event()
    calls: list[float] = []

    async def fetch(now: float) -> None:
        calls.append(now)
        await release.wait()

    waiters = [asyncio.create_task(gate.refresh(fetch)) for _ in range(50)]
    await asyncio.sleep(0)
    assert gate.running
    release.set()
    await asyncio.gather(*waiters)
    assert calls == [1000.0]
    assert not gate.running


async def test_the_floor_refuses_a_second_fetch_until_it_has_passed() -> None:
    clock = Clock()
    gate = RefreshGate(30, clock)
    calls: list[float] = []

    async def fetch(now: float) -> None:
        calls.append(now)

    await gate.refresh(fetch)
    clock.now += 29
    await gate.refresh(fetch)
    assert calls == [1000.0]
    clock.now += 1
    await gate.refresh(fetch)
    assert calls == [1000.0, 1030.0]


async def test_cancelling_the_first_caller_does_not_cancel_the_fetch() -> None:
    gate = RefreshGate(30, Clock())
    release = asyncio.Event()
    fetched: list[str] = []

    async def fetch(now: float) -> None:
        await release.wait()
        fetched.append("keys")

    first = asyncio.create_task(gate.refresh(fetch))
    await asyncio.sleep(0)
    second = asyncio.create_task(gate.refresh(fetch))
    await asyncio.sleep(0)
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    release.set()
    await second
    assert fetched == ["keys"]  # the waiter got the keys the cancelled caller had asked for


async def test_a_failing_fetch_reaches_every_waiter_and_frees_the_gate() -> None:
    gate = RefreshGate(0, Clock())
    release = asyncio.Event()

    async def fetch(now: float) -> None:
        await release.wait()
        raise RuntimeError("provider said no")

    waiters = [asyncio.create_task(gate.refresh(fetch)) for _ in range(3)]
    await asyncio.sleep(0)
    release.set()
    results = await asyncio.gather(*waiters, return_exceptions=True)
    assert all(isinstance(r, RuntimeError) for r in results)
    assert not gate.running
