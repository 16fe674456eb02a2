"""Unit tests of the HTTP session's own logic (retries, re-authentication, the concurrency cap,
query encoding), with an in-process fake server. Everything against the real server is in the
stack tests."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from aiida_firecrest.client import auth, errors
from aiida_firecrest.client.retry import RetryPolicy
from aiida_firecrest.client.session import ApiSession

FAST = RetryPolicy(attempts=3, initial_wait=0.001, max_wait=0.002, max_retry_after=0.01)


def session(handler, *, token: auth.TokenSource | None = None, **kwargs) -> ApiSession:
    return ApiSession(
        "http://firecrest.test/api/",
        token or auth.StaticToken("t0"),
        retry=FAST,
        transport=httpx.MockTransport(handler),
        **kwargs,
    )


async def test_idempotent_requests_are_retried_on_503() -> None:
    answers = iter([httpx.Response(503, headers={"Retry-After": "0"}), httpx.Response(200)])
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        return next(answers)

    api = session(handler)
    response = await api.request("GET", "/status/systems", idempotent=True)
    assert response.status_code == 200
    assert seen == ["/api/status/systems", "/api/status/systems"]
    await api.aclose()


async def test_non_idempotent_requests_are_not_retried_on_502() -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return httpx.Response(502, json={"message": "bad gateway"})

    api = session(handler)
    with pytest.raises(errors.FirecrestError, match="bad gateway") as raised:
        await api.request("POST", "/x", idempotent=False)
    assert raised.value.status_code == 502
    assert calls == 1
    await api.aclose()


async def test_rate_limited_requests_are_retried_even_when_not_idempotent() -> None:
    answers = iter([httpx.Response(429, headers={"Retry-After": "0"}), httpx.Response(201)])
    api = session(lambda request: next(answers))
    response = await api.request("POST", "/x", idempotent=False, expected=(201,))
    assert response.status_code == 201
    await api.aclose()


async def test_retries_give_up_with_the_last_answer() -> None:
    api = session(lambda request: httpx.Response(503, json={"message": "down for maintenance"}))
    with pytest.raises(errors.FirecrestError, match="down for maintenance"):
        await api.request("GET", "/x", idempotent=True)
    await api.aclose()


async def test_connection_refused_is_retried_then_a_connection_error() -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        raise httpx.ConnectError("refused", request=request)

    api = session(handler)
    with pytest.raises(ConnectionError, match=r"Cannot reach http://firecrest\.test/api/x"):
        await api.request("POST", "/x", idempotent=False)
    assert calls == FAST.attempts
    await api.aclose()


async def test_401_refreshes_the_token_once() -> None:
    tokens = iter(["old", "new"])

    async def fetch(http):
        return next(tokens), 600.0

    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["Authorization"])
        return httpx.Response(401 if request.headers["Authorization"] == "Bearer old" else 200)

    api = session(handler, token=auth.RefreshingToken(fetch))
    await api.request("GET", "/x", idempotent=True)
    assert seen == ["Bearer old", "Bearer new"]
    await api.aclose()


async def test_401_resends_a_streamed_body_in_full() -> None:
    tokens = iter(["old", "new"])

    async def fetch(http):
        return next(tokens), 600.0

    bodies = []

    async def handler(request: httpx.Request) -> httpx.Response:
        bodies.append(await request.aread())
        return httpx.Response(401 if request.headers["Authorization"] == "Bearer old" else 204)

    async def chunks():
        yield b"part1-"
        yield b"part2"

    api = session(handler, token=auth.RefreshingToken(fetch))
    await api.request("PUT", "/x", content=chunks, idempotent=True, expected=(204,))
    assert bodies == [b"part1-part2", b"part1-part2"]
    await api.aclose()


async def test_401_twice_is_an_authentication_error() -> None:
    api = session(lambda request: httpx.Response(401, json={"message": "token expired"}))
    with pytest.raises(errors.AuthenticationError, match="token expired"):
        await api.request("GET", "/x", idempotent=True)
    await api.aclose()


async def test_requests_in_flight_are_capped() -> None:
    in_flight = peak = 0

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.01)
        in_flight -= 1
        return httpx.Response(200)

    api = session(handler, max_concurrent=3)
    await asyncio.gather(*(api.request("GET", "/x", idempotent=True) for _ in range(12)))
    assert peak == 3
    await api.aclose()


async def test_query_encoding() -> None:
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(dict(request.url.params))
        return httpx.Response(200)

    api = session(handler)
    await api.request(
        "GET", "/x", params={"path": "/a b", "flag": True, "off": False, "none": None},
        idempotent=True,
    )  # fmt: skip
    assert seen == [{"path": "/a b", "flag": "true", "off": "false"}]
    await api.aclose()


async def test_streams_release_their_slot() -> None:
    api = session(lambda request: httpx.Response(200, content=b"x" * 10), max_concurrent=1)
    for _ in range(3):  # would hang if a slot leaked
        async with api.stream("GET", "/x") as response:
            assert await response.aread() == b"x" * 10
    await api.aclose()
    api = session(lambda r: httpx.Response(404, json={"message": "nope"}), max_concurrent=1)
    for _ in range(3):  # an error answer frees its slot too
        with pytest.raises(FileNotFoundError):
            await _open_stream(api)
    await api.aclose()


async def _open_stream(api: ApiSession) -> None:
    async with api.stream("GET", "/x"):
        pass
