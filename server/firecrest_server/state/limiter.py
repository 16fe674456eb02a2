"""Per-user limits shared by all workers and replicas: token bucket and in-flight slots in Redis.

One Lua script admits a request atomically (no two workers can both take the last token or the
last slot). Time is Redis's own clock (``TIME``), so replicas whose clocks differ still refill
one bucket at one rate. An in-flight slot is a member of a per-user sorted set scored by its
expiry: the worker holding it renews it while the request runs, so a worker that dies
mid-request leaks nothing — its slots expire within ``state.slot_lease`` seconds.

While Redis cannot be reached, requests are admitted by the per-worker ``RateLimiter`` instead
(fail open, but still limited): an outage of a supporting service should not take the API down.
Each failure is counted, and the switch both ways is logged once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable

from redis.asyncio import Redis

from ..config import RateLimit, StateConfig
from ..ratelimit import RateLimited, RateLimiter
from .redis_client import STATE_ERRORS

log = logging.getLogger("firecrest_server.state")

# KEYS: the user's bucket (hash), the user's in-flight slots (sorted set).
# ARGV: rate per second, burst, max in flight, new slot id, lease seconds.
# Returns {1} when admitted, else {0, reason, retry-after seconds}. Numbers go back as strings:
# Redis truncates Lua numbers in replies to integers.
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local max_in_flight, lease = tonumber(ARGV[3]), tonumber(ARGV[5])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
if redis.call('ZCARD', KEYS[2]) >= max_in_flight then
  return {0, 'concurrency', '0.5'}
end
local bucket = redis.call('HMGET', KEYS[1], 'tokens', 'updated')
local tokens = tonumber(bucket[1]) or burst
local updated = tonumber(bucket[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - updated) * rate)
if tokens < 1 then
  return {0, 'rate', tostring((1 - tokens) / rate)}
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens - 1), 'updated', tostring(now))
-- A bucket left alone this long is full again, the same as no bucket: let Redis drop it.
redis.call('EXPIRE', KEYS[1], math.ceil(burst / rate) + 1)
redis.call('ZADD', KEYS[2], now + lease, ARGV[4])
redis.call('EXPIRE', KEYS[2], math.ceil(lease) + 1)
return {1}
"""

# KEYS: one user's in-flight slots. ARGV: lease seconds, then the slot ids this worker holds.
# XX: a slot that already expired (this worker was stalled past its lease) is not brought back.
_RENEW = """
local t = redis.call('TIME')
local expires = tonumber(t[1]) + tonumber(t[2]) / 1000000 + tonumber(ARGV[1])
for i = 2, #ARGV do
  redis.call('ZADD', KEYS[1], 'XX', expires, ARGV[i])
end
redis.call('EXPIRE', KEYS[1], math.ceil(tonumber(ARGV[1])) + 1)
return #ARGV - 1
"""

# KEYS[i]: the in-flight slots of the user who held slot ARGV[i]. One call frees every slot
# released since the last one: under load, many requests share a round trip.
_RELEASE = """
for i = 1, #KEYS do
  redis.call('ZREM', KEYS[i], ARGV[i])
end
return #KEYS
"""

