"""The Redis connection replicas share state through (``state.redis_url``)."""

from __future__ import annotations

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError, RedisError

from ..config import StateConfig

# What a Redis command raises when Redis is down, slow or restarting. Callers fall back or fail
# on these; anything else is a bug and propagates.
STATE_ERRORS: tuple[type[Exception], ...] = (RedisError, OSError)


def open_redis(config: StateConfig) -> Redis:
    """A client (connections are opened lazily, on the first command)."""
    assert config.redis_url is not None
    return Redis.from_url(
        config.redis_url,
        socket_timeout=config.timeout,
        socket_connect_timeout=config.timeout,
        # One retry, on a broken connection only: a pooled connection to a Redis that has
        # since restarted fails once and reconnects. Never on a timeout: a request should not
        # wait several timeouts; callers fall back and try again after state.retry_interval.
        retry=Retry(NoBackoff(), 1, supported_errors=(ConnectionError,)),
    )
