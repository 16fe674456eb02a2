"""Job operations: submit, list, get, metadata, cancel, attach — Slurm over the caller's SSH.

A job id that a submit returned is never answered with "not found" afterwards (the worst known
failure of FirecREST for AiiDA users, who read it as "finished"). squeue and sacct are asked
together; if neither lists the job yet, a marker the submit left on the cluster, in the user's
home, tells that the id was issued, and the job is reported PENDING. The marker lives on the
cluster, not in this process, so this holds across replicas and restarts.
"""

from __future__ import annotations

import asyncio
import random
import time

import asyncssh

from ..cluster import CommandResult, Remote, checked_path
from ..cluster.failures import command_error
from ..errors import (
    BadRequest,
    Conflict,
    Forbidden,
    NotFound,
    ServiceUnavailable,
)
from ..models.compute import Job, JobDescription, JobMetadata, JobStatus, JobTime
from . import rest_jobs
from . import slurm_jobs as slurm
from .refusals import NOT_FOUND as _NOT_FOUND
from .refusals import cancel_error, submit_error
from .slurm_states import FINAL_STATES, PENDING

# Relative SFTP paths resolve against the user's home directory.
MARKER_ROOT = ".firecrest-server/submitted"
# How long after its submission an id that Slurm does not list is still reported PENDING.
UNLISTED_GRACE = 3600.0
# sacct's report of MySQL error 1267 ("Illegal mix of collations") from slurmdbd: a filter
# value (job name, account) with characters the accounting tables' character set lacks. The
# scheduler is fine and a retry cannot help.
_ACCOUNTING_CHARSET = "Unknown error 1267"


def _listable(value: str, field: str) -> str:
    """``value``, if a job carrying it can be listed: squeue and sacct print one job per line,
    so a line break in its working directory or name (which sbatch takes from the script's
    file name) would split its row, and the job would vanish from every listing."""
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise BadRequest(f"`{field}` must not contain control characters")
    return value


async def submit(remote: Remote, job: JobDescription) -> str:
    working_directory = _listable(
        checked_path(remote.system, job.working_directory, "workingDirectory"), "workingDirectory"
    )
    if (job.script is None) == (job.script_path is None):
        raise BadRequest("give exactly one of `script` or `scriptPath`")
    script_path = None
    if job.script_path is not None:
        # Without --job-name, sbatch names the job after the script's file name.
        script_path = _listable(
            checked_path(remote.system, job.script_path, "scriptPath"), "scriptPath"
        )
    env = slurm.job_environment(job.env)
    if remote.slurmrestd is not None:
        job_id = await rest_jobs.submit(remote, job, working_directory, script_path, env)
    else:
        job_id = await _sbatch(remote, job, working_directory, script_path, env)
    await _leave_marker(remote, job_id)
    return job_id


async def _sbatch(
    remote: Remote,
    job: JobDescription,
    working_directory: str,
    script_path: str | None,
    env: dict[str, str],
) -> str:
    argv = slurm.sbatch_argv(job, working_directory, script_path)
    stdin = job.script.encode() if job.script is not None else None
    # Not idempotent: a retried sbatch could submit twice.
    result = await remote.run(
        argv,
        stdin=stdin,
        env=env,
        timeout=remote.system.scheduler.command_timeout,
        idempotent=False,
        check=False,
    )
    if result.exit_status != 0:
        raise submit_error(result.stderr_text, result.exit_status)
    return slurm.parse_job_id(result.stdout_text)


async def _leave_marker(remote: Remote, job_id: str) -> None:
    directory = _marker_dir(remote)
    path = f"{directory}/{job_id}"

    async def write(sftp: asyncssh.SFTPClient) -> None:
        try:
            async with sftp.open(path, "w"):
                pass
        except asyncssh.SFTPNoSuchFile:
            await sftp.makedirs(directory, exist_ok=True)
            async with sftp.open(path, "w"):
                pass

    await remote.sftp(path, write)
    if random.random() < 0.01:  # noqa: S311 - occasional housekeeping, not security
        await remote.run(
            ["find", directory, "-type", "f", "-mmin", "+1440", "-delete"], check=False
        )


def _marker_dir(remote: Remote) -> str:
    # Per system: clusters often share home directories, and their job ids overlap.
    return f"{MARKER_ROOT}/{remote.system.name}"


async def _marker_age(remote: Remote, job_id: str) -> float | None:
    path = f"{_marker_dir(remote)}/{job_id}"
    try:
        attrs = await remote.sftp(path, lambda sftp: sftp.stat(path))
    except NotFound:
        return None
    return time.time() - (attrs.mtime or 0)


