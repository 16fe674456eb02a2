"""Fixtures for driving the server with unmodified pyfirecrest clients."""

from __future__ import annotations

import asyncio
import functools
import uuid
from collections.abc import AsyncIterator, Callable

import pytest

from firecrest_dev.info import StackInfo


class _Token:
    """pyfirecrest's authorization contract: any object with get_access_token()."""

    def __init__(self, get: Callable[[], str]) -> None:
        self._get = get

    def get_access_token(self) -> str:
        return self._get()


class Client:
    """One awaitable face for pyfirecrest's sync and async clients, so each test runs on both."""

    def __init__(self, flavour: str, url: str, token: Callable[[], str]) -> None:
        # Imported here, not at the top: this conftest also applies to tests/server/unit/, which
        # run without pyfirecrest in the lowest-versions job (dev/lowest_deps.py).
        import firecrest

        self.flavour = flavour
        cls = firecrest.v2.Firecrest if flavour == "sync" else firecrest.v2.AsyncFirecrest
        self.raw = cls(firecrest_url=url, authorization=_Token(token))
        self.raw.timeout = 60
        self.raw.num_retries_rate_limit = 5

    def __getattr__(self, name: str):
        method = getattr(self.raw, name)
        if self.flavour == "async":
            return method

        @functools.wraps(method)
        async def in_thread(*args, **kwargs):
            return await asyncio.to_thread(method, *args, **kwargs)

        return in_thread

    async def close(self) -> None:
        if self.flavour == "async":
            await self.raw.close_session()
        else:
            self.raw.close_session()


@pytest.fixture(params=["sync", "async"])
async def alice(request, stack: StackInfo, token_for) -> AsyncIterator[Client]:
    client = Client(request.param, stack.url, lambda: token_for("alice"))
    yield client
    await client.close()


@pytest.fixture
async def alice_dir(stack: StackInfo, token_for) -> AsyncIterator[str]:
    """A fresh directory in alice's home, removed afterwards."""
    client = Client("async", stack.url, lambda: token_for("alice"))
    path = f"{stack.users['alice'].home}/t-{uuid.uuid4().hex[:10]}"
    await client.mkdir(stack.system, path)
    yield path
    await client.rm(stack.system, path)
    await client.close()
