"""Unit tests of what the client does when the answer to a request that is not repeated is lost
(a replica died after the request went out): a submit looks the job up by its working directory
instead of submitting again; a mkdir looks at the directory. An in-process fake server; the real
thing is tests/replicas/test_aiida_restart.py."""

from __future__ import annotations

import errno

import httpx
import pytest

from aiida_firecrest.client import auth, errors
from aiida_firecrest.client.api import FirecrestClient
from aiida_firecrest.client.errors import answer_lost
from aiida_firecrest.client.jobs import job_in_directory
from aiida_firecrest.client.retry import RetryPolicy

FAST = RetryPolicy(attempts=3, initial_wait=0.001, max_wait=0.002, max_retry_after=0.01)
WORKDIR = "/home/alice/aiida/ab/cd/ef01/"


def client(handler) -> FirecrestClient:
    return FirecrestClient(
        "http://firecrest.test/api",
        auth.StaticToken("t0"),
        retry=FAST,
        transport=httpx.MockTransport(handler),
        lost_submit_lookups=(0.0, 0.0),  # two looks, at once
    )


def listing(*jobs: tuple[str, str]) -> httpx.Response:
    return httpx.Response(
        200, json={"jobs": [{"jobId": i, "workingDirectory": d} for i, d in jobs]}
    )


class FakeCompute:
    """POST jobs answers ``submits`` in turn (a response, or an exception to raise); GET jobs
    answers ``listings`` in turn."""

    def __init__(self, *submits, listings: list[httpx.Response]) -> None:
        self.answers = list(submits)
        self.listings = list(listings)
        self.submits = 0
        self.lookups = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            self.submits += 1
            answer = self.answers.pop(0)
            if isinstance(answer, Exception):
                raise answer
            return answer
        self.lookups += 1
        return self.listings.pop(0)


async def submit(fake: FakeCompute) -> str:
    api = client(fake)
    try:
        return await api.submit_job(
            "cluster", working_directory=WORKDIR, script_path=f"{WORKDIR}_aiidasubmit.sh"
        )
    finally:
        await api.aclose()


@pytest.mark.parametrize(
    "failure",
    [
        httpx.Response(502, text="<html><body><h1>502 Bad Gateway</h1>\nThe server ...\n"),
        httpx.Response(504, text="gateway timeout"),
        httpx.RemoteProtocolError("Server disconnected without sending a response."),
        httpx.ReadError("connection reset by peer"),
        httpx.ReadTimeout("timed out"),
    ],
)
async def test_a_lost_answer_is_found_by_its_working_directory(failure, caplog) -> None:
    fake = FakeCompute(
        failure,
        listings=[
            listing(("41", "/home/alice/other"), ("42", WORKDIR.rstrip("/")), ("40", WORKDIR))
        ],
    )
    assert await submit(fake) == "42"
    assert fake.submits == 1  # never sent again
    assert fake.lookups == 1
    # One warning, on one line (a gateway's 502 page is lines of HTML), that says what was done.
    [message] = [r.getMessage() for r in caplog.records if "answer lost" in r.getMessage()]
    assert "job 42 found" in message
    assert "taken as submitted" in message
    assert "\n" not in message


async def test_a_job_that_appears_late_is_found_by_the_second_look() -> None:
    fake = FakeCompute(httpx.Response(502), listings=[listing(), listing(("7", WORKDIR))])
    assert await submit(fake) == "7"
    assert (fake.submits, fake.lookups) == (1, 2)


CREATED = httpx.Response(201, json={"jobId": 8})


async def test_no_job_found_after_the_looks_submits_again_once() -> None:
    fake = FakeCompute(httpx.Response(502), CREATED, listings=[listing(), listing()])
    assert await submit(fake) == "8"
    assert (fake.submits, fake.lookups) == (1 + 1, 2)


async def test_a_second_lost_answer_with_no_job_raises() -> None:
    fake = FakeCompute(
        httpx.Response(502, text="bad gateway"),
        httpx.Response(502, text="bad gateway"),
        listings=[listing()] * 4,
    )
    with pytest.raises(errors.FirecrestError, match="bad gateway") as raised:
        await submit(fake)
    assert raised.value.status_code == 502
    assert (fake.submits, fake.lookups) == (2, 4)


async def test_a_listing_that_cannot_be_read_is_no_reason_to_submit_again() -> None:
    fake = FakeCompute(
        httpx.Response(502, text="bad gateway"),
        listings=[httpx.Response(500, json={"message": "sacct failed"})] * 2,
    )
    with pytest.raises(errors.FirecrestError, match="bad gateway"):
        await submit(fake)
    assert (fake.submits, fake.lookups) == (1, 2)


