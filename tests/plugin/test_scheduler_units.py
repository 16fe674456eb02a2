"""The scheduler's job query with a fake client (pure logic): one short listing, then the
requested jobs it missed one by one."""

from __future__ import annotations

from typing import Any

from aiida_firecrest import scheduler as scheduler_module
from aiida_firecrest.client.errors import JobNotFoundError
from aiida_firecrest.scheduler import LISTING_WINDOW, FirecrestScheduler


class FakeClient:
    def __init__(self, listed: list[str], known: list[str]) -> None:
        self.listed, self.known = listed, known
        self.calls: list[tuple[str, Any]] = []

    async def list_jobs(self, system: str, **kwargs: Any) -> list[dict[str, Any]]:
        self.calls.append(("list", kwargs))
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


async def test_the_listing_asks_for_the_shortest_window(monkeypatch) -> None:
    client = FakeClient(listed=["1", "2"], known=[])
    found = await scheduler_with(client, monkeypatch)._collect(["2"])
    assert [job["jobId"] for job in found] == ["2"]
    assert client.calls == [("list", {"time_window": "1h"})]
    assert LISTING_WINDOW == "1h"


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
