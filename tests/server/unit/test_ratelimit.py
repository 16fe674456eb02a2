from __future__ import annotations

import pytest

from firecrest_server.config import RateLimit
from firecrest_server.ratelimit import RateLimited, RateLimiter


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def limiter(clock: FakeClock, rate: float = 10, burst: int = 5, concurrent: int = 100):
    config = RateLimit(requests_per_second=rate, burst=burst, max_concurrent_requests=concurrent)
    return RateLimiter(config, clock=clock)


def test_burst_then_refused_with_retry_after_until_refilled() -> None:
    clock = FakeClock()
    limits = limiter(clock, rate=2, burst=3)
    for _ in range(3):
        limits.acquire("alice")
        limits.release("alice")
    with pytest.raises(RateLimited) as refused:
        limits.acquire("alice")
    assert refused.value.status_code == 429
    assert refused.value.reason == "rate"
    # One token takes 0.5 s at 2/s; Retry-After is whole seconds, rounded up.
    assert refused.value.headers["Retry-After"] == "1"
    clock.now += 0.5
    limits.acquire("alice")


def test_refill_is_capped_at_burst() -> None:
    clock = FakeClock()
    limits = limiter(clock, rate=100, burst=2)
    clock.now += 3600
    limits.acquire("alice")
    limits.acquire("alice")
    with pytest.raises(RateLimited):
        limits.acquire("alice")


def test_users_have_separate_buckets() -> None:
    clock = FakeClock()
    limits = limiter(clock, rate=1, burst=1)
    limits.acquire("alice")
    with pytest.raises(RateLimited):
        limits.acquire("alice")
    limits.acquire("bob")


def test_concurrency_cap_refuses_without_spending_rate_budget() -> None:
    clock = FakeClock()
    limits = limiter(clock, rate=1, burst=3, concurrent=2)
    limits.acquire("alice")
    limits.acquire("alice")
    with pytest.raises(RateLimited) as refused:
        limits.acquire("alice")
    assert refused.value.reason == "concurrency"
    assert refused.value.headers["Retry-After"] == "1"
    limits.release("alice")
    limits.acquire("alice")  # the refused request cost no token: the third is still there
    assert limits.in_flight("alice") == 2


def test_slot_releases_on_error() -> None:
    limits = limiter(FakeClock(), concurrent=1)
    with pytest.raises(RuntimeError), limits.slot("alice"):
        raise RuntimeError
    assert limits.in_flight("alice") == 0
    with limits.slot("alice"):
        assert limits.in_flight("alice") == 1


def test_long_retry_after_for_slow_rates() -> None:
    clock = FakeClock()
    limits = limiter(clock, rate=0.1, burst=1)
    limits.acquire("alice")
    with pytest.raises(RateLimited) as refused:
        limits.acquire("alice")
    assert refused.value.headers["Retry-After"] == "10"


def test_idle_users_are_forgotten_but_busy_ones_kept() -> None:
    clock = FakeClock()
    limits = limiter(clock, rate=10, burst=5)
    limits.acquire("idle")
    limits.release("idle")
    limits.acquire("busy")
    clock.now += 120  # past the prune interval; both buckets have refilled
    limits.acquire("carol")
    assert limits.in_flight("busy") == 1
    assert "idle" not in limits._users
    limits.release("busy")
    assert limits.in_flight("busy") == 0


def test_release_without_acquire_is_harmless() -> None:
    limits = limiter(FakeClock())
    limits.release("nobody")
    assert limits.in_flight("nobody") == 0