async def _query(remote: Remote, argv: list[str]) -> CommandResult:
    """A read-only scheduler query, retried once on a failure of the controller."""
    timeout = remote.system.scheduler.command_timeout
    for attempt in (1, 2):
        result = await remote.run(argv, env=slurm.TIME_ENV, timeout=timeout, check=False)
        if result.exit_status == 0 or "Invalid job id" in result.stderr_text:
            return result
        if _ACCOUNTING_CHARSET in result.stderr_text:
            raise BadRequest(
                "The scheduler's accounting database cannot compare this job name or account "
                "(it holds characters outside the database's character set)"
            )
        if attempt == 1:
            await asyncio.sleep(0.5)
    raise ServiceUnavailable(f"The scheduler did not answer: {result.stderr_text.strip()}")


async def list_jobs(
    remote: Remote,
    *,
    job_ids: list[str] | None = None,
    all_users: bool = False,
    account: str | None = None,
    name: str | None = None,
    time_window: str = "24h",
) -> list[Job]:
    ids = job_ids or []
    if remote.slurmrestd is not None:
        merged = await rest_jobs.list_jobs(
            remote, job_ids=ids, account=account, name=name, time_window=time_window
        )
        return _visible(remote, merged, ids, all_users)
    sacct, squeue = await asyncio.gather(
        _query(
            remote,
            slurm.sacct_argv(
                remote.username,
                job_ids=ids,
                all_users=all_users,
                account=account,
                name=name,
                time_window=time_window,
            ),
        ),
        _query(
            remote,
            slurm.squeue_argv(
                remote.username, job_ids=ids, all_users=all_users, account=account, name=name
            ),
        ),
    )
    cluster = remote.system.name
    accounted = slurm.jobs_from_rows(
        slurm.parse_rows(sacct.stdout_text), from_squeue=False, cluster=cluster
    )
    live = (
        slurm.jobs_from_rows(
            slurm.parse_rows(squeue.stdout_text), from_squeue=True, cluster=cluster
        )
        if squeue.exit_status == 0
        else {}
    )
    merged = _visible(remote, slurm.merge(accounted, live), ids, all_users)
    await _fill_exit_codes(remote, merged)
    return merged


def _visible(remote: Remote, merged: list[Job], ids: list[str], all_users: bool) -> list[Job]:
    if ids:
        # Slurm reads ids modulo 2**32 (4294967297 is job 1) and an array's id names its
        # tasks: keep what was asked for, never a different job.
        asked = set(ids)
        merged = [j for j in merged if j.job_id in asked or j.job_id.split("_")[0] in asked]
    if not all_users:
        # sacct ignores --user when --jobs is given, and Slurm lets users see other users'
        # jobs unless PrivateData says otherwise: without allusers, only the caller's own.
        merged = [job for job in merged if job.user == remote.username]
    return merged


async def _fill_exit_codes(remote: Remote, found: list[Job]) -> None:
    """Exit codes of jobs that squeue reports finished before accounting has them.

    squeue has no exit code; for the few seconds until slurmdbd records a finished job, ask the
    controller, so a client never sees a final state without its exit code.
    """
    missing = [j for j in found if j.status.state in FINAL_STATES and j.status.exit_code is None]
    timeout = remote.system.scheduler.command_timeout

    async def fill(job: Job) -> None:
        shown = await remote.run(
            ["scontrol", "show", "--oneliner", "job", job.job_id], timeout=timeout, check=False
        )
        fields = slurm.parse_scontrol_job(shown.stdout_text)
        code, signal = slurm.exit_code(fields.get("ExitCode", ""))
        job.status.exit_code, job.status.interrupt_signal = code, signal

    await asyncio.gather(*(fill(job) for job in missing[:50]))


async def get_job(remote: Remote, job_id: str, all_users: bool = False) -> list[Job]:
    job_id = slurm.checked_job_id(job_id)
    everyone = await list_jobs(remote, job_ids=[job_id], all_users=True)
    jobs = everyone if all_users else [j for j in everyone if j.user == remote.username]
    if jobs:
        return jobs
    if everyone:  # Slurm knows this id, and it is someone else's job
        raise NotFound(f"{_NOT_FOUND}: {job_id}")
    age = await _marker_age(remote, job_id)
    if age is not None and age < UNLISTED_GRACE:
        return [_unlisted(remote, job_id)]
    raise NotFound(f"{_NOT_FOUND}: {job_id}")


