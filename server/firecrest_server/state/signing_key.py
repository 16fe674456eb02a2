"""The staging URL signing key, created once in Redis and shared by every replica.

Used only when ``server.url_signing_key`` is not configured (the configured key always wins and
is what production should use: then the key lives in no database). The first replica to start
stores a random key with ``SET NX``; every other replica reads that one. If Redis loses it (a
restart without persistence), each running replica writes its key back within
``REASSERT_INTERVAL`` seconds, and all of them adopt whichever key Redis then holds, so replicas
converge on one key again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Callable

from redis.asyncio import Redis

from .redis_client import STATE_ERRORS

log = logging.getLogger("firecrest_server.state")

REASSERT_INTERVAL = 10.0


class SharedKeyUnavailable(Exception):
    """Redis could not be reached at start-up, and no key is configured."""


class SharedSigningKey:
    def __init__(
        self,
        redis: Redis,
        key_prefix: str,
        adopt: Callable[[str], None],
        on_error: Callable[[str], None] = lambda op: None,
    ) -> None:
        self._redis = redis
        self._name = f"{key_prefix}:staging-url-key"
        self._adopt = adopt  # called with the key whenever it changes
        self._on_error = on_error
        self._key: str | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    async def load(self) -> str:
        """The shared key, creating it if no replica has yet. Raises ``SharedKeyUnavailable``."""
        try:
            key = await self._set_if_missing(secrets.token_urlsafe(32))
        except STATE_ERRORS as exc:
            raise SharedKeyUnavailable(
                "state.redis_url is set but Redis cannot be reached to share the staging URL "
                f"signing key ({type(exc).__name__}); set server.url_signing_key, or start Redis"
            ) from None
        self._key = key
        return key

    def start(self) -> None:
        self._task = asyncio.create_task(self._reassert_forever(), name="signing-key-reassert")

    async def close(self) -> None:
        # Asked to stop, not cancelled (see SharedRateLimiter.close).
        self._stopping.set()
        if self._task is not None:
            await self._task

    async def reassert(self) -> None:
        assert self._key is not None, "load() first"
        try:
            key = await self._set_if_missing(self._key)
        except STATE_ERRORS:
            self._on_error("signing_key")
            return
        if key != self._key:
            log.warning("Redis holds another staging URL signing key: adopting it")
            self._key = key
            self._adopt(key)

    async def _set_if_missing(self, candidate: str) -> str:
        await self._redis.set(self._name, candidate, nx=True)
        stored = await self._redis.get(self._name)
        if stored is None:  # deleted between the two commands: try once more
            await self._redis.set(self._name, candidate, nx=True)
            stored = await self._redis.get(self._name) or candidate.encode()
        return stored.decode() if isinstance(stored, bytes) else stored

    async def _reassert_forever(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), REASSERT_INTERVAL)
            if self._stopping.is_set():
                return
            await self.reassert()
