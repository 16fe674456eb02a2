"""Two one-worker servers sharing one Redis (state.redis_url), as two replicas would.

One user's rate is counted once across both; a staging URL signed by one is honoured by the
other; a Redis outage falls back to per-server limits, is counted, and recovers.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from firecrest_dev.info import StackInfo
from firecrest_dev.own_server import own_server
from firecrest_dev.redis_process import RedisProcess

pytestmark = pytest.mark.stack

# A burst of 20 and almost no refill: the counts below are exact, whatever the test's speed.
RATE_LIMIT = {"requests_per_second": 0.01, "burst": 20, "max_concurrent_requests": 64}


@pytest.fixture(scope="module")
def shared_redis(tmp_path_factory) -> Iterator[RedisProcess]:
    server = RedisProcess(tmp_path_factory.mktemp("shared-redis"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


RETRY_INTERVAL = 3


@pytest.fixture(scope="module")
def replica_dirs(tmp_path_factory) -> list[Path]:
    return [tmp_path_factory.mktemp("replica-a"), tmp_path_factory.mktemp("replica-b")]


@pytest.fixture(scope="module")
def replicas(
    stack: StackInfo, shared_redis: RedisProcess, replica_dirs: list[Path]
) -> Iterator[list[str]]:
    overrides = {
        "rate_limit": RATE_LIMIT,
        "state": {"redis_url": shared_redis.url, "retry_interval": RETRY_INTERVAL},
    }
    with (
        own_server(stack, replica_dirs[0], overrides=overrides) as first,
        own_server(stack, replica_dirs[1], overrides=overrides) as second,
    ):
        yield [first.url, second.url]


@pytest.fixture
def fresh_redis(shared_redis: RedisProcess) -> Iterator[redis.Redis]:
    if not shared_redis.answers():
        shared_redis.start()
    client = redis.Redis.from_url(shared_redis.url)
    client.flushdb()
    try:
        yield client
    finally:
        client.close()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def statuses(
    urls: list[str], headers: dict[str, str], count: int, at_once: int = 4
) -> list[int]:
    """``count`` requests spread round-robin over ``urls``, ``at_once`` at a time."""
    async with httpx.AsyncClient(timeout=60) as http:

        async def one(i: int) -> int:
            return (
                await http.get(f"{urls[i % len(urls)]}/status/systems", headers=headers)
            ).status_code

        results: list[int] = []
        for start in range(0, count, at_once):
            batch = range(start, min(count, start + at_once))
            results += await asyncio.gather(*(one(i) for i in batch))
        return results


def metric(url: str, name: str, **labels: str) -> float:
    text = httpx.get(f"{url}/metrics", timeout=10).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
    )


async def test_one_users_rate_is_shared_by_both_servers(
    replicas: list[str], fresh_redis: redis.Redis, token_for
) -> None:
    alice = bearer(token_for("alice"))
    results = await statuses(replicas, alice, 30)
    # Per server, 15 requests each would all fit a burst of 20; together only 20 do.
    assert results.count(200) == 20
    assert results.count(429) == 10
    assert results.count(200) + results.count(429) == 30
    # Both servers refused some: neither kept a bucket of its own.
    assert set(results[20:]) == {429}
    assert fresh_redis.exists("firecrest:rate:alice") == 1
    # bob has his own bucket.
    assert await statuses(replicas, bearer(token_for("bob")), 4) == [200] * 4


async def test_a_staging_url_signed_by_one_server_works_on_the_other(
    replicas: list[str], fresh_redis: redis.Redis, stack: StackInfo, token_for, alice_dir: str
) -> None:
    first, second = replicas
    target = f"{alice_dir}/staged.bin"
    async with httpx.AsyncClient(timeout=60) as http:
        response = await http.post(
            f"{first}/filesystem/{stack.system}/transfer/upload",
            headers=bearer(token_for("alice")),
            json={"path": target, "transferDirectives": {"transferMethod": "s3", "fileSize": 10}},
        )
        assert response.status_code == 201, response.text
        part_url = response.json()["transferDirectives"]["partsUploadUrls"][0]
        assert part_url.startswith(first)
        on_second = part_url.replace(first, second, 1)
        put = await http.put(on_second, content=b"0123456789")
        assert put.status_code == 200, put.text
        complete = response.json()["transferDirectives"]["completeUploadUrl"]
        body = (
            "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber>"
            f"<ETag>{put.headers['etag']}</ETag></Part></CompleteMultipartUpload>"
        )
        done = await http.post(complete.replace(first, second, 1), content=body)
        assert done.status_code == 200, done.text
    # Let the transfer job move the file into place before alice_dir is removed.
    for _ in range(120):
        if Path(target).exists():
            break
        await asyncio.sleep(0.5)
    assert Path(target).read_bytes() == b"0123456789"


async def test_redis_outage_falls_back_to_per_server_limits_and_recovers(
    replicas: list[str],
    replica_dirs: list[Path],
    fresh_redis: redis.Redis,
    shared_redis: RedisProcess,
    token_for,
) -> None:
    first, _second = replicas
    alice = bearer(token_for("alice"))
    errors_before = metric(first, "firecrest_shared_state_errors_total", operation="acquire")
    shared_redis.stop()
    try:
        # No Redis: the server's own bucket (burst 20) admits, still limited. One at a time,
        # so that only the first request finds Redis gone before the server stops trying.
        results = await statuses([first], alice, 25, at_once=1)
        assert results.count(200) == 20
        assert results.count(429) == 5
        # Counted, and Redis was tried again only after retry_interval, not per request.
        errors = metric(first, "firecrest_shared_state_errors_total", operation="acquire")
        assert 1 <= errors - errors_before <= 3  # not 25: one failure per retry_interval
    finally:
        shared_redis.start()
    await asyncio.sleep(RETRY_INTERVAL + 0.5)
    # Redis is back (empty): the shared bucket is used again.
    assert await statuses([first], alice, 1) == [200]
    assert fresh_redis.exists("firecrest:rate:alice") == 1
    log = (replica_dirs[0] / "server.log").read_text()
    assert log.count("Redis unreachable") == 1
    assert log.count("Redis reachable again") == 1


@pytest.fixture
def leasing_replicas(
    stack: StackInfo, shared_redis: RedisProcess, tmp_path_factory
) -> Iterator[list]:
    """Two servers with a cap of 2 requests in flight per user and a 3 s slot lease."""
    overrides = {
        "rate_limit": {"requests_per_second": 100, "burst": 100, "max_concurrent_requests": 2},
        "state": {"redis_url": shared_redis.url, "slot_lease": 3},
    }
    big = {"data_operation": {"max_ops_file_size": 64 << 20}}
    with (
        own_server(stack, tmp_path_factory.mktemp("lease-a"), overrides, big) as first,
        own_server(stack, tmp_path_factory.mktemp("lease-b"), overrides, big) as second,
    ):
        yield [first, second]


async def test_a_killed_servers_slots_expire_with_their_lease(
    leasing_replicas: list,
    fresh_redis: redis.Redis,
    stack: StackInfo,
    token_for,
    alice_dir: str,
) -> None:
    first, second = leasing_replicas
    alice = bearer(token_for("alice"))
    big = Path(alice_dir, "big.bin")
    big.write_bytes(b"\0" * (32 << 20))
    home = Path(stack.users["alice"].home).stat()
    os.chown(big, home.st_uid, home.st_gid)
    url = f"/filesystem/{stack.system}/ops/download?path={big}"
    async with httpx.AsyncClient(base_url=first.url, timeout=60) as http:
        # Two downloads that are never read: each holds one of alice's 2 slots on the first
        # server until its last byte is sent, which never happens.
        streams = [http.stream("GET", url, headers=alice) for _ in range(2)]
        responses = [await stream.__aenter__() for stream in streams]
        assert [r.status_code for r in responses] == [200, 200]
        assert fresh_redis.zcard("firecrest:inflight:alice") == 2
        refused = await statuses([second.url], alice, 1)
        os.kill(first.pid, signal.SIGKILL)  # dies holding both slots
    assert refused == [429]
    # Nobody releases them now: they expire with their lease (3 s), then alice is served again.
    await asyncio.sleep(3.5)
    assert await statuses([second.url], alice, 2, at_once=2) == [200, 200]
