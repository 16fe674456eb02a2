"""Shared pieces of the security tests: per-user HTTP clients, token forging, canaries, jobs.

A *canary* is a shell command hidden in a hostile value. It creates a file whose name only a
shell can produce: ``touch fcsecXXXX-$((6*7))`` makes ``fcsecXXXX-42``, while every
legitimate use of the same string (a file name, a job name) keeps the literal ``$((6*7))``. So
finding ``*fcsecXXXX-42*`` anywhere proves that a value reached a shell unquoted, whatever the
working directory of that shell was.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import json
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from firecrest_dev.info import StackInfo

# Where an injected command could leave its file: the users' homes (the working directory of
# their SSH sessions, of transfer jobs and of most test jobs) and the scratch file system.
CANARY_ROOTS = ("/home/alice", "/home/bob", "/tmp")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@dataclass(frozen=True)
class Canary:
    """A unique marker; ``command`` would create a file only a shell can name ``found_name``."""

    tag: str = field(default_factory=lambda: f"fcsec{uuid.uuid4().hex[:10]}")

    @property
    def found_name(self) -> str:
        return f"{self.tag}-42"

    @property
    def command(self) -> str:
        """Relative: lands in the working directory of whatever shell runs it."""
        return f"touch {self.tag}-$((6*7))"

    @property
    def absolute_command(self) -> str:
        return f"touch /tmp/{self.tag}-$((6*7))"

    def hits(self) -> list[str]:
        """Every file named by an executed canary, anywhere under CANARY_ROOTS."""
        result = subprocess.run(
            ["find", *CANARY_ROOTS, "-name", f"*{self.found_name}*"],
            capture_output=True,
            text=True,
        )
        return [line for line in result.stdout.splitlines() if line]


@functools.cache
def _signing_key(pem: str) -> Any:
    # Parsed once: loading an RSA private key checks it, which costs tens of milliseconds.
    return serialization.load_pem_private_key(pem.encode(), password=None)


def forge(stack: StackInfo, claims: dict[str, Any] | None = None, **headers: Any) -> str:
    """A token signed with the identity provider's own key: valid unless a test breaks it."""
    now = int(time.time())
    payload = {
        "iss": stack.issuer,
        "aud": stack.audience,
        "iat": now,
        "exp": now + 300,
        "preferred_username": "alice",
        "sub": "alice-client",
    } | (claims or {})
    payload = {k: v for k, v in payload.items() if v is not None}  # None: leave the claim out
    key = _signing_key(stack.signing_key)
    return jwt.encode(payload, key, algorithm="RS256", headers=headers or None)


def b64url(data: bytes | str) -> str:
    raw = data.encode() if isinstance(data, str) else data
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def unverified_claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


@pytest.fixture(scope="session")
def provider_kid(stack: StackInfo) -> str:
    keys = httpx.get(stack.issuer + "/jwks", timeout=10).json()["keys"]
    return keys[0]["kid"]


@pytest.fixture
def http_as(stack: StackInfo, token_for) -> Iterator[Callable[[str], httpx.Client]]:
    """http_as("bob") -> a client for the API acting as that user (closed afterwards)."""
    clients: list[httpx.Client] = []

    def make(user: str) -> httpx.Client:
        client = httpx.Client(base_url=stack.url, headers=bearer(token_for(user)), timeout=120)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def ops(stack: StackInfo) -> str:
    return f"/filesystem/{stack.system}/ops"


def transfer(stack: StackInfo) -> str:
    return f"/filesystem/{stack.system}/transfer"


def jobs_url(stack: StackInfo) -> str:
    return f"/compute/{stack.system}/jobs"


@pytest.fixture
def alice_work(stack: StackInfo, http_as) -> Iterator[str]:
    """A fresh directory in alice's home, removed with everything in it afterwards."""
    api = http_as("alice")
    path = f"{stack.users['alice'].home}/sec-{uuid.uuid4().hex[:10]}"
    assert api.post(f"{ops(stack)}/mkdir", json={"path": path}).status_code == 201
    yield path
    api.delete(f"{ops(stack)}/rm", params={"path": path})
    if os.path.lexists(path):
        # A probe may have taken a directory's search bit away (chmod with a hostile mode), so
        # `rm -r` as alice could not descend into it. The stack is local: root restores the
        # owner's rights (chmod skips symlinks met while recursing) and removes the tree.
        subprocess.run(["chmod", "-R", "u+rwx", "--", path], check=False)
        shutil.rmtree(path)


@pytest.fixture
def bob_secret(stack: StackInfo, http_as) -> Iterator[tuple[str, str, bytes]]:
    """(directory, file, content): bob's private data, in his 0700 home."""
    api = http_as("bob")
    directory = f"{stack.users['bob'].home}/secret-{uuid.uuid4().hex[:10]}"
    content = f"bob's secret {uuid.uuid4().hex}\n".encode()
    assert api.post(f"{ops(stack)}/mkdir", json={"path": directory}).status_code == 201
    uploaded = api.post(
        f"{ops(stack)}/upload", params={"path": directory}, files={"file": ("s.txt", content)}
    )
    assert uploaded.status_code == 204, uploaded.text
    yield directory, f"{directory}/s.txt", content
    api.delete(f"{ops(stack)}/rm", params={"path": directory})


TERMINAL = {
    "BOOT_FAIL",
    "CANCELLED",
    "COMPLETED",
    "DEADLINE",
    "FAILED",
    "NODE_FAIL",
    "OUT_OF_MEMORY",
    "PREEMPTED",
    "TIMEOUT",
}


async def wait_for_jobs(
    client: httpx.AsyncClient, stack: StackInfo, job_ids: list[str], timeout: float = 240
) -> dict[str, str]:
    """Final state of each job, polling the API; cancels whatever is still alive at the end."""
    states: dict[str, str] = {}
    deadline = time.monotonic() + timeout
    pending = set(job_ids)
    while pending and time.monotonic() < deadline:
        listed = await client.get(jobs_url(stack), params={"time_window": "1h"})
        listed.raise_for_status()
        for job in listed.json()["jobs"]:
            if job["jobId"] in pending and job["status"]["state"] in TERMINAL:
                states[job["jobId"]] = job["status"]["state"]
                pending.discard(job["jobId"])
        if pending:
            await asyncio.sleep(1)
    for job_id in pending:
        await client.delete(f"{jobs_url(stack)}/{job_id}")
        states[job_id] = "TIMED OUT IN TEST"
    return states


@pytest.fixture
async def alice_async(stack: StackInfo, token_for) -> AsyncIterator[httpx.AsyncClient]:
    limits = httpx.Limits(max_connections=32, max_keepalive_connections=32)
    async with httpx.AsyncClient(
        base_url=stack.url, headers=bearer(token_for("alice")), timeout=120, limits=limits
    ) as client:
        yield client
