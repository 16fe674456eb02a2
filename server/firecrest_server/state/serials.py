"""SSH certificate serials from one counter in Redis, so no two replicas issue the same serial.

Without Redis, serials are random 64-bit numbers (``random_serial``); with it, they count up, so
they are also ordered, and unique by construction rather than by odds. While Redis cannot be
reached, serials are random numbers with the top bit of 64 set: ``INCR`` counts up from 1 and
stays below 2**63, so the two never meet.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable

from redis.asyncio import Redis

from .redis_client import STATE_ERRORS

_FALLBACK_BIT = 1 << 63


class RedisSerials:
    def __init__(
        self, redis: Redis, key_prefix: str, on_error: Callable[[str], None] = lambda op: None
    ) -> None:
        self._redis = redis
        self._key = f"{key_prefix}:ssh-ca-serial"
        self._on_error = on_error

    async def __call__(self) -> int:
        """The next serial (a ``SerialSource`` of ssh/credentials.py)."""
        try:
            return int(await self._redis.incr(self._key))
        except STATE_ERRORS:
            self._on_error("serial")
            return _FALLBACK_BIT | secrets.randbits(63)
