"""What replicas share, opened for one app: the limiter, CA serials and the URL signing key.

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


@contextlib.asynccontextmanager
async def open_shared_state(
    settings: Settings, local_signing_key: Callable[[], str], on_error: Callable[[str], None]
) -> AsyncIterator[SharedState]:
    local_limiter = RateLimiter(settings.rate_limit)
    configured_key = settings.server.url_signing_key
    state = settings.state
    if state.redis_url is None:
        key = configured_key.get_secret_value() if configured_key else local_signing_key()
        yield SharedState(limiter=local_limiter, serials=None, signer=UrlSigner(key))
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
            signer = UrlSigner(configured_key.get_secret_value())
        else:
            signer = UrlSigner(b"\0" * 32)  # replaced below before anything signs
            shared_key = SharedSigningKey(redis, state.key_prefix, signer.replace_key, on_error)
            signer.replace_key(await shared_key.load())
            shared_key.start()
            stack.push_async_callback(shared_key.close)
        yield SharedState(
            limiter=limiter,
            serials=RedisSerials(redis, state.key_prefix, on_error),
            signer=signer,
        )
