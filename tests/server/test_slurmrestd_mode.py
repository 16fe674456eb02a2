"""scheduler.connection_mode rest against the stack's real slurmrestd: the same answers as ssh.

Two servers of our own on the session's stack, one per mode (the session's server may run
either, see FIRECREST_SLURM_MODE), are asked the same questions about the same jobs; and a
server whose slurmrestd is down answers 503 with Retry-After.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from firecrest_dev.info import StackInfo
from firecrest_dev.own_server import own_server
from firecrest_dev.running import free_ports

pytestmark = pytest.mark.stack

# The fields both modes must agree on for a finished job.
COMPARED = (
    "jobId",
    "name",
    "user",
    "account",
    "partition",
    "workingDirectory",
    "allocationNodes",
    "cluster",
)


def _rest(stack: StackInfo, api_url: str | None = None) -> dict:
    return {
        "scheduler": {
            "connection_mode": "rest",
            "api_url": api_url or stack.slurmrestd_url,
            "api_version": stack.slurmrestd_api_version,
        }
    }


@pytest.fixture(scope="module")
def servers(stack: StackInfo, tmp_path_factory) -> Iterator[dict[str, str]]:
    ssh = {"scheduler": {"connection_mode": "ssh"}}
    with (
        own_server(stack, tmp_path_factory.mktemp("mode-ssh"), system_overrides=ssh) as by_ssh,
        own_server(
            stack, tmp_path_factory.mktemp("mode-rest"), system_overrides=_rest(stack)
        ) as by_rest,
    ):
        yield {"ssh": by_ssh.url, "rest": by_rest.url}


@pytest.fixture
def as_user(servers, stack: StackInfo, token_for) -> Iterator:
    clients: list[httpx.Client] = []

    def make(mode: str, user: str = "alice") -> httpx.Client:
        client = httpx.Client(
            base_url=f"{servers[mode]}/compute/{stack.system}",
            headers={"Authorization": f"Bearer {token_for(user)}"},
            timeout=60,
        )
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def workdir(stack: StackInfo, as_user) -> Iterator[str]:
    directory = f"{stack.users['alice'].home}/rest-{uuid.uuid4().hex[:10]}"
    files = httpx.Client(
        base_url=as_user("ssh").base_url.copy_with(path=f"/filesystem/{stack.system}"),
        headers=as_user("ssh").headers,
        timeout=60,
    )
    with files:
        assert files.post("/ops/mkdir", json={"path": directory}).status_code == 201
        yield directory
        assert files.delete("/ops/rm", params={"path": directory}).status_code == 204


def _submit(client: httpx.Client, directory: str, script: str, **fields) -> str:
    body = {"job": {"workingDirectory": directory, "script": script, **fields}}
    response = client.post("/jobs", json=body)
    assert response.status_code == 201, response.text
    return response.json()["jobId"]


def _wait_final(client: httpx.Client, job_id: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        response = client.get(f"/jobs/{job_id}")
        assert response.status_code == 200, response.text  # never a 404 after the submit
        job = response.json()["jobs"][0]
        if job["status"]["state"] not in ("PENDING", "RUNNING", "COMPLETING"):
            return job
        assert time.monotonic() < deadline, job
        time.sleep(0.5)


def test_a_job_submitted_over_rest_looks_the_same_in_both_modes(as_user, workdir) -> None:
    rest, ssh = as_user("rest"), as_user("ssh")
    job_id = _submit(rest, workdir, "#!/bin/bash\necho hi\nexit 3\n", name="rest-parity")
    final = _wait_final(rest, job_id)
    assert final["status"]["state"] == "FAILED"
    assert final["status"]["exitCode"] == 3
    by_ssh = ssh.get(f"/jobs/{job_id}").json()["jobs"][0]
    for key in COMPARED:
        assert final[key] == by_ssh[key], key
    assert final["user"] == "alice"
    # Listing by ids (the extension) and the plain listing agree as well.
    for client in (rest, ssh):
        listed = client.get("/jobs", params={"job_ids": job_id}).json()["jobs"]
        assert [(j["jobId"], j["status"]["exitCode"]) for j in listed] == [(job_id, 3)]
        assert job_id in [j["jobId"] for j in client.get("/jobs").json()["jobs"]]


def test_cancel_answers_as_scancel_does(as_user, workdir) -> None:
    rest, ssh = as_user("rest"), as_user("ssh")
    job_id = _submit(rest, workdir, "#!/bin/bash\nsleep 300\n")
    # bob may not cancel alice's job, in either mode
    for mode in ("rest", "ssh"):
        assert as_user(mode, "bob").delete(f"/jobs/{job_id}").status_code == 403
    assert rest.delete(f"/jobs/{job_id}").status_code == 204
    final = _wait_final(rest, job_id)
    assert final["status"]["state"] == "CANCELLED"
    statuses = {
        mode: c.delete(f"/jobs/{job_id}").status_code for mode, c in (("rest", rest), ("ssh", ssh))
    }
    assert statuses == {"rest": 409, "ssh": 409}
    missing = {
        mode: c.delete("/jobs/999999").status_code for mode, c in (("rest", rest), ("ssh", ssh))
    }
    assert missing == {"rest": 404, "ssh": 404}


@pytest.mark.parametrize(
    "fields",
    [{"partition": "no-such-partition"}, {"account": "no-such-account"}],
)
def test_refused_submissions_get_the_same_status(as_user, workdir, fields) -> None:
    statuses = {}
    for mode in ("rest", "ssh"):
        body = {"job": {"workingDirectory": workdir, "script": "#!/bin/bash\ntrue\n", **fields}}
        response = as_user(mode).post("/jobs", json=body)
        statuses[mode] = response.status_code
        assert "Job submission refused" in response.json()["message"]
    assert statuses == {"rest": 400, "ssh": 400}


def test_a_script_path_is_read_as_the_caller_and_names_the_job(as_user, workdir) -> None:
    rest = as_user("rest")
    files = httpx.Client(
        base_url=rest.base_url.copy_with(path=rest.base_url.path.replace("compute", "filesystem")),
        headers=rest.headers,
        timeout=60,
    )
    with files:
        response = files.post(
            "/ops/upload",
            params={"path": workdir},
            files={"file": ("by-path.sh", b"#!/bin/bash\nexit 0\n")},
        )
        assert response.status_code == 204, response.text
    job_id = rest.post(
        "/jobs", json={"job": {"workingDirectory": workdir, "scriptPath": f"{workdir}/by-path.sh"}}
    ).json()["jobId"]
    final = _wait_final(rest, job_id)
    assert (final["name"], final["status"]["state"]) == ("by-path.sh", "COMPLETED")
    missing = {"workingDirectory": workdir, "scriptPath": f"{workdir}/absent.sh"}
    for mode in ("rest", "ssh"):
        assert as_user(mode).post("/jobs", json={"job": missing}).status_code == 400


def test_slurmrestd_down_is_503_with_retry_after(
    stack: StackInfo, tmp_path_factory, token_for
) -> None:
    closed = f"http://127.0.0.1:{free_ports(1)[0]}"
    with own_server(
        stack, tmp_path_factory.mktemp("mode-down"), system_overrides=_rest(stack, closed)
    ) as url:
        response = httpx.get(
            f"{url}/compute/{stack.system}/jobs",
            headers={"Authorization": f"Bearer {token_for('alice')}"},
            timeout=60,
        )
    assert response.status_code == 503, response.text
    assert int(response.headers["Retry-After"]) >= 1
    assert "slurmrestd" in response.json()["message"]


@pytest.mark.parametrize("what", ["nodes", "partitions", "reservations"])
def test_cluster_status_is_the_same_in_both_modes(servers, stack, token_for, what) -> None:
    answers = {}
    for mode, url in servers.items():
        response = httpx.get(
            f"{url}/status/{stack.system}/{what}",
            headers={"Authorization": f"Bearer {token_for('alice')}"},
            timeout=60,
        )
        assert response.status_code == 200, response.text
        answers[mode] = response.json()[what]
    for answer in answers.values():
        for item in answer:
            # Load and free memory change between two samples.
            item.pop("cpuLoad", None)
            item.pop("freeMemory", None)
    assert answers["rest"] == answers["ssh"]
    if what != "reservations":
        assert answers["rest"]  # the stack has a node and a partition
