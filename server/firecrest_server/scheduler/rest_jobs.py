"""Job operations over slurmrestd (scheduler.connection_mode ``rest``), as the caller.

Each operation answers as its SSH counterpart in ``jobs.py`` does: the same validation before,
the same refusals (``refusals.py``) and the same job shapes after (``slurmrestd_jobs.py``).
What the REST API cannot do stays on the caller's SSH: reading a script given by path, the
submit's job marker, metadata and attach.
"""

from __future__ import annotations

import asyncio
from typing import Any

import asyncssh

from ..cluster import Remote
from ..cluster.slurmrestd import RestAnswer, SlurmRestClient
from ..errors import BadRequest, Conflict, NotFound, RequestTimeout, ServiceUnavailable
from ..models.compute import Job, JobDescription
from ..ssh.credentials import bearer_token
from . import slurm_jobs as slurm
from . import slurmrestd_jobs as restjson
from .refusals import NOT_FOUND, cancel_error, submit_error
from .slurm_states import FAILED, FINAL_STATES

# Slurm's own default bound on a batch script (max_script_size).
MAX_SCRIPT_BYTES = 4 * 1024 * 1024


def _client(remote: Remote) -> SlurmRestClient:
    client = remote.slurmrestd
    if client is None:
        raise RuntimeError("the system's scheduler is not in rest mode")
    return client


async def _call(
    remote: Remote,
    method: str,
    path: str,
    *,
    params: dict[str, str] | None = None,
    json: dict[str, Any] | None = None,
) -> RestAnswer:
    return await _client(remote).request(
        method,
        path,
        username=remote.username,
        token=bearer_token(remote.runner.bearer_token),
        params=params,
        json=json,
    )


async def _script_from_path(remote: Remote, script_path: str) -> str:
    """The script's text, read as the caller (sbatch reads it as the caller too)."""

    async def read(sftp: asyncssh.SFTPClient) -> bytes:
        async with sftp.open(script_path, "rb") as handle:
            return await handle.read(MAX_SCRIPT_BYTES + 1)

    try:
        data = await remote.sftp(script_path, read)
    except NotFound:
        raise BadRequest(f"Job submission refused: Unable to open file {script_path}") from None
    if len(data) > MAX_SCRIPT_BYTES:
        raise BadRequest(f"Job submission refused: the script is over {MAX_SCRIPT_BYTES} bytes")
    try:
        return data.decode()
    except UnicodeDecodeError:
        raise BadRequest("Job submission refused: the script is not UTF-8 text") from None


async def submit(
    remote: Remote,
    job: JobDescription,
    working_directory: str,
    script_path: str | None,
    env: dict[str, str],
) -> str:
    desc = restjson.job_desc(job, working_directory, env)
    if script_path is not None:
        script = await _script_from_path(remote, script_path)
        desc.setdefault("name", restjson.script_name(script_path))
    else:
        script = job.script or ""
    # sbatch refuses these before asking the controller; slurmrestd would not.
    if not script.strip():
        raise BadRequest("Job submission refused: Batch script is empty")
    if "\r\n" in script:
        raise BadRequest("Job submission refused: Batch script contains DOS line breaks")
    answer = await _call(
        remote, "POST", _client(remote).slurm("job/submit"), json={"script": script, "job": desc}
    )
    if answer.errors or answer.status != 200:
        raise submit_error(answer.error_text())
    return restjson.submitted_job_id(answer.body)


async def list_jobs(
    remote: Remote,
    *,
    job_ids: list[str],
    account: str | None,
    name: str | None,
    time_window: str,
) -> list[Job]:
    """The controller's and accounting's views, merged as in the SSH mode. Every user's jobs
    come back (v0.0.38 has no user filter): the caller filters as for sacct --jobs."""
    client = _client(remote)
    params: dict[str, str] = {}
    if job_ids:
        params["step"] = ",".join(dict.fromkeys(i.split("_")[0] for i in job_ids))
    else:
        params["start_time"] = f"now-{slurm.TIME_WINDOWS[time_window]}"
    if account:
        params["account"] = slurm._plain("account", account) or ""
    if name:
        params["job_name"] = slurm._plain("name", name) or ""
    accounted, live = await asyncio.gather(
        _call(remote, "GET", client.slurmdb("jobs"), params=params),
        _call(remote, "GET", client.slurm("jobs")),
        return_exceptions=True,
    )
    if isinstance(accounted, BaseException):
        raise accounted
    if accounted.errors or accounted.status != 200:
        raise ServiceUnavailable(f"The scheduler did not answer: {accounted.error_text()}")
    cluster = remote.system.name
    past = restjson.jobs_from_accounting(accounted.body, cluster=cluster)
    # As squeue's failure in the SSH mode: accounting alone still answers (and a job that
    # neither lists yet is reported PENDING by its marker).
    if isinstance(live, (RequestTimeout, ServiceUnavailable)):
        now = {}
    elif isinstance(live, BaseException):
        raise live
    else:
        now = {} if live.errors else restjson.jobs_from_controller(live.body, cluster=cluster)
    now = {
        job_id: job
        for job_id, job in now.items()
        if (account is None or job.account == account) and (name is None or job.name == name)
    }
    merged = slurm.merge(past, now)
    await _exact_exit_codes(remote, merged, now)
    return merged


async def _exact_exit_codes(remote: Remote, merged: list[Job], live: dict[str, Job]) -> None:
    """Exit codes as sacct gives them.

    Slurm 22.05's dbv0.0.38 writes a non-zero exit status as ``{"status": "SUCCESS",
    "return_code": 0}`` (sacct says 3:0 for the same job): the controller's wait status is
    exact while it remembers the job (MinJobAge), and for older failed jobs sacct is asked
    over the caller's SSH, in one command for all of them."""
    doubtful = []
    for job in merged:
        known = live.get(job.job_id)
        if known is not None and known.status.exit_code is not None:
            job.status.exit_code = known.status.exit_code
            job.status.interrupt_signal = known.status.interrupt_signal
        elif job.status.state == FAILED and not job.status.exit_code:
            doubtful.append(job)
    if not doubtful:
        return
    argv = [
        "sacct",
        "--noheader",
        "--parsable2",
        "--allocations",
        "--format=JobID,ExitCode",
        f"--jobs={','.join(job.job_id for job in doubtful)}",
    ]
    result = await remote.run(argv, timeout=remote.system.scheduler.command_timeout, check=False)
    codes = dict(
        line.split("|", 1) for line in result.stdout_text.splitlines() if line.count("|") == 1
    )
    for job in doubtful:
        if job.job_id in codes:
            job.status.exit_code, job.status.interrupt_signal = slurm.exit_code(codes[job.job_id])


async def cancel(remote: Remote, job_id: str) -> None:
    client = _client(remote)
    shown = await _call(remote, "GET", client.slurm(f"job/{job_id}"))
    jobs = restjson.jobs_from_controller(shown.body, cluster=remote.system.name)
    if "Invalid job id" in shown.error_text() or (not shown.errors and job_id not in jobs):
        raise NotFound(f"{NOT_FOUND}: {job_id}")
    job = jobs.get(job_id)
    # scancel refuses a job that has ended; slurmrestd's DELETE answers it with success.
    if job is not None and job.user == remote.username and job.status.state in FINAL_STATES:
        raise Conflict(f"Job {job_id} has already ended: nothing to cancel")
    answer = await _call(remote, "DELETE", client.slurm(f"job/{job_id}"))
    if answer.errors or answer.status != 200:
        error = cancel_error(job_id, answer.error_text())
        if error is not None:
            raise error
