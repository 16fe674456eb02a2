"""Any step on any replica: staged transfers and job lookups split across the two replicas, and
the balancer's rendered configuration."""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from firecrest_dev.info import StackInfo

pytestmark = pytest.mark.stack

# Above the stack's staging part size (16 MiB): two parts.
UPLOAD_SIZE = 17 * 1024 * 1024


class Replicas:
    """The two replicas' direct URLs, and an authenticated client for alice."""

    def __init__(self, stack: StackInfo, http: httpx.AsyncClient) -> None:
        self.stack, self.http = stack, http
        self.first, self.second = (r["url"] for r in stack.replicas)

    def api(self, base: str, path: str) -> str:
        return f"{base}{path}".replace("{system}", self.stack.system)

    async def wait_for_job(self, base: str, job_id: str) -> str:
        for _ in range(600):
            response = await self.http.get(self.api(base, f"/compute/{{system}}/jobs/{job_id}"))
            assert response.status_code == 200, response.text
            state = response.json()["jobs"][0]["status"]["state"]
            if state not in ("PENDING", "RUNNING", "CONFIGURING", "COMPLETING"):
                return state
            await asyncio.sleep(0.2)
        raise AssertionError(f"job {job_id} still {state}")


@pytest.fixture
async def alice(replicas: StackInfo) -> AsyncIterator[tuple[Replicas, str]]:
    """Alice's client and a fresh directory in her home (removed afterwards)."""
    headers = {"Authorization": f"Bearer {replicas.fetch_token('alice')}"}
    async with httpx.AsyncClient(headers=headers, timeout=60) as http:
        both = Replicas(replicas, http)
        path = f"{replicas.users['alice'].home}/replicas-{uuid.uuid4().hex[:10]}"
        mkdir = await http.post(
            both.api(both.first, "/filesystem/{system}/ops/mkdir"), json={"path": path}
        )
        assert mkdir.status_code == 201, mkdir.text
        yield both, path
        rm = await http.delete(
            both.api(both.second, "/filesystem/{system}/ops/rm"), params={"path": path}
        )
        assert rm.status_code == 204


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def test_staged_upload_and_download_split_across_replicas(alice) -> None:
    both, directory = alice
    data = os.urandom(UPLOAD_SIZE)
    target = f"{directory}/staged.bin"
    # Started on the first replica: its staging URLs point at the first replica ...
    started = await both.http.post(
        both.api(both.first, "/filesystem/{system}/transfer/upload"),
        json={
            "path": target,
            "transferDirectives": {"transferMethod": "s3", "fileSize": len(data)},
        },
    )
    assert started.status_code == 201, started.text
    directives = started.json()["transferDirectives"]
    parts, part_size = directives["partsUploadUrls"], directives["maxPartSize"]
    assert len(parts) == 2
    assert all(url.startswith(both.first) for url in parts)
    # ... the parts go through the second (signed by the first: the key is shared) ...
    etags = []
    async with httpx.AsyncClient(timeout=120) as anonymous:
        for number, url in enumerate(parts):
            chunk = data[number * part_size : (number + 1) * part_size]
            put = await anonymous.put(url.replace(both.first, both.second), content=chunk)
            assert put.status_code == 200, put.text
            etags.append(put.headers["etag"])
        # ... and the first completes it.
        xml = "".join(
            f"<Part><PartNumber>{n}</PartNumber><ETag>{etag}</ETag></Part>"
            for n, etag in enumerate(etags, start=1)
        )
        complete = await anonymous.post(
            directives["completeUploadUrl"],
            content=f"<CompleteMultipartUpload>{xml}</CompleteMultipartUpload>",
        )
        assert complete.status_code == 200, complete.text
        job_id = started.json()["transferJob"]["jobId"]
        assert await both.wait_for_job(both.second, job_id) == "COMPLETED"
        assert _sha256(Path(target).read_bytes()) == _sha256(data)
        checksum = await both.http.get(
            both.api(both.second, "/filesystem/{system}/ops/checksum"), params={"path": target}
        )
        assert checksum.json()["output"]["checksum"] == _sha256(data)

        # A staged download: asked of the second replica, fetched from the first.
        staged = await both.http.post(
            both.api(both.second, "/filesystem/{system}/transfer/download"),
            json={"path": target, "transferDirectives": {"transferMethod": "s3"}},
        )
        assert staged.status_code == 201, staged.text
        job_id = staged.json()["transferJob"]["jobId"]
        assert await both.wait_for_job(both.first, job_id) == "COMPLETED"
        url = staged.json()["transferDirectives"]["downloadUrl"]
        assert url.startswith(both.second)
        fetched = await anonymous.get(url.replace(both.second, both.first))
        assert fetched.status_code == 200
        assert _sha256(fetched.content) == _sha256(data)
    print(f"\nstaged {len(data)} bytes in {len(parts)} parts across both replicas, and back")


async def test_a_job_submitted_on_one_replica_is_found_at_once_on_the_other(alice) -> None:
    both, directory = alice
    jobs = []
    for i in range(6):
        submit_on, ask_on = (both.first, both.second) if i % 2 == 0 else (both.second, both.first)
        submitted = await both.http.post(
            both.api(submit_on, "/compute/{system}/jobs"),
            json={"job": {"workingDirectory": directory, "script": "#!/bin/bash\ntrue\n"}},
        )
        assert submitted.status_code == 201, submitted.text
        job_id = str(submitted.json()["jobId"])
        # At once, on the other replica: never 404 (Slurm may not list it yet; the marker the
        # first replica left on the cluster says the id was issued).
        found = await both.http.get(both.api(ask_on, f"/compute/{{system}}/jobs/{job_id}"))
        assert found.status_code == 200, found.text
        assert found.json()["jobs"][0]["jobId"] == job_id
        listed = await both.http.get(
            both.api(ask_on, "/compute/{system}/jobs"), params={"job_ids": job_id}
        )
        assert [j["jobId"] for j in listed.json()["jobs"]] == [job_id]
        jobs.append(job_id)
    marker_dir = Path(
        both.stack.users["alice"].home, ".firecrest-server/submitted", both.stack.system
    )
    assert all((marker_dir / job_id).exists() for job_id in jobs)
    print(f"\n{len(jobs)} jobs submitted on one replica, each found at once on the other")


def test_rendered_haproxy_config_is_valid(replicas: StackInfo) -> None:
    config = Path(replicas.dir, "haproxy", "haproxy.cfg")
    checked = subprocess.run(
        ["haproxy", "-c", "-f", str(config)], capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0, checked.stderr
    text = config.read_text()
    for line in (
        "option httpchk GET /status/liveness",
        "retry-on conn-failure empty-response response-timeout",
        "option redispatch 1",
        "http-request disable-l7-retry unless METH_GET or METH_HEAD or METH_OPTIONS",
    ):
        assert line in text
    for replica in replicas.replicas:
        assert f"server {replica['name']} {replica['url'].removeprefix('http://')} check" in text
