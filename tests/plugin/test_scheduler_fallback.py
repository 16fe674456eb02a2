"""The scheduler rides out a job listing the real server refuses: it asks for each job by id.

A server of our own on the stack's cluster gets an SSH output cap (``ssh.max_output_bytes``)
between what Slurm prints for one job and for all of them: the listing naming the jobs is a 413,
each ``GET .../jobs/{id}`` still answers. The cap comes from the very commands the server runs
(its own argv builders), run as alice on this machine, so the test does not guess sizes.
"""

from __future__ import annotations

import subprocess
import time
import uuid

import httpx
import pytest
from aiida.schedulers.datastructures import JobState

from firecrest_dev.info import StackInfo
from firecrest_dev.own_server import own_server
from firecrest_server.scheduler.slurm_jobs import sacct_argv, squeue_argv

pytestmark = [pytest.mark.stack, pytest.mark.slow]

JOBS = 4


def _as_alice(stack: StackInfo, argv: list[str]) -> str:
    """What ``argv`` prints as alice, the way the server runs it."""
    return subprocess.run(
        ["runuser", "-u", "alice", "--", "env", f"SLURM_CONF={stack.slurm_conf}", *argv],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout


def _submit(http: httpx.Client, stack: StackInfo, workdir: str) -> list[str]:
    ids = []
    for n in range(JOBS):
        response = http.post(
            f"/compute/{stack.system}/jobs",
            json={
                "job": {
                    "workingDirectory": workdir,
                    "script": "#!/bin/bash\ntrue\n",
                    "name": f"fallback-{n}",
                    "account": stack.account,
                }
            },
        )
        assert response.status_code == 201, response.text
        ids.append(str(response.json()["jobId"]))
    return ids


def _wait_accounted(stack: StackInfo, ids: list[str], timeout: float = 120) -> None:
    """Until the server's own listing command shows every job and its batch step completed
    (then the sizes measured stay put)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = _as_alice(stack, sacct_argv("alice", job_ids=ids)).splitlines()
        completed = [row for row in rows if "\x1fCOMPLETED\x1f" in row]
        if len(rows) >= 2 * len(ids) and len(completed) == len(rows):
            return
        time.sleep(1)
    raise AssertionError(f"jobs {ids} not accounted as completed")


def test_a_refused_listing_falls_back_to_per_job_lookups(
    stack: StackInfo, token_for, make_computer, tmp_path
) -> None:
    alice = stack.users["alice"]
    workdir = f"{alice.home}/fallback-{uuid.uuid4().hex[:8]}"
    _as_alice(stack, ["mkdir", workdir])
    try:
        with httpx.Client(
            base_url=stack.url,
            headers={"Authorization": f"Bearer {token_for('alice')}"},
            timeout=60,
        ) as http:
            ids = _submit(http, stack, workdir)
        _wait_accounted(stack, ids)
        one = max(
            len(_as_alice(stack, build("alice", job_ids=[job_id])).encode())
            for job_id in ids
            for build in (sacct_argv, squeue_argv)
        )
        listing = len(_as_alice(stack, sacct_argv("alice", job_ids=ids)).encode())
        assert listing > one * 2  # room for a cap between them
        cap = (one + listing) // 2

        system = {"ssh": {"max_output_bytes": cap}}
        with own_server(stack, tmp_path, system_overrides=system) as url:
            with httpx.Client(
                base_url=url,
                headers={"Authorization": f"Bearer {token_for('alice')}"},
                timeout=60,
            ) as api:
                # The fault is real: this server refuses the listing, and answers each job.
                jobs_path = f"/compute/{stack.system}/jobs"
                named = {"job_ids": ",".join(ids), "time_window": "1h"}
                refused = api.get(jobs_path, params=named)
                assert refused.status_code == 413, refused.text
                assert api.get(f"{jobs_path}/{ids[0]}").status_code == 200

            computer = make_computer(url=url)
            scheduler = computer.get_scheduler()
            with computer.get_transport() as transport:
                scheduler.set_transport(transport)
                jobs = scheduler.get_jobs(jobs=ids, as_dict=True)
        # Every tracked job is reported, with its real state, in spite of the listing.
        assert sorted(jobs) == sorted(ids)
        assert {info.job_state for info in jobs.values()} == {JobState.DONE}
    finally:
        subprocess.run(["rm", "-rf", "--", workdir], check=False)
