"""Per-user rate limits against the real stack: one user's flood does not touch another user."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from firecrest_dev.info import StackInfo
from firecrest_dev.own_server import own_server

pytestmark = pytest.mark.stack

RATE_LIMIT = {"requests_per_second": 20, "burst": 50, "max_concurrent_requests": 16}


@pytest.fixture(scope="module")
def limited_server(stack: StackInfo, tmp_path_factory) -> Iterator[str]:
    # One worker, so the limits below are the whole server's, not one of several processes'.
    directory: Path = tmp_path_factory.mktemp("limited-server")
    with own_server(stack, directory, overrides={"rate_limit": RATE_LIMIT}) as url:
        yield url


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_a_flood_is_refused_for_its_user_only(
    limited_server: str, stack: StackInfo, token_for
) -> None:
    alice, bob = bearer(token_for("alice")), bearer(token_for("bob"))
    paths = [f"/status/{stack.system}/userinfo"] * 60 + ["/status/systems"] * 240
    limits = httpx.Limits(max_connections=400, max_keepalive_connections=400)
    async with (
        httpx.AsyncClient(base_url=limited_server, timeout=120, limits=limits) as flood,
        httpx.AsyncClient(base_url=limited_server, timeout=120) as calm,
    ):

        async def bob_works() -> list[httpx.Response]:
            # Well inside bob's own limits: 24 requests, at most 3 at a time.
            responses: list[httpx.Response] = []
            for _ in range(8):
                responses += await asyncio.gather(
                    calm.get("/status/systems", headers=bob),
                    calm.get(f"/status/{stack.system}/userinfo", headers=bob),
                    calm.get("/status/systems", headers=bob),
                )
            return responses

        flood_task = asyncio.gather(*(flood.get(p, headers=alice) for p in paths))
        bob_responses = await bob_works()
        alice_responses = await flood_task

        assert [r.status_code for r in bob_responses] == [200] * len(bob_responses)

        refused = [r for r in alice_responses if r.status_code == 429]
        assert refused, "a flood of 300 requests with a burst of 50 must be refused in part"
        assert {r.status_code for r in alice_responses} <= {200, 429}
        for response in refused:
            assert int(response.headers["Retry-After"]) >= 1
            body = response.json()
            assert body["errorType"] == "error"
            assert body["user"] == "alice"
            assert "Too many" in body["message"]

        # The limiter forgets a flood once the bucket refills: after Retry-After, alice is back.
        await asyncio.sleep(max(int(r.headers["Retry-After"]) for r in refused))
        assert (await calm.get("/status/systems", headers=alice)).status_code == 200

        metrics = (await calm.get("/metrics")).text
        counted = sum(
            s.value
            for family in text_string_to_metric_families(metrics)
            for s in family.samples
            if s.name == "firecrest_rate_limited_requests_total"
        )
        assert counted == len(refused)


async def test_liveness_and_metrics_are_never_limited(limited_server: str) -> None:
    async with httpx.AsyncClient(base_url=limited_server, timeout=60) as http:
        statuses = await asyncio.gather(
            *(http.get("/status/liveness") for _ in range(80)),
            *(http.get("/metrics") for _ in range(20)),
        )
    assert {r.status_code for r in statuses} == {200}
