"""Which implementations an app gets, with and without ``state.redis_url``."""

from __future__ import annotations

import asyncssh
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from redis.asyncio import Redis

from firecrest_dev.redis_process import RedisProcess
from firecrest_server.config import Settings, parse_settings
from firecrest_server.ratelimit import RateLimiter
from firecrest_server.staging.tokens import StagingGrant
from firecrest_server.state.limiter import SharedRateLimiter
from firecrest_server.state.shared import open_shared_state
from firecrest_server.state.signing_key import SharedKeyUnavailable

GRANT = StagingGrant(kind="upload", user="bob", system="cluster", path="/tmp/s", size=9)


def settings(**sections: object) -> Settings:
    public = ec.generate_private_key(ec.SECP256R1()).public_key()
    pem = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
    ca_key = asyncssh.generate_private_key("ssh-ed25519").export_private_key().decode()
    return parse_settings(
        {
            "auth": {
                "public_keys": [pem],
                "algorithms": ["ES256"],
                "issuer": "https://idp.example",
                "audience": "firecrest",
            },
            "systems": [
                {
                    "name": "cluster",
                    "ssh": {
                        "host": "127.0.0.1",
                        "known_hosts": "/dev/null",
                        "credentials": {"type": "ca", "ca_key": ca_key},
                    },
                }
            ],
        }
        | sections
    )


def local_key() -> str:
    return "k" * 32


async def test_without_redis_everything_is_per_process() -> None:
    async with open_shared_state(settings(), local_key, print) as shared:
        assert isinstance(shared.limiter, RateLimiter)
        assert shared.serials is None
        assert shared.signer.verify(shared.signer.sign(GRANT, 60), "upload") == GRANT


async def test_with_redis_two_workers_share_limits_and_key(
    redis: Redis, redis_server: RedisProcess
) -> None:
    config = settings(
        state={"redis_url": redis_server.url}, rate_limit={"burst": 2, "requests_per_second": 0.01}
    )
    async with (
        open_shared_state(config, local_key, print) as first,
        open_shared_state(config, local_key, print) as second,
    ):
        assert isinstance(first.limiter, SharedRateLimiter)
        token = first.signer.sign(GRANT, 60)
        assert second.signer.verify(token, "upload") == GRANT
        assert await first.serials() == 1
        assert await second.serials() == 2
        async with first.limiter.admitted("bob"), second.limiter.admitted("bob"):
            assert await first.limiter.in_flight("bob") == 2


async def test_a_configured_key_wins_and_needs_no_redis_at_start(
    redis_server: RedisProcess,
) -> None:
    config = settings(state={"redis_url": redis_server.url})
    keyed = settings(state={"redis_url": redis_server.url}, server={"url_signing_key": "s" * 32})
    redis_server.stop()
    try:
        with pytest.raises(SharedKeyUnavailable):
            async with open_shared_state(config, local_key, print):
                pass
        async with open_shared_state(keyed, local_key, print) as shared:
            assert shared.signer.verify(shared.signer.sign(GRANT, 60), "upload") == GRANT
    finally:
        redis_server.start()