@pytest.mark.parametrize(
    "failure",
    [
        httpx.Response(400, json={"message": "sbatch: error: invalid partition"}),
        httpx.Response(500, json={"message": "Internal server error"}),
        httpx.Response(403, json={"message": "Permission denied"}),
        httpx.ConnectError("connection refused"),  # never reached: retried, then raised
    ],
)
async def test_an_answer_from_the_server_is_not_a_lost_answer(failure) -> None:
    fake = FakeCompute(failure, failure, failure, listings=[])
    with pytest.raises(errors.FirecrestError):
        await submit(fake)
    assert fake.lookups == 0


def test_answer_lost_decisions() -> None:
    lost = errors.FirecrestConnectionError("broke", errno_value=errno.ECONNRESET)
    refused = errors.FirecrestConnectionError("refused", errno_value=errno.ECONNREFUSED)
    assert answer_lost(lost)
    assert answer_lost(errors.FirecrestError("x", status_code=502))
    assert answer_lost(errors.FirecrestError("x", status_code=504))
    assert not answer_lost(refused)
    assert not answer_lost(errors.FirecrestError("x", status_code=503))
    assert not answer_lost(errors.FirecrestError("x", status_code=500))
    assert not answer_lost(ValueError("x"))


def test_job_in_directory_takes_the_newest_exact_match() -> None:
    jobs = [
        {"jobId": "9", "workingDirectory": "/w/a"},
        {"jobId": "10", "workingDirectory": "/w/a/"},
        {"jobId": "11", "workingDirectory": "/w/ab"},
        {"jobId": "12", "workingDirectory": None},
    ]
    assert job_in_directory(jobs, "/w/a/") == "10"  # 10 > 9 as numbers, not as strings
    assert job_in_directory(jobs, "/w/b") is None
    assert job_in_directory([], "/w/a") is None


# ------------------------------------------------------------------------------------ mkdir


class FakeMkdir:
    """POST mkdir answers ``posts`` in turn (a response, or an exception to raise); stat says
    a directory is there once ``made_after`` POSTs have been answered (None: never)."""

    def __init__(self, *posts, made_after: int | None) -> None:
        self.posts, self.made_after = list(posts), made_after
        self.calls: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.calls.append(f"{request.method} {request.url.path.rsplit('/', 1)[-1]}")
        if request.method == "POST":
            answer = self.posts.pop(0)
            if isinstance(answer, Exception):
                raise answer
            return answer
        posted = self.calls.count("POST mkdir")
        if self.made_after is None or posted < self.made_after:
            return httpx.Response(404, json={"message": "/w/new: No such file or directory"})
        return httpx.Response(200, json={"output": {"mode": 0o40755, "size": 4096}})


async def mkdir(fake: FakeMkdir, *, parents: bool = False) -> None:
    api = client(fake)
    try:
        await api.mkdir("cluster", "/w/new", parents=parents)
    finally:
        await api.aclose()


LOST = httpx.RemoteProtocolError("Server disconnected without sending a response.")
EXISTS = httpx.Response(400, json={"message": "/w/new: File exists"})


async def test_a_lost_mkdir_whose_directory_is_there_succeeds() -> None:
    fake = FakeMkdir(LOST, made_after=1)
    await mkdir(fake)
    assert fake.calls == ["POST mkdir", "GET stat"]  # not sent again


async def test_a_lost_mkdir_whose_directory_is_not_there_is_sent_again() -> None:
    fake = FakeMkdir(LOST, httpx.Response(201), made_after=None)
    await mkdir(fake)
    assert fake.calls == ["POST mkdir", "GET stat", "POST mkdir"]


async def test_a_lost_mkdir_whose_directory_appears_late_succeeds() -> None:
    # Not there when looked at; made by the lost request before the second arrived.
    fake = FakeMkdir(LOST, EXISTS, made_after=2)
    await mkdir(fake)
    assert fake.calls == ["POST mkdir", "GET stat", "POST mkdir", "GET stat"]


async def test_a_mkdir_lost_twice_raises() -> None:
    fake = FakeMkdir(httpx.Response(502, text="bad gateway"), LOST, made_after=None)
    with pytest.raises(errors.FirecrestError, match="broke"):
        await mkdir(fake)
    assert fake.calls == ["POST mkdir", "GET stat", "POST mkdir", "GET stat"]


async def test_a_refused_mkdir_is_not_looked_at() -> None:
    fake = FakeMkdir(EXISTS, made_after=0)
    with pytest.raises(FileExistsError):
        await mkdir(fake)
    assert fake.calls == ["POST mkdir"]
