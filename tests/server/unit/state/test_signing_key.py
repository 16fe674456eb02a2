"""The staging URL key shared through Redis: one key for all replicas, restored after a loss."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from firecrest_dev.redis_process import RedisProcess
from firecrest_server.staging.tokens import StagingGrant, UrlSigner
from firecrest_server.state.signing_key import SharedKeyUnavailable, SharedSigningKey


def replica(redis_server: RedisProcess) -> tuple[SharedSigningKey, UrlSigner]:
    signer = UrlSigner(b"\0" * 32)
    shared = SharedSigningKey(Redis.from_url(redis_server.url), "firecrest", signer.replace_key)
    return shared, signer


GRANT = StagingGrant(kind="download", user="alice", system="cluster", path="/home/alice/f", size=1)


async def test_a_url_signed_by_one_replica_verifies_on_another(
    redis: Redis, redis_server: RedisProcess
) -> None:
    (first, first_signer), (second, second_signer) = replica(redis_server), replica(redis_server)
    first_signer.replace_key(await first.load())
    second_signer.replace_key(await second.load())
    token = first_signer.sign(GRANT, ttl=60)
    assert second_signer.verify(token, "download") == GRANT


async def test_replicas_converge_after_redis_loses_the_key(
    redis: Redis, redis_server: RedisProcess
) -> None:
    (old, old_signer), (other, other_signer) = replica(redis_server), replica(redis_server)
    old_signer.replace_key(await old.load())
    other_signer.replace_key(await other.load())
    await redis.flushdb()  # a Redis restart without persistence
    (new, new_signer) = replica(redis_server)
    new_signer.replace_key(await new.load())  # started in the gap: a key of its own
    token = new_signer.sign(GRANT, ttl=60)
    for shared in (old, other, new):
        await shared.reassert()
    # Everyone now holds what Redis holds: the new replica's key.
    assert old_signer.verify(token, "download") == GRANT
    assert other_signer.verify(old_signer.sign(GRANT, ttl=60), "download") == GRANT


async def test_a_lost_key_is_written_back_by_a_running_replica(
    redis: Redis, redis_server: RedisProcess
) -> None:
    shared, _signer = replica(redis_server)
    key = await shared.load()
    await redis.flushdb()
    await shared.reassert()
    assert (await redis.get("firecrest:staging-url-key")).decode() == key


async def test_start_up_without_redis_says_what_to_do(redis_server: RedisProcess) -> None:
    shared, _signer = replica(redis_server)
    redis_server.stop()
    try:
        with pytest.raises(SharedKeyUnavailable, match=r"server\.url_signing_key"):
            await shared.load()
    finally:
        redis_server.start()
