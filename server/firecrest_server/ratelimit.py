"""Per-user request limits: a token bucket for the rate, a counter for requests in flight.

One user's flood must not starve the others or exhaust the SSH pool, so every user has their own
bucket and their own concurrency cap. Everything here is synchronous and runs on the event loop:
no locks, no awaits, a dictionary lookup and some arithmetic per request.

This limiter is per worker process (each has its own). With ``state.redis_url`` configured the
runtime uses ``state.limiter.SharedRateLimiter`` instead, which keeps the same limits in Redis for
all workers and replicas, and falls back to this one while Redis cannot be reached.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Protocol

from .config import RateLimit
from .errors import TooManyRequests

Clock = Callable[[], float]

# How often idle users' state is dropped, seconds: keeps memory bounded by active users.
_PRUNE_INTERVAL = 60.0


class RateLimited(TooManyRequests):
    def __init__(self, message: str, retry_after: float, reason: str) -> None:
        super().__init__(message, retry_after)
        self.reason = reason  # "rate" or "concurrency", for metrics


class UserLimiter(Protocol):
    """What the request path needs from a limiter; the runtime picks the implementation."""

    def admitted(self, user: str) -> AbstractAsyncContextManager[None]:
        """Hold one of ``user``'s request slots for the block; raises ``RateLimited`` on entry."""
        ...


@dataclass(slots=True)
class _UserState:
    tokens: float
    updated: float
    in_flight: int = 0


class RateLimiter:
    def __init__(self, config: RateLimit, clock: Clock = time.monotonic) -> None:
        self._rate = config.requests_per_second
        self._burst = float(config.burst)
        self._max_in_flight = config.max_concurrent_requests
        self._clock = clock
        self._users: dict[str, _UserState] = {}
        self._next_prune = clock() + _PRUNE_INTERVAL

    def acquire(self, user: str) -> None:
        """Admit one request of ``user`` or raise ``RateLimited``; pair with ``release``."""
        now = self._clock()
        if now >= self._next_prune:
            self._prune(now)
        state = self._users.get(user)
        if state is None:
            state = self._users[user] = _UserState(tokens=self._burst, updated=now)
        else:
            state.tokens = min(self._burst, state.tokens + (now - state.updated) * self._rate)
            state.updated = now
        if state.in_flight >= self._max_in_flight:
            # Checked first, and without taking a token: a request refused for concurrency
            # should not also cost the user rate budget. When a slot frees is unknown; most
            # requests take well under a second (the header rounds this up to 1 s).
            raise RateLimited(
                f"Too many concurrent requests (limit {self._max_in_flight} per user)",
                retry_after=0.5,
                reason="concurrency",
            )
        if state.tokens < 1.0:
            raise RateLimited(
                f"Too many requests (limit {self._rate:g} per second per user)",
                retry_after=(1.0 - state.tokens) / self._rate,
                reason="rate",
            )
        state.tokens -= 1.0
        state.in_flight += 1

    def release(self, user: str) -> None:
        state = self._users.get(user)
        if state is not None and state.in_flight > 0:
            state.in_flight -= 1

    @contextlib.contextmanager
    def slot(self, user: str) -> Iterator[None]:
        self.acquire(user)
        try:
            yield
        finally:
            self.release(user)

    @contextlib.asynccontextmanager
    async def admitted(self, user: str) -> AsyncIterator[None]:
        with self.slot(user):
            yield

    def in_flight(self, user: str) -> int:
        state = self._users.get(user)
        return state.in_flight if state else 0

    def _prune(self, now: float) -> None:
        # A user with nothing in flight whose bucket has refilled is indistinguishable from a
        # new user: forget them.
        self._users = {
            user: state
            for user, state in self._users.items()
            if state.in_flight or state.tokens + (now - state.updated) * self._rate < self._burst
        }
        self._next_prune = now + _PRUNE_INTERVAL
