"""The pool's bookkeeping under contention, with a fake opener in place of SSH (the real
connections are tested against sshd in tests/server/test_ssh_pool.py)."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest

from firecrest_server.config import CertificateAuthorityCredentials, SSHConfig
from firecrest_server.ssh.pool import Connection, ConnectionsExhausted, SSHPool


class _FakeSSH:
    def close(self) -> None:
        pass


class _CountingPool(SSHPool):
    """Opens fake connections after a short, varying delay and counts them."""

    def __init__(self, **overrides) -> None:
        config = SSHConfig(
            host="login",
            known_hosts=Path("/dev/null"),
            credentials=CertificateAuthorityCredentials(type="ca", ca_key="unused"),
            **overrides,
        )
        # No credentials are minted: _open is replaced.
        super().__init__("cluster", config, credentials=None)  # type: ignore[arg-type]
        self.opened = 0
        self.most_open = 0
        self.jitter = random.Random(7)

    async def _open(self, username: str, token: str | None) -> Connection:
        await asyncio.sleep(self.jitter.uniform(0, 0.005))
        self.opened += 1
        return Connection(_FakeSSH())  # type: ignore[arg-type]

    def note_open_connections(self, username: str) -> None:
        user = self._users.get(username)
        if user is not None:
            open_now = len([e for e in user.connections if not e.closed])
            self.most_open = max(self.most_open, open_now)


async def test_many_borrowers_never_open_more_than_the_bound() -> None:
    """Hundreds of borrowers arrive while connections are still opening: each opening
    connection counts against the bound until it is listed, so exactly the bound is opened."""
    pool = _CountingPool(max_connections_per_user=3, max_channels_per_connection=3)

    async def borrow() -> None:
        for _ in range(5):
            async with pool.connection("alice"):
                pool.note_open_connections("alice")
                await asyncio.sleep(pool.jitter.uniform(0, 0.003))

    await asyncio.gather(*(borrow() for _ in range(300)))
    assert pool.opened == 3
    assert pool.most_open == 3
    assert pool.stats() == {"users": 1, "connections": 3, "channels_busy": 0, "evicted": 0}


async def test_a_failed_open_frees_its_place_for_the_next_borrower() -> None:
    # Short timeouts: if the failed open kept its place, the next borrow would wait them out.
    pool = _CountingPool(
        max_connections_per_user=1,
        max_channels_per_connection=2,
        connect_timeout=0.5,
        command_timeout=0.5,
    )
    real_open = pool._open
    failures = [OSError("refused")]

    async def flaky_open(username: str, token: str | None) -> Connection:
        if failures:
            raise failures.pop()
        return await real_open(username, token)

    pool._open = flaky_open  # type: ignore[method-assign]
    with pytest.raises(OSError, match="refused"):
        async with pool.connection("alice"):
            raise AssertionError("the first open fails")
    async with pool.connection("alice"):
        assert pool.stats()["connections"] == 1
    assert pool.opened == 1


async def test_at_the_bound_the_least_recently_used_idle_connection_makes_room() -> None:
    pool = _CountingPool(max_connections=2)
    for user in ("alice", "bob"):
        async with pool.connection(user):
            pass
    async with pool.connection("alice"):  # alice used last: bob's connection is the older one
        pass
    async with pool.connection("carol"):
        assert pool.stats()["connections"] == 2
    assert len(pool._users["alice"].connections) == 1
    assert pool._users["bob"].connections == []
    assert pool.stats()["evicted"] == 1
    assert pool.opened == 3


async def test_a_busy_connection_is_never_evicted_the_opener_waits_for_one_to_go_idle() -> None:
    pool = _CountingPool(max_connections=1)
    release = asyncio.Event()
    inside = asyncio.Event()

    async def alice() -> None:
        async with pool.connection("alice"):
            inside.set()
            await release.wait()

    task = asyncio.create_task(alice())
    await inside.wait()
    bob = asyncio.create_task(_borrow_once(pool, "bob"))
    await asyncio.sleep(0.05)
    assert not bob.done()  # alice's only connection is busy: bob waits, none is closed
    assert pool.stats() == {"users": 2, "connections": 1, "channels_busy": 1, "evicted": 0}
    release.set()
    await task
    assert await bob == 1  # bob got in once alice's connection went idle and was evicted
    assert pool.stats()["evicted"] == 1


async def _borrow_once(pool: SSHPool, user: str) -> int:
    async with pool.connection(user):
        return pool.stats()["connections"]


async def test_all_connections_busy_past_the_deadline_is_503() -> None:
    pool = _CountingPool(max_connections=1, connect_timeout=0.2, command_timeout=0.2)
    release = asyncio.Event()
    inside = asyncio.Event()

    async def alice() -> None:
        async with pool.connection("alice"):
            inside.set()
            await release.wait()

    task = asyncio.create_task(alice())
    await inside.wait()
    with pytest.raises(ConnectionsExhausted) as refused:
        await _borrow_once(pool, "bob")
    assert refused.value.status_code == 503
    assert "Retry-After" in refused.value.headers
    release.set()
    await task
    assert pool.opened == 1


async def test_many_users_at_once_stay_under_the_bound_and_all_get_in() -> None:
    """300 users arrive together on a pool of 20 connections: every one is served, no more
    than 20 are ever open, and no more than max_concurrent_logins log in at once."""
    pool = _CountingPool(max_connections=20, max_concurrent_logins=3)
    in_progress = most_in_progress = 0
    real_open = pool._open

    async def watched_open(username: str, token: str | None) -> Connection:
        nonlocal in_progress, most_in_progress
        in_progress += 1
        most_in_progress = max(most_in_progress, in_progress)
        try:
            return await real_open(username, token)
        finally:
            in_progress -= 1

    pool._open = watched_open  # type: ignore[method-assign]
    peak = 0

    async def user(i: int) -> None:
        nonlocal peak
        async with pool.connection(f"user{i:04d}"):
            peak = max(peak, pool.stats()["connections"])
            await asyncio.sleep(pool.jitter.uniform(0, 0.003))

    await asyncio.gather(*(user(i) for i in range(300)))
    assert pool.opened == 300
    assert peak <= 20
    assert most_in_progress == 3
    assert pool.stats()["connections"] <= 20
    assert pool.stats()["evicted"] >= 280
