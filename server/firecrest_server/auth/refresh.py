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
        self._running: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._running is not None

    async def refresh(self, fetch: Callable[[float], Awaitable[None]]) -> None:
        """``fetch(now)``, unless one is running (then wait for it) or ran too recently.

        The fetch runs in a task of its own, not in the first caller: were that caller cancelled
        (its client went away), the fetch would die with it, every waiter would go on without
        keys, and the floor would then refuse a new fetch for ``min_interval`` seconds.
        """
        if self._running is None:
            now = self._clock()
            if self._attempted_at is not None and now - self._attempted_at < self._min_interval:
                return
            self._attempted_at = now
            self._running = asyncio.ensure_future(self._run(fetch, now))
        await asyncio.shield(self._running)

    async def _run(self, fetch: Callable[[float], Awaitable[None]], now: float) -> None:
        try:
            await fetch(now)
        finally:
            self._running = None
