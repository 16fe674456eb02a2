"""What replicas share, opened for one app: the limiter, CA serials and the URL signing key
(which both signs staging URLs and seals the keys inside them).

Without ``state.redis_url`` everything is per process, as in a single-replica deployment: the
limiter is the per-worker ``RateLimiter``, serials count per process, and the signing key is the
configured one or the one the command line made for its workers.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from ..config import Settings
from ..ratelimit import RateLimiter, UserLimiter
from ..ssh.credentials import SerialSource
from ..staging.sealing import KeySealer
from ..staging.tokens import UrlSigner
from .limiter import SharedRateLimiter
from .redis_client import open_redis
from .serials import RedisSerials
from .signing_key import SharedSigningKey


@dataclass
class SharedState:
    limiter: UserLimiter
    serials: SerialSource | None  # None: the credential provider's own
    signer: UrlSigner
    sealer: KeySealer


@contextlib.asynccontextmanager
async def open_shared_state(
    settings: Settings, local_signing_key: Callable[[], str], on_error: Callable[[str], None]
) -> AsyncIterator[SharedState]:
    local_limiter = RateLimiter(settings.rate_limit)
    configured_key = settings.server.url_signing_key
    state = settings.state
    if state.redis_url is None:
        key = configured_key.get_secret_value() if configured_key else local_signing_key()
        yield SharedState(local_limiter, serials=None, signer=UrlSigner(key), sealer=KeySealer(key))
        return
    redis = open_redis(state)
    async with contextlib.AsyncExitStack() as stack:
        stack.push_async_callback(redis.aclose)
        limiter = SharedRateLimiter(
            redis, settings.rate_limit, state, fallback=local_limiter, on_error=on_error
        )
        limiter.start()
        stack.push_async_callback(limiter.close)
        if configured_key is not None:
            key = configured_key.get_secret_value()
            signer, sealer = UrlSigner(key), KeySealer(key)
        else:

            def adopt(key: str) -> None:
                signer.replace_key(key)
                sealer.replace_key(key)

            shared_key = SharedSigningKey(redis, state.key_prefix, adopt, on_error)
            key = await shared_key.load()
            signer, sealer = UrlSigner(key), KeySealer(key)
            shared_key.start()
            stack.push_async_callback(shared_key.close)
        yield SharedState(
            limiter=limiter,
            serials=RedisSerials(redis, state.key_prefix, on_error),
            signer=signer,
            sealer=sealer,
        )
