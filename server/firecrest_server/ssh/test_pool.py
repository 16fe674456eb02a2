"""The pool's bookkeeping under contention, with a fake opener in place of SSH (the real
connections are tested against sshd in tests/server/test_ssh_pool.py)."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest

from ..config import CertificateAuthorityCredentials, SSHConfig
from .pool import Connection, SSHPool


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
    assert pool.stats() == {"users": 1, "connections": 3, "channels_busy": 0}


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