# KEYS: one user's in-flight slots. Returns how many are live (not yet expired).
_COUNT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
return redis.call('ZCOUNT', KEYS[1], '(' .. now, '+inf')
"""


class SharedRateLimiter:
    """The same limits as ``RateLimiter``, counted once for all workers and replicas."""

    def __init__(
        self,
        redis: Redis,
        limits: RateLimit,
        state: StateConfig,
        fallback: RateLimiter,
        on_error: Callable[[str], None] = lambda operation: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._redis = redis
        self._limits = limits
        self._prefix = state.key_prefix
        self._lease = state.slot_lease
        self._retry_interval = state.retry_interval
        self._fallback = fallback
        self._on_error = on_error
        self._clock = clock
        # register_script: EVALSHA, and SCRIPT LOAD again after a Redis restart (NOSCRIPT).
        self._acquire = redis.register_script(_ACQUIRE)
        self._renew = redis.register_script(_RENEW)
        self._count = redis.register_script(_COUNT)
        self._release_batch = redis.register_script(_RELEASE)
        self._held: dict[str, set[str]] = {}  # user -> ids of the slots this worker holds
        self._released: list[tuple[str, str]] = []  # (user, slot) not yet removed in Redis
        self._release_wanted = asyncio.Event()
        self._down_until: float | None = None  # set while Redis is considered unreachable
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = asyncio.Event()

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._renew_forever(), name="slot-lease-renewal"),
            asyncio.create_task(self._release_forever(), name="slot-release"),
        ]

    async def close(self) -> None:
        # Asked to stop rather than cancelled: Python 3.11's wait_for (inside the Redis client)
        # can swallow a cancellation that arrives as a command completes, and a task that
        # missed it would wait on its event forever. Each command is bounded by state.timeout.
        self._stopping.set()
        self._release_wanted.set()
        await asyncio.gather(*self._tasks)
        await self.release_pending()

    @property
    def shared(self) -> bool:
        """False while requests are admitted by the per-worker fallback."""
        return self._down_until is None

    @contextlib.asynccontextmanager
    async def admitted(self, user: str) -> AsyncIterator[None]:
        slot = await self._acquire_shared(user)
        if slot is None:
            with self._fallback.slot(user):
                yield
            return
        self._held.setdefault(user, set()).add(slot)
        try:
            yield
        finally:
            held = self._held.get(user)
            if held is not None:
                held.discard(slot)
                if not held:
                    del self._held[user]
            # Freed by the releaser task, off the request path and batched with other
            # requests' slots; a slot whose release never reaches Redis expires with its lease.
            self._released.append((user, slot))
            self._release_wanted.set()

    async def in_flight(self, user: str) -> int:
        return int(await self._count(keys=[self._slots_key(user)]))

    async def _acquire_shared(self, user: str) -> str | None:
        """A new slot id when Redis admitted the request; None to use the per-worker fallback."""
        if self._down_until is not None and self._clock() < self._down_until:
            return None
        slot = secrets.token_hex(12)
        limits = self._limits
        try:
            answer = await self._acquire(
                keys=[self._bucket_key(user), self._slots_key(user)],
                args=[
                    repr(limits.requests_per_second),
                    limits.burst,
                    limits.max_concurrent_requests,
                    slot,
                    repr(self._lease),
                ],
            )
        except STATE_ERRORS as exc:
            self._failed("acquire", exc)
            return None
        self._reachable()
        if int(answer[0]) == 1:
            return slot
        reason = _text(answer[1])
        if reason == "concurrency":
            raise RateLimited(
                f"Too many concurrent requests (limit {limits.max_concurrent_requests} per user)",
                retry_after=float(answer[2]),
                reason="concurrency",
            )
        raise RateLimited(
            f"Too many requests (limit {limits.requests_per_second:g} per second per user)",
            retry_after=float(answer[2]),
            reason="rate",
        )

    async def _release_forever(self) -> None:
        while not self._stopping.is_set():
            await self._release_wanted.wait()
            self._release_wanted.clear()
            await self.release_pending()

    async def release_pending(self) -> None:
        batch, self._released = self._released, []
        if not batch:
            return
        try:
            await self._release_batch(
                keys=[self._slots_key(user) for user, _slot in batch],
                args=[slot for _user, slot in batch],
            )
        except STATE_ERRORS as exc:
            # The slots expire with their lease; nothing leaks.
            self._failed("release", exc)

    async def _renew_forever(self) -> None:
        while not await _stopped(self._stopping, self._lease / 3):
            await self.renew_held()

    async def renew_held(self) -> None:
        for user, slots in list(self._held.items()):
            if not slots:
                continue
            try:
                await self._renew(keys=[self._slots_key(user)], args=[repr(self._lease), *slots])
            except STATE_ERRORS as exc:
                self._failed("renew", exc)
                return

    def _failed(self, operation: str, exc: Exception) -> None:
        self._on_error(operation)
        if self._down_until is None:
            log.warning(
                "Redis unreachable (%s: %s): per-user limits are per worker until it is back",
                operation,
                type(exc).__name__,
            )
        self._down_until = self._clock() + self._retry_interval

    def _reachable(self) -> None:
        if self._down_until is not None:
            log.warning("Redis reachable again: per-user limits are shared across workers")
            self._down_until = None

    def _bucket_key(self, user: str) -> str:
        return f"{self._prefix}:rate:{user}"

    def _slots_key(self, user: str) -> str:
        return f"{self._prefix}:inflight:{user}"


async def _stopped(stopping: asyncio.Event, within: float) -> bool:
    """Wait up to ``within`` seconds for ``stopping``; whether it was set."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stopping.wait(), within)
    return stopping.is_set()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