async def jobs_by_id(
    remote: Remote,
    job_ids: list[str],
    *,
    all_users: bool = False,
    account: str | None = None,
    name: str | None = None,
) -> list[Job]:
    """The named jobs, whenever they ran (the time window does not apply): a poller's view,
    which costs accounting the jobs it names rather than the user's whole recent history.
    An id a submit returned but Slurm does not list yet is reported PENDING, as by get_job."""
    found = await list_jobs(
        remote, job_ids=job_ids, all_users=all_users, account=account, name=name
    )
    listed = {job.job_id for job in found}
    unlisted = [job_id for job_id in job_ids if job_id not in listed]
    if unlisted and account is None and name is None:
        ages = await asyncio.gather(*(_marker_age(remote, job_id) for job_id in unlisted))
        found += [
            _unlisted(remote, job_id)
            for job_id, age in zip(unlisted, ages, strict=True)
            if age is not None and age < UNLISTED_GRACE
        ]
    return found


def _unlisted(remote: Remote, job_id: str) -> Job:
    return Job(
        job_id=job_id,
        name="",
        status=JobStatus(state=PENDING, state_reason="Submitted; not yet listed by the scheduler"),
        tasks=[],
        time=JobTime(),
        allocation_nodes=0,
        cluster=remote.system.name,
        nodes="",
        partition="",
        user=remote.username,
        working_directory="",
    )


async def metadata(remote: Remote, job_id: str) -> JobMetadata:
    job_id = slurm.checked_job_id(job_id)
    timeout = remote.system.scheduler.command_timeout
    shown, script = await asyncio.gather(
        remote.run(["scontrol", "show", "-o", "job", job_id], timeout=timeout, check=False),
        remote.run(
            ["scontrol", "write", "batch_script", job_id, "-"], timeout=timeout, check=False
        ),
    )
    if shown.exit_status == 0:
        fields = slurm.parse_scontrol_job(shown.stdout_text)
        # `scontrol show job 0` (and ids that wrap to 0) lists every job, other users' too:
        # answer only for the job asked about.
        if not slurm.shows_job(fields, job_id):
            raise NotFound(f"{_NOT_FOUND}: {job_id}")
        if fields.get("UserId", "").split("(")[0] not in (remote.username, ""):
            raise NotFound(f"{_NOT_FOUND}: {job_id}")
        return JobMetadata(
            job_id=job_id,
            script=script.stdout_text if script.exit_status == 0 else None,
            standard_input=slurm.expand_output_path(fields.get("StdIn"), job_id, fields),
            standard_output=slurm.expand_output_path(fields.get("StdOut"), job_id, fields),
            standard_error=slurm.expand_output_path(fields.get("StdErr"), job_id, fields),
        )
    # The controller has forgotten the job: accounting keeps the script (job_script flag).
    jobs = await list_jobs(remote, job_ids=[job_id])
    if not jobs:
        raise NotFound(f"{_NOT_FOUND}: {job_id}")
    stored = await remote.run(
        ["sacct", "--noheader", f"--jobs={job_id}", "--batch-script"], timeout=timeout, check=False
    )
    text = stored.stdout_text
    # sacct prints a two-line banner before the script
    lines = text.splitlines(keepends=True)
    if len(lines) >= 2 and lines[0].startswith("Batch Script for"):
        text = "".join(lines[2:])
    return JobMetadata(job_id=job_id, script=text or None)


async def cancel(remote: Remote, job_id: str) -> None:
    job_id = slurm.checked_job_id(job_id)
    if remote.slurmrestd is not None:
        await rest_jobs.cancel(remote, job_id)
        return
    result = await remote.run(
        ["scancel", "--verbose", job_id],
        timeout=remote.system.scheduler.command_timeout,
        check=False,
    )
    error = cancel_error(job_id, result.stderr_text, result.exit_status)
    if error is not None:
        raise error


async def attach(remote: Remote, job_id: str, command: str) -> None:
    job_id = slurm.checked_job_id(job_id)
    if "\x00" in command:
        raise BadRequest("`command` must not contain NUL characters")
    # The command is meant to be interpreted by a shell inside the job's allocation: it reaches
    # that inner bash as ONE quoted argument, never through the login shell.
    result = await remote.run(
        ["srun", f"--jobid={job_id}", "--overlap", "bash", "-c", command],
        timeout=remote.system.scheduler.command_timeout,
        idempotent=False,
        check=False,
    )
    # srun refuses ids it cannot parse (0, beyond 32 bits, array task ids) before asking the
    # controller: no job it could attach to exists under that id.
    if any(
        phrase in result.stderr_text
        for phrase in ("Invalid job id", "Invalid numeric value", "for --jobid")
    ):
        raise NotFound(f"{_NOT_FOUND}: {job_id}")
    if "Access/permission denied" in result.stderr_text:  # another user's job
        raise Forbidden(f"Not allowed to attach to job {job_id}")
    if any(
        phrase in result.stderr_text
        for phrase in ("has expired", "already completing or completed", "Job has already finished")
    ):
        raise Conflict(f"Job {job_id} is no longer running: nothing to attach to")
    if result.exit_status != 0:
        raise command_error(result.exit_status, result.stderr_text)
