"""The scheduler's job query with a fake client (pure logic): one listing naming the jobs
wanted (or, from a server that ignores the names, the short window), then the requested jobs it
missed one by one."""

from __future__ import annotations

from typing import Any

from aiida_firecrest import scheduler as scheduler_module
from aiida_firecrest.client.errors import JobNotFoundError
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
