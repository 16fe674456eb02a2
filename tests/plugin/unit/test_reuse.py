"""What a daemon worker keeps between transport opens (aiida_firecrest/reuse.py)."""

from __future__ import annotations

import asyncio

import pytest

from aiida_firecrest import reuse
from aiida_firecrest.client import SystemInfo
from aiida_firecrest.options import TransportSettings


def _settings(**changes: str) -> TransportSettings:
    values = {"url": "https://api.example", "compute_resource": "cluster", "static_token": "t"}
    return TransportSettings(**{**values, **changes})


def _info() -> SystemInfo:
    return SystemInfo.from_wire({"name": "cluster", "server": {"capabilities": ["x"]}})


async def test_one_entry_per_settings_in_a_loop() -> None:
    first = reuse.reuse_for(_settings())
    assert reuse.reuse_for(_settings()) is first
    assert reuse.reuse_for(_settings(compute_resource="other")) is not first
    assert reuse.reuse_for(_settings(static_token="another user's")) is not first


def test_each_loop_has_its_own_entries() -> None:
    async def entry() -> reuse.ComputerReuse:
        return reuse.reuse_for(_settings())

    # Loops of our own, run without becoming the thread's current loop: asyncio.run would
    # leave none behind, which pytest-asyncio < 1.0 (our floor is 0.26) needs for later tests.
    first, second = asyncio.new_event_loop(), asyncio.new_event_loop()
    try:
        assert first.run_until_complete(entry()) is not second.run_until_complete(entry())
        assert first.run_until_complete(entry()) is first.run_until_complete(entry())
    finally:
        first.close()
        second.close()


async def test_kept_values_expire(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    monkeypatch.setattr(reuse.time, "monotonic", lambda: now[0])
    entry = reuse.reuse_for(_settings(url="https://expiry.example"))
    assert entry.system_info() is None
    assert entry.username() is None
    info = _info()
    entry.remember("system_info", info)
    entry.remember("username", "alice")
    now[0] += reuse.REUSE_SECONDS
    assert entry.system_info() is info
    assert entry.username() == "alice"
    now[0] += 1
    assert entry.system_info() is None
    assert entry.username() is None
