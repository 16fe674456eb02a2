"""The shared limiter against a real redis-server: two limiters stand for two workers/replicas."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from redis.asyncio import Redis

from firecrest_dev.redis_process import RedisProcess
from firecrest_server.config import RateLimit, StateConfig
from firecrest_server.ratelimit import RateLimited, RateLimiter
from firecrest_server.state.limiter import SharedRateLimiter


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(
    redis_server: RedisProcess,
    *,
    rate: float = 0.01,
    burst: int = 3,
    concurrent: int = 100,
    lease: float = 30.0,
    clock: FakeClock | None = None,
    errors: list[str] | None = None,
) -> SharedRateLimiter:
    limits = RateLimit(requests_per_second=rate, burst=burst, max_concurrent_requests=concurrent)
    state = StateConfig(redis_url=redis_server.url, slot_lease=lease, retry_interval=5)
    # Each "worker" has its own connection, as separate processes would.
    return SharedRateLimiter(
        Redis.from_url(redis_server.url),
        limits,
        state,
        fallback=RateLimiter(limits),
        on_error=(errors if errors is not None else []).append,
        clock=clock or FakeClock(),
    )


async def admit(limiter: SharedRateLimiter, user: str) -> str:
    """'ok', or the reason the request was refused."""
    try:
        async with limiter.admitted(user):
            return "ok"
    except RateLimited as exc:
        return exc.reason


async def test_one_bucket_for_all_workers(redis: Redis, redis_server: RedisProcess) -> None:
    first, second = make(redis_server, burst=3), make(redis_server, burst=3)
    results = [await admit(limiter, "alice") for limiter in (first, second, first, second)]
    assert results == ["ok", "ok", "ok", "rate"]
    # Another user has a bucket of their own.
    assert await admit(second, "bob") == "ok"


async def test_refusal_says_when_to_come_back(redis: Redis, redis_server: RedisProcess) -> None:
    limiter = make(redis_server, rate=0.5, burst=1)
    assert await admit(limiter, "alice") == "ok"
    with pytest.raises(RateLimited) as refused:
        async with limiter.admitted("alice"):
            pass
    # One token at 0.5 per second: just under 2 s away.
    assert refused.value.headers["Retry-After"] == "2"
    assert "per second per user" in refused.value.message


async def test_concurrent_admissions_never_exceed_the_burst(
    redis: Redis, redis_server: RedisProcess
) -> None:
    workers = [make(redis_server, burst=20) for _ in range(4)]
    results = await asyncio.gather(*(admit(workers[i % 4], "alice") for i in range(100)))
    assert results.count("ok") == 20
    assert results.count("rate") == 80


async def test_in_flight_cap_is_shared(redis: Redis, redis_server: RedisProcess) -> None:
    first, second = (
        make(redis_server, burst=100, concurrent=2),
        make(redis_server, burst=100, concurrent=2),
    )
    async with contextlib.AsyncExitStack() as held:
        await held.enter_async_context(first.admitted("alice"))
        await held.enter_async_context(second.admitted("alice"))
        assert await first.in_flight("alice") == 2
        assert await admit(second, "alice") == "concurrency"
        assert await admit(first, "bob") == "ok"
    for limiter in (first, second):
        await limiter.release_pending()  # what the background releaser does
    assert await first.in_flight("alice") == 0
    assert await second.in_flight("alice") == 0
    assert await admit(second, "alice") == "ok"


async def test_a_dead_workers_slots_expire_and_a_live_workers_are_renewed(
    redis: Redis, redis_server: RedisProcess
) -> None:
    live = make(redis_server, burst=100, concurrent=2, lease=3)
    dead = make(redis_server, burst=100, concurrent=2, lease=3)
    async with live.admitted("alice"):
        # The dead worker enters and never leaves (its process was killed mid-request).
        await dead.admitted("alice").__aenter__()
        assert await admit(live, "alice") == "concurrency"
        await asyncio.sleep(2)
        await live.renew_held()
        await asyncio.sleep(1.5)  # past the dead slot's lease, within the renewed one
        assert await live.in_flight("alice") == 1
        assert await admit(live, "alice") == "ok"
    await live.release_pending()
    assert await live.in_flight("alice") == 0


async def test_redis_down_falls_back_to_per_worker_limits(
    redis: Redis, redis_server: RedisProcess
) -> None:
    clock, errors = FakeClock(), []
    limiter = make(redis_server, burst=2, clock=clock, errors=errors)
    assert await admit(limiter, "alice") == "ok"  # one shared token spent
    redis_server.stop()
    try:
        # The per-worker bucket is full: two more, then refused, all without Redis.
        results = [await admit(limiter, "alice") for _ in range(3)]
        assert results == ["ok", "ok", "rate"]
        assert not limiter.shared
        assert errors == ["acquire"]  # then Redis is left alone for retry_interval
    finally:
        redis_server.start()
    assert await admit(limiter, "alice") == "rate"  # still inside retry_interval: local
    clock.now += 5
    # Back on the shared bucket (a restarted Redis has lost it: full again), scripts reloaded.
    assert await admit(limiter, "alice") == "ok"
    assert limiter.shared
    assert await redis.exists("firecrest:rate:alice") == 1


async def test_a_slot_held_across_an_outage_is_released_without_error(
    redis: Redis, redis_server: RedisProcess
) -> None:
    errors: list[str] = []
    limiter = make(redis_server, errors=errors)
    try:
        async with limiter.admitted("alice"):
            redis_server.stop()
        await limiter.release_pending()
    finally:
        redis_server.start()
    assert errors == ["release"]


async def test_the_background_releaser_frees_slots_in_batches(
    redis: Redis, redis_server: RedisProcess
) -> None:
    limiter = make(redis_server, burst=100)
    limiter.start()
    try:
        async with contextlib.AsyncExitStack() as held:
            for user in ("alice", "alice", "bob"):
                await held.enter_async_context(limiter.admitted(user))
            assert await limiter.in_flight("alice") == 2
        for _ in range(100):  # the releaser runs as soon as the event loop lets it
            if await limiter.in_flight("alice") + await limiter.in_flight("bob") == 0:
                break
            await asyncio.sleep(0.01)
        assert await limiter.in_flight("alice") == 0
        assert await limiter.in_flight("bob") == 0
    finally:
        await limiter.close()
    assert all(task.done() for task in limiter._tasks)
