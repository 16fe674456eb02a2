"""One fetch at a time, and not too often: how the JWKS and the discovery document refresh."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

Clock = Callable[[], float]


class RefreshGate:
    """Runs a refresh for every caller at once, and at most one per ``min_interval`` seconds.

    Callers that arrive while a refresh runs wait for it and share its result. (With a lock each
    waiter had to take it in turn, one per event-loop turn: on a cold start under load the last
    of 500 requests waited ten seconds.) The wait is shielded: one waiter's cancellation must not
    cancel the others'. The floor keeps a flood of unknown key ids from turning the server into a
    load generator against the identity provider.
    """

    def __init__(self, min_interval: float, clock: Clock) -> None:
        self._min_interval = min_interval
        self._clock = clock
        self._attempted_at: float | None = None
        self._running: asyncio.Future[None] | None = None

    @property
    def running(self) -> bool:
        return self._running is not None

    async def refresh(self, fetch: Callable[[float], Awaitable[None]]) -> None:
        """``fetch(now)``, unless one is running (then wait for it) or ran too recently."""
        if self._running is not None:
            await asyncio.shield(self._running)
            return
        now = self._clock()
        if self._attempted_at is not None and now - self._attempted_at < self._min_interval:
            return
        self._attempted_at = now
        running = self._running = asyncio.get_running_loop().create_future()
        try:
            await fetch(now)
        finally:
            self._running = None
            running.set_result(None)
