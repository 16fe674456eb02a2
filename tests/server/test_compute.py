"""Slurm jobs through the API against the real Slurm, with pyfirecrest 3.10 and plain httpx."""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from pathlib import Path

import firecrest
import httpx
import pytest

from firecrest_dev.info import StackInfo

from .conftest import Client

pytestmark = pytest.mark.stack


async def test_submit_wait_completed_with_exit_code_and_metadata(
    alice: Client, stack: StackInfo, alice_dir: str
) -> None:
    script = "#!/bin/bash\necho started\nexit 3\n"
    submitted = await alice.submit(stack.system, working_dir=alice_dir, script_str=script)
    job_id = str(submitted["jobId"])
    final = await alice.wait_for_job(stack.system, job_id, timeout=120)
    assert final[0]["status"]["state"] == "FAILED"
    assert final[0]["status"]["exitCode"] == 3
    ok = await alice.submit(stack.system, working_dir=alice_dir, script_str="#!/bin/bash\ntrue\n")
    done = await alice.wait_for_job(stack.system, str(ok["jobId"]), timeout=120)
    assert done[0]["status"]["state"] == "COMPLETED"
    assert done[0]["status"]["exitCode"] == 0
    assert done[0]["user"] == "alice"
    info = await alice.job_info(stack.system, job_id)
    assert info[0]["jobId"] == job_id
    meta = await alice.job_metadata(stack.system, job_id)
    assert meta[0]["script"] == script
    assert meta[0]["standardOutput"] == f"{alice_dir}/slurm-{job_id}.out"
    assert (await alice.view(stack.system, meta[0]["standardOutput"])) == "started\n"


async def test_cancel_gives_cancelled(alice: Client, stack: StackInfo, alice_dir: str) -> None:
    submitted = await alice.submit(
        stack.system, working_dir=alice_dir, script_str="#!/bin/bash\nsleep 300\n"
    )
    job_id = str(submitted["jobId"])
    await alice.cancel_job(stack.system, job_id)
    final = await alice.wait_for_job(stack.system, job_id, timeout=120)
    assert final[0]["status"]["state"] == "CANCELLED"


async def test_environment_values_arrive_verbatim_and_nothing_runs(
    stack: StackInfo, token_for, alice_dir: str
) -> None:
    canary = f"canary-{uuid.uuid4().hex[:8]}"
    values = {
        "QUOTES": 'it\'s "quoted"',
        "NEWLINES": "one\ntwo\n",
        "SUBST": f"$(touch {canary}) `touch {canary}`",
        "SEMI": f"x; touch {canary}; y",
        "COMMA": "a,b=c,,d",
        "UNICODE": "ü ✓",
    }
    # The job writes each variable to its own file, byte for byte.
    script = "#!/bin/bash\n" + "".join(f'printf %s "${name}" > env-{name}\n' for name in values)
    async with httpx.AsyncClient(
        base_url=f"{stack.url}/compute/{stack.system}",
        headers={"Authorization": f"Bearer {token_for('alice')}"},
        timeout=60,
    ) as api:
        response = await api.post(
            "/jobs", json={"job": {"workingDirectory": alice_dir, "script": script, "env": values}}
        )
        assert response.status_code == 201, response.text
        job_id = response.json()["jobId"]
        for _ in range(300):
            jobs = (await api.get(f"/jobs/{job_id}")).json()["jobs"]
            if jobs[0]["status"]["state"] == "COMPLETED":
                break
            await asyncio.sleep(0.2)
        assert jobs[0]["status"]["state"] == "COMPLETED"
    for name, value in values.items():
        assert Path(alice_dir, f"env-{name}").read_bytes() == value.encode()
    assert not list(Path(alice_dir).glob(f"*{canary}*"))
    assert not Path(stack.users["alice"].home, canary).exists()


async def test_unknown_job_gives_404_job_not_found(alice: Client, stack: StackInfo) -> None:
    with pytest.raises(firecrest.UnexpectedStatusException) as excinfo:
        await alice.job_info(stack.system, "987654321")
    assert excinfo.value.responses[-1].status_code == 404
    assert "Job not found" in excinfo.value.responses[-1].json()["message"]


