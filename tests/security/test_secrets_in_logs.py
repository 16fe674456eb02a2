"""No credential reaches the server's log, its metrics or its error messages.

A real session against the stack's own server: bearer requests with fresh tokens from the
identity provider (alice and bob), a token with a broken signature, a token in the query string,
and a staged upload and download through the server's S3-style staging URLs (each URL carries a
signed capability). Then the real log file the server's stderr goes to (``DIR/log/server.out``)
and ``/metrics`` are searched for every token used, whole and by its signature and payload: none
may be there, while every request of the session must be in the access log.
"""

from __future__ import annotations

import hashlib
import os
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from firecrest_dev.info import StackInfo

from .conftest import bearer, forge, ops, transfer

pytestmark = pytest.mark.stack

PART_SIZE = 16 * 1024 * 1024  # the stack's data_operation.staging_part_size


class Session:
    """Requests of one test, each with its own request id, and every secret they carried."""

    def __init__(self, stack: StackInfo) -> None:
        self.stack = stack
        self.marker = f"secrets-{uuid.uuid4().hex[:12]}"
        self.sent = 0
        self.secrets: list[str] = []
        self.http = httpx.Client(timeout=120)

    def request(self, method: str, url: str, **kwargs) -> httpx.Response:
        self.sent += 1
        headers = kwargs.pop("headers", {}) | {"X-Request-ID": f"{self.marker}-{self.sent}"}
        return self.http.request(method, url, headers=headers, **kwargs)

    def api(self, method: str, path: str, token: str, **kwargs) -> httpx.Response:
        self.secrets.append(token)
        return self.request(method, f"{self.stack.url}{path}", headers=bearer(token), **kwargs)

    def staging_url(self, url: str) -> str:
        self.secrets.append(url.split("/staging/")[1].split("/")[0])
        return url


@pytest.fixture
def session(stack: StackInfo) -> Iterator[Session]:
    s = Session(stack)
    yield s
    s.http.close()


def _pieces(token: str) -> set[str]:
    """The token and its payload and signature (the header is the same for many tokens)."""
    parts = token.split(".")
    return {token, *(p for p in parts[1:] if len(p) >= 16)}


def _wait_for_file(session: Session, token: str, path: str, size: int) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        stat = session.api("GET", f"{ops(session.stack)}/stat", token, params={"path": path})
        if stat.status_code == 200 and stat.json()["output"]["size"] == size:
            return
        time.sleep(1)
    raise AssertionError(f"{path} did not arrive")


def _remove_job_logs(session: Session, token: str, job_logs: list[dict]) -> None:
    """The transfer jobs' logs in alice's home (shared by every stack on this machine), once
    each job has written its output."""
    deadline = time.monotonic() + 60
    for logs in job_logs:
        path = logs["outputLog"]
        while time.monotonic() < deadline:
            stat = session.api("GET", f"{ops(session.stack)}/stat", token, params={"path": path})
            if stat.status_code == 200 and stat.json()["output"]["size"] > 0:
                break
            time.sleep(0.5)
        for log in (logs["outputLog"], logs["errorLog"]):
            session.api("DELETE", f"{ops(session.stack)}/rm", token, params={"path": log})


def test_no_token_in_logs_metrics_or_errors(stack: StackInfo, session: Session) -> None:
    log_file = stack.dir / "log" / "server.out"
    home = stack.users["alice"].home
    alice = [stack.fetch_token("alice") for _ in range(2)]
    bob = stack.fetch_token("bob")
    for token in alice:
        assert session.api("GET", "/status/systems", token).status_code == 200
        listed = session.api("GET", f"{ops(stack)}/ls", token, params={"path": home})
        assert listed.status_code == 200
    assert session.api("GET", f"/status/{stack.system}/userinfo", bob).status_code == 200
    # Refused ones: a broken signature (401), bob at alice's files (403), a token in the query.
    broken = alice[0][:-6] + ("AAAAAA" if not alice[0].endswith("AAAAAA") else "BBBBBB")
    assert session.api("GET", "/status/systems", broken).status_code == 401
    denied = session.api("GET", f"{ops(stack)}/ls", bob, params={"path": home})
    assert denied.status_code == 403
    in_query = forge(stack)
    session.secrets.append(in_query)
    queried = session.request(
        "GET", f"{stack.url}/status/systems", params={"access_token": in_query}
    )
    assert queried.status_code == 401

    # A staged upload of two parts and a staged download, through the staging URLs.
    data = os.urandom(PART_SIZE + 1000)
    target = f"{home}/secrets-{uuid.uuid4().hex[:8]}.bin"
    token = alice[1]
    started = session.api(
        "POST",
        f"{transfer(stack)}/upload",
        token,
        json={
            "path": target,
            "transferDirectives": {"transferMethod": "s3", "fileSize": len(data)},
        },
    )
    assert started.status_code == 201, started.text
    job_logs = [started.json()["transferJob"]["logs"]]
    directives = started.json()["transferDirectives"]
    parts = []
    for number, url in enumerate(directives["partsUploadUrls"], start=1):
        chunk = data[(number - 1) * PART_SIZE : number * PART_SIZE]
        put = session.request("PUT", session.staging_url(url), content=chunk)
        assert put.status_code == 200, put.text
        parts.append(f"<Part><PartNumber>{number}</PartNumber><ETag>{put.headers['etag']}</ETag>")
    assert len(parts) == 2
    body = f"<CompleteMultipartUpload>{'</Part>'.join(parts)}</Part></CompleteMultipartUpload>"
    done = session.request(
        "POST", session.staging_url(directives["completeUploadUrl"]), content=body
    )
    assert done.status_code == 200, done.text
    try:
        _wait_for_file(session, token, target, len(data))
        started = session.api(
            "POST",
            f"{transfer(stack)}/download",
            token,
            json={"sourcePath": target, "transferDirectives": {"transferMethod": "s3"}},
        )
        assert started.status_code == 201, started.text
        job_logs.append(started.json()["transferJob"]["logs"])
        url = session.staging_url(started.json()["transferDirectives"]["downloadUrl"])
        got = session.request("GET", url)
        assert got.status_code == 200
        assert hashlib.sha256(got.content).digest() == hashlib.sha256(data).digest()
        # A tampered staging URL is refused, and its error message holds no token either.
        tampered = url.replace("/object", "x/object")
        refused = session.request("GET", tampered)
        assert refused.status_code in (403, 404)
        assert not any(piece in refused.text for s in session.secrets for piece in _pieces(s))
    finally:
        session.api("DELETE", f"{ops(stack)}/rm", token, params={"path": target})
        _remove_job_logs(session, token, job_logs)
    metrics = session.http.get(f"{stack.url}/metrics")  # logged at debug only: not counted
    assert metrics.status_code == 200

    # Every request of the session is in the access log (written after the response is sent).
    ids = {f"{session.marker}-{n}" for n in range(1, session.sent + 1)}
    deadline = time.monotonic() + 15
    while True:
        text = log_file.read_text(errors="replace")
        logged = {i for i in ids if f'"request_id": "{i}"' in text}
        if logged == ids or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert logged == ids
    assert text.count('"path": "/staging/[redacted]/parts/') >= 2
    secrets = {piece for secret in session.secrets for piece in _pieces(secret)}
    # alice's two tokens, bob's, the broken one, the one in the query, two staging capabilities
    assert len(set(session.secrets)) == 7
    hits = {piece for piece in secrets if piece in text or piece in metrics.text}
    assert hits == set()
