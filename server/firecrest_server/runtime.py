"""Objects with state that live as long as the app: created in the lifespan, passed in by deps."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx

from .auth import TokenValidator
from .config import Settings


@dataclass
class Runtime:
    settings: Settings
    http: httpx.AsyncClient
    tokens: TokenValidator


@contextlib.asynccontextmanager
async def open_runtime(settings: Settings) -> AsyncIterator[Runtime]:
    async with httpx.AsyncClient(timeout=settings.auth.jwks_timeout) as http:
        yield Runtime(settings=settings, http=http, tokens=TokenValidator(settings.auth, http))