async def test_bob_cannot_cancel_or_see_alices_job(
    stack: StackInfo, token_for, alice_dir: str
) -> None:
    headers = {u: {"Authorization": f"Bearer {token_for(u)}"} for u in ("alice", "bob")}
    base = f"{stack.url}/compute/{stack.system}/jobs"
    async with httpx.AsyncClient(timeout=60) as http:
        response = await http.post(
            base,
            headers=headers["alice"],
            json={"job": {"workingDirectory": alice_dir, "script": "#!/bin/bash\nsleep 120\n"}},
        )
        job_id = response.json()["jobId"]
        try:
            cancel = await http.delete(f"{base}/{job_id}", headers=headers["bob"])
            assert cancel.status_code == 403
            seen = await http.get(f"{base}/{job_id}", headers=headers["bob"])
            assert seen.status_code == 404
            meta = await http.get(f"{base}/{job_id}/metadata", headers=headers["bob"])
            assert meta.status_code == 404
            still = await http.get(f"{base}/{job_id}", headers=headers["alice"])
            assert still.json()["jobs"][0]["status"]["state"] in ("PENDING", "RUNNING")
        finally:
            assert (
                await http.delete(f"{base}/{job_id}", headers=headers["alice"])
            ).status_code == 204


async def test_bad_fields_give_400(stack: StackInfo, token_for, alice_dir: str) -> None:
    base = f"{stack.url}/compute/{stack.system}/jobs"
    bad_jobs = [
        {"workingDirectory": alice_dir},  # neither script nor scriptPath
        {"workingDirectory": alice_dir, "script": "x", "scriptPath": f"{alice_dir}/x"},
        {"workingDirectory": "/etc", "script": "#!/bin/sh\n"},
        {"workingDirectory": alice_dir, "script": "#!/bin/sh\n", "env": {"BAD-NAME": "x"}},
        {"workingDirectory": alice_dir, "script": "#!/bin/sh\n", "name": "two\nlines"},
        {"workingDirectory": alice_dir, "script": "#!/bin/sh\n", "account": "no-such-account"},
        {"workingDirectory": alice_dir, "script": "#!/bin/sh\n", "partition": "no-such-partition"},
    ]
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {token_for('alice')}"}) as http:
        for job in bad_jobs:
            response = await http.post(base, json={"job": job})
            assert response.status_code == 400, (job, response.text)
            assert response.json()["message"]
        assert (await http.get(f"{base}/1;id")).status_code in (400, 404)
        assert (await http.get(base, params={"time_window": "2y"})).status_code == 400


async def test_scheduler_limits_give_403(stack: StackInfo, token_for, alice_dir: str) -> None:
    env = {"SLURM_CONF": str(stack.slurm_conf), "PATH": "/usr/bin:/bin"}

    def limit(value: int) -> None:
        subprocess.run(
            ["sacctmgr", "-i", "modify", "user", "bob", "set", f"MaxSubmitJobs={value}"],
            env=env,
            check=True,
            capture_output=True,
        )

    limit(0)
    try:
        await asyncio.sleep(1)  # slurmdbd pushes the change to slurmctld
        async with httpx.AsyncClient(
            headers={"Authorization": f"Bearer {token_for('bob')}"}, timeout=60
        ) as http:
            response = await http.post(
                f"{stack.url}/compute/{stack.system}/jobs",
                json={
                    "job": {"workingDirectory": stack.users["bob"].home, "script": "#!/bin/sh\n"}
                },
            )
        assert response.status_code == 403, response.text
    finally:
        limit(-1)


