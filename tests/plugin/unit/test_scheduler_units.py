"""The scheduler's job query with a fake client (pure logic): one listing naming the jobs
wanted (or, from a server that ignores the names, the short window), then the requested jobs it
missed one by one; and, behind the real client with an in-process fake server that breaks the
listing, the fallback to one lookup per job."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from aiida_firecrest import scheduler as scheduler_module
from aiida_firecrest.client import FirecrestClient, auth, errors
from aiida_firecrest.client.errors import JobNotFoundError
from aiida_firecrest.client.retry import RetryPolicy
from aiida_firecrest.scheduler import IDS_PER_LISTING, LISTING_WINDOW, FirecrestScheduler


class FakeClient:
    """A server holding the ``listed`` jobs (plus ``known`` older ones, found only by id); with
    ``by_ids`` it has the ``compute.jobs.ids`` extension, without it ignores ``job_ids``."""

    def __init__(self, listed: list[str], known: list[str], *, by_ids: bool = False) -> None:
        self.listed, self.known, self.by_ids = listed, known, by_ids
        self.calls: list[tuple[str, Any]] = []

    async def list_jobs(self, system: str, **kwargs: Any) -> list[dict[str, Any]]:
        self.calls.append(("list", kwargs))
        named = kwargs.get("job_ids")
        if self.by_ids and named:
            held = set(self.listed) | set(self.known)
            return [{"jobId": job_id} for job_id in named if job_id in held]
        return [{"jobId": job_id} for job_id in self.listed]

    async def get_job(self, system: str, job_id: str) -> list[dict[str, Any]]:
        self.calls.append(("get", job_id))
        if job_id not in self.known:
            raise JobNotFoundError("Job not found", status_code=404)
        return [{"jobId": job_id}]


class FakeTransport:
    compute_resource = "cluster"

    def __init__(self, client: FakeClient) -> None:
        self.client = client


def scheduler_with(client: FakeClient, monkeypatch) -> FirecrestScheduler:
    scheduler = FirecrestScheduler()
    monkeypatch.setattr(scheduler, "_firecrest", lambda: FakeTransport(client))
    monkeypatch.setattr(scheduler_module, "NOT_FOUND_RETRIES", (0.0,))
    return scheduler


async def test_the_listing_names_the_jobs_and_asks_for_the_shortest_window(monkeypatch) -> None:
    client = FakeClient(listed=["1", "2"], known=[])
    found = await scheduler_with(client, monkeypatch)._collect(["2"])
    assert [job["jobId"] for job in found] == ["2"]
    assert client.calls == [("list", {"time_window": "1h", "job_ids": ["2"]})]
    assert LISTING_WINDOW == "1h"


async def test_all_jobs_without_names_are_the_window(monkeypatch) -> None:
    client = FakeClient(listed=["1", "2"], known=["0"], by_ids=True)
    found = await scheduler_with(client, monkeypatch)._collect([])
    assert [job["jobId"] for job in found] == ["1", "2"]
    assert client.calls == [("list", {"time_window": "1h", "job_ids": None})]


async def test_a_server_that_lists_by_id_finds_older_jobs_in_the_one_listing(monkeypatch) -> None:
    client = FakeClient(listed=["8"], known=["7"], by_ids=True)
    found = await scheduler_with(client, monkeypatch)._collect(["7", "8"])
    assert [job["jobId"] for job in found] == ["7", "8"]
    assert [call[0] for call in client.calls] == ["list"]


async def test_many_ids_are_named_in_bounded_listings(monkeypatch) -> None:
    wanted = [str(n) for n in range(1, 1201)]
    client = FakeClient(listed=wanted, known=[], by_ids=True)
    found = await scheduler_with(client, monkeypatch)._collect(wanted)
    assert [job["jobId"] for job in found] == wanted
    sizes = [len(kwargs["job_ids"]) for _, kwargs in client.calls]
    assert sizes == [IDS_PER_LISTING, IDS_PER_LISTING, 1200 - 2 * IDS_PER_LISTING]


async def test_a_server_that_ignores_the_ids_is_listed_once(monkeypatch) -> None:
    wanted = [str(n) for n in range(1, 1201)]
    client = FakeClient(listed=[*wanted, "5000"], known=[])
    found = await scheduler_with(client, monkeypatch)._collect(wanted)
    assert [job["jobId"] for job in found] == wanted
    assert [call[0] for call in client.calls] == ["list"]


async def test_jobs_the_listing_missed_are_asked_for_one_by_one(monkeypatch) -> None:
    # "7" ended before the window: found by id; "9" is gone for good: left out (AiiDA then
    # takes it as finished), after asking again once.
    client = FakeClient(listed=["8"], known=["7"])
    found = await scheduler_with(client, monkeypatch)._collect(["7", "8", "9"])
    assert [job["jobId"] for job in found] == ["7", "8"]
    assert sorted(call for call in client.calls if call[0] == "get") == [
        ("get", "7"),
        ("get", "9"),
        ("get", "9"),
    ]


# ------------------------------------------------- a broken listing: per-job lookups instead

FAST = RetryPolicy(attempts=2, initial_wait=0.001, max_wait=0.002, max_retry_after=0.01)
JOB_PATH = re.compile(r"^/api/compute/cluster/jobs/(\d+)$")


class FaultyServer:
    """A fake FirecREST (in-process, behind the real client) whose job listing answers
    ``listing``; ``GET .../jobs/{id}`` answers the jobs in ``jobs``, 404 for others."""

    def __init__(self, listing: httpx.Response, jobs: list[str]) -> None:
        self.listing, self.jobs = listing, jobs
        self.requests: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        self.requests.append(path)
        if path == "/api/compute/cluster/jobs":
            return self.listing
        found = JOB_PATH.match(path)
        if found and found.group(1) in self.jobs:
            job = {"jobId": found.group(1), "status": {"state": "RUNNING"}}
            return httpx.Response(200, json={"jobs": [job]})
        body = {"errorType": "error", "message": "Job not found", "user": "alice"}
        return httpx.Response(404, json=body)


def _client_for(server: FaultyServer) -> FirecrestClient:
    return FirecrestClient(
        "http://firecrest.test/api",
        auth.StaticToken("t"),
        retry=FAST,
        transport=httpx.MockTransport(server),
    )


_ERROR = {"errorType": "error", "message": "Remote process failed", "user": "alice"}


@pytest.mark.parametrize(
    "listing",
    [
        # FirecREST v2 on a hostile job name in the user's accounting window
        httpx.Response(500, json=_ERROR),
        # a proxy in front that gave up (retried by the client first)
        httpx.Response(502, text="<html>Bad Gateway</html>"),
        httpx.Response(400, json={**_ERROR, "message": "Invalid request"}),
        httpx.Response(413, json={**_ERROR, "message": "Output exceeds 4096 bytes"}),
        # answers that are not a list of jobs
        httpx.Response(200, text="<html>maintenance</html>"),
        httpx.Response(200, json=["not", "an", "object"]),
        httpx.Response(200, json={"jobs": [{"name": "no id"}]}),
    ],
    ids=["500", "502", "400", "413", "not-json", "json-list", "record-without-id"],
)
async def test_a_failed_listing_falls_back_to_per_job_lookups(monkeypatch, listing) -> None:
    server = FaultyServer(listing, jobs=["11", "12", "13"])
    client = _client_for(server)
    try:
        found = await scheduler_with(client, monkeypatch)._collect(["11", "12", "13"])
    finally:
        await client.aclose()
    # Every tracked job is still reported (AiiDA would take a missing one as finished) ...
    assert [job["jobId"] for job in found] == ["11", "12", "13"]
    assert all(job["status"]["state"] == "RUNNING" for job in found)
    # ... each found by one lookup of its own after the listing failed.
    lookups = [path for path in server.requests if JOB_PATH.match(path)]
    assert sorted(lookups) == [f"/api/compute/cluster/jobs/{n}" for n in ("11", "12", "13")]
    assert "/api/compute/cluster/jobs" in server.requests


async def test_a_job_gone_for_good_is_still_left_out_in_the_fallback(monkeypatch) -> None:
    server = FaultyServer(httpx.Response(500, json=_ERROR), jobs=["11"])
    client = _client_for(server)
    try:
        found = await scheduler_with(client, monkeypatch)._collect(["11", "99"])
    finally:
        await client.aclose()
    assert [job["jobId"] for job in found] == ["11"]


@pytest.mark.parametrize(
    ("listing", "error"),
    [
        # lookups would fail the same way: the error reaches AiiDA, which retries later
        (httpx.Response(401, json={**_ERROR, "message": "Invalid token"}), errors.FirecrestError),
        (httpx.Response(403, json={**_ERROR, "message": "Forbidden"}), errors.FirecrestError),
    ],
)
async def test_auth_failures_are_not_papered_over(monkeypatch, listing, error) -> None:
    server = FaultyServer(listing, jobs=["11"])
    client = _client_for(server)
    try:
        with pytest.raises(error):
            await scheduler_with(client, monkeypatch)._collect(["11"])
    finally:
        await client.aclose()
    assert not [path for path in server.requests if JOB_PATH.match(path)]


async def test_without_job_ids_there_is_nothing_to_fall_back_to(monkeypatch) -> None:
    server = FaultyServer(httpx.Response(500, json=_ERROR), jobs=["11"])
    client = _client_for(server)
    try:
        with pytest.raises(errors.FirecrestError):
            await scheduler_with(client, monkeypatch)._collect([])
    finally:
        await client.aclose()
