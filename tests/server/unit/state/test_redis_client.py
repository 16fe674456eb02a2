"""The replicas' Redis client survives a Redis restart between two commands."""

from __future__ import annotations

import pytest

from firecrest_dev.redis_process import RedisProcess
from firecrest_server.config import StateConfig
from firecrest_server.state.redis_client import STATE_ERRORS, open_redis


async def test_a_pooled_connection_to_a_restarted_redis_reconnects_once(
    redis_server: RedisProcess,
) -> None:
    # redis-py before 6.0 ignored the Retry's supported errors unless retry_on_error named them
    # too, so the command after a restart failed: that is what sets the `redis>=6.0` floor.
    client = open_redis(StateConfig(redis_url=redis_server.url))
    try:
        await client.set("firecrest:test:restart", "before")
        redis_server.stop()
        redis_server.start()
        assert await client.set("firecrest:test:restart", "after")
        assert await client.get("firecrest:test:restart") == b"after"
    finally:
        await client.aclose()


async def test_a_redis_that_stays_down_is_an_error_not_a_wait(redis_server: RedisProcess) -> None:
    client = open_redis(StateConfig(redis_url=redis_server.url, timeout=0.5))
    try:
        await client.ping()
        redis_server.stop()
        with pytest.raises(STATE_ERRORS):
            await client.ping()
    finally:
        redis_server.start()
        await client.aclose()