@pytest.mark.slow
async def test_100_concurrent_jobs_are_never_reported_missing(stack: StackInfo, token_for) -> None:
    """alice and bob submit 50 jobs each at once; a GET right after each POST never gives 404,
    and every job reaches a final state."""
    missing: list[str] = []

    async def user_jobs(user: str) -> list[str]:
        headers = {"Authorization": f"Bearer {token_for(user)}"}
        base = f"{stack.url}/compute/{stack.system}/jobs"
        home = stack.users[user].home

        async def one(i: int, http: httpx.AsyncClient) -> str:
            response = await http.post(
                base,
                json={
                    "job": {
                        "workingDirectory": home,
                        "name": f"burst-{i}",
                        "standardOutput": "/dev/null",
                        "script": "#!/bin/bash\nsleep 1\n",
                    }
                },
            )
            assert response.status_code == 201, response.text
            job_id = response.json()["jobId"]
            seen = await http.get(f"{base}/{job_id}")
            if seen.status_code == 404:
                missing.append(job_id)
            assert seen.status_code == 200, seen.text
            return job_id

        async with httpx.AsyncClient(headers=headers, timeout=120) as http:
            ids = await asyncio.gather(*(one(i, http) for i in range(50)))
            pending = set(ids)
            for _ in range(600):
                listing = (await http.get(base)).json()["jobs"]
                final = {
                    j["jobId"]
                    for j in listing
                    if j["status"]["state"] in ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT")
                }
                pending -= final
                if not pending:
                    break
                await asyncio.sleep(0.5)
            assert not pending, f"{user}: {len(pending)} jobs never finished"
            states = {j["jobId"]: j["status"]["state"] for j in listing if j["jobId"] in set(ids)}
            assert set(states.values()) == {"COMPLETED"}
            return ids

    alice_ids, bob_ids = await asyncio.gather(user_jobs("alice"), user_jobs("bob"))
    assert len(set(alice_ids) | set(bob_ids)) == 100
    assert missing == []


async def test_listing_by_job_ids_gives_the_named_jobs_of_the_caller(
    stack: StackInfo, token_for, alice_dir: str
) -> None:
    headers = {u: {"Authorization": f"Bearer {token_for(u)}"} for u in ("alice", "bob")}
    base = f"{stack.url}/compute/{stack.system}/jobs"
    script = {"workingDirectory": alice_dir, "script": "#!/bin/bash\nsleep 120\n"}
    async with httpx.AsyncClient(timeout=60) as http:
        systems = (await http.get(f"{stack.url}/status/systems", headers=headers["alice"])).json()
        assert "compute.jobs.ids" in systems["systems"][0]["server"]["capabilities"]
        ids = [
            (await http.post(base, headers=headers["alice"], json={"job": script})).json()["jobId"]
            for _ in range(3)
        ]
        try:
            named = f"{ids[0]}, {ids[2]},987654321"
            listed = await http.get(base, headers=headers["alice"], params={"job_ids": named})
            assert listed.status_code == 200, listed.text
            states = {job["jobId"]: job["status"]["state"] for job in listed.json()["jobs"]}
            # the unknown id is left out, not an error; the third job is not asked for
            assert sorted(states) == sorted([ids[0], ids[2]])
            assert set(states.values()) <= {"PENDING", "RUNNING"}
            # time_window does not apply to jobs asked for by id
            windowed = await http.get(
                base, headers=headers["alice"], params={"job_ids": ids[1], "time_window": "1h"}
            )
            assert [job["jobId"] for job in windowed.json()["jobs"]] == [ids[1]]
            # another user's jobs are not shown to bob, nor reported pending for him
            seen = await http.get(base, headers=headers["bob"], params={"job_ids": ids[0]})
            assert seen.status_code == 200
            assert seen.json()["jobs"] == []
            # Slurm reads ids modulo 2**32: an id that wraps to alice's job is not that job
            wrapped = str(2**32 + int(ids[0]))
            aliased = await http.get(base, headers=headers["alice"], params={"job_ids": wrapped})
            assert aliased.json()["jobs"] == []
            assert (
                await http.get(f"{base}/{wrapped}", headers=headers["alice"])
            ).status_code == 404
            for bad in ("", "1;id", ",".join(str(n) for n in range(1, 1002))):
                refused = await http.get(base, headers=headers["alice"], params={"job_ids": bad})
                assert refused.status_code == 400, (bad[:20], refused.text)
                assert "job" in refused.json()["message"].lower()
        finally:
            for job_id in ids:
                await http.delete(f"{base}/{job_id}", headers=headers["alice"])
