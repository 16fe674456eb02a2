"""slurmrestd's JSON (OpenAPI v0.0.38, Slurm 22.05) to and from the API's job shapes. Pure.

The answers are made to equal the SSH mode's for the same jobs: the controller's view
(``/slurm/.../jobs``, like squeue) and accounting's (``/slurmdb/.../jobs``, like sacct) become
the same ``Job`` values that ``slurm_jobs.jobs_from_rows`` makes, and are merged by the same
``slurm_jobs.merge``.
"""

from __future__ import annotations

import time
from typing import Any

from ..errors import BadRequest
from ..models.compute import Job, JobDescription, JobStatus, JobTask, JobTime
from .slurm_jobs import _plain
from .slurm_states import PENDING, STARTED_STATES, normalised_state

# A job submitted over slurmrestd gets no login environment (sbatch's --export=ALL has none to
# export): a PATH so that its script finds the usual programs, unless the request sets one.
DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"


def job_desc(
    job: JobDescription, working_directory: str, environment: dict[str, str]
) -> dict[str, Any]:
    """The ``job`` of a submit request: the same fields sbatch gets in the SSH mode."""
    desc: dict[str, Any] = {
        "current_working_directory": working_directory,
        "environment": {"PATH": DEFAULT_PATH, **environment},
    }
    for key, field, value in (
        ("name", "name", job.name),
        ("account", "account", job.account),
        ("partition", "partition", job.partition),
        ("reservation", "reservation", job.reservation),
        ("constraints", "constraints", job.constraints),
        ("standard_input", "standardInput", job.standard_input),
        ("standard_output", "standardOutput", job.standard_output),
        ("standard_error", "standardError", job.standard_error),
    ):
        checked = _plain(field, value)
        if checked is not None:
            desc[key] = checked
    return desc


def submitted_job_id(body: dict[str, Any]) -> str:
    job_id = body.get("job_id")
    if not isinstance(job_id, int) or job_id <= 0:
        raise ValueError(f"slurmrestd returned no job id: {body.get('errors')!r}")
    return str(job_id)


def _number(value: Any) -> int | None:
    """An integer field; v0.0.38 writes "unset" and "infinite" as null."""
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value


def _epoch(value: Any) -> int | None:
    """A time; 0 is Slurm's "not yet" (sacct prints Unknown, which the SSH mode reads as None)."""
    number = _number(value)
    return number if number else None


def _limit(minutes: Any) -> int | None:
    number = _number(minutes)
    return number * 60 if number is not None else None


def _reason(value: Any, fallback: str | None) -> str | None:
    return value if isinstance(value, str) and value not in ("", "None") else fallback


def _nodes(value: Any) -> str:
    return value if isinstance(value, str) and value not in ("None assigned", "(null)") else ""


def wait_status(value: Any) -> tuple[int | None, int | None]:
    """The controller's ``exit_code`` is a wait(2) status: (exit code, signal) as sacct gives."""
    number = _number(value)
    if number is None:
        return None, None
    return (number >> 8) & 0xFF, number & 0x7F


def _accounted_exit(value: Any) -> tuple[int | None, int | None]:
    """Accounting's ``{"status", "return_code", "signal": {"signal_id"}}``."""
    if not isinstance(value, dict):
        return None, None
    signal = value.get("signal")
    signal_id = _number(signal.get("signal_id")) if isinstance(signal, dict) else None
    return _number(value.get("return_code")) or 0, signal_id or 0


def _job_id(raw: dict[str, Any]) -> str:
    """``ARRAY_TASK`` for a task of an array job (as squeue and sacct name it), else the id."""
    task = _number(raw.get("array_task_id"))
    array = raw.get("array")
    if task is None and isinstance(array, dict):
        task = _number(array.get("task_id"))
        parent = _number(array.get("job_id"))
    else:
        parent = _number(raw.get("array_job_id"))
    if task is not None and parent:
        return f"{parent}_{task}"
    return str(raw.get("job_id"))


def jobs_from_controller(
    body: dict[str, Any], *, cluster: str, now: float | None = None
) -> dict[str, Job]:
    """``GET /slurm/v0.0.38/jobs`` (or ``/job/ID``): the controller's view, by job id."""
    now = time.time() if now is None else now
    jobs: dict[str, Job] = {}
    for raw in body.get("jobs") or []:
        if not isinstance(raw, dict) or _number(raw.get("job_id")) is None:
            continue
        state, by = normalised_state(str(raw.get("job_state") or ""))
        start, end = _epoch(raw.get("start_time")), _epoch(raw.get("end_time"))
        suspended = _number(raw.get("suspend_time")) or 0
        # squeue's "time used": running jobs until now, ended jobs until their end.
        if start is None or state == PENDING:
            elapsed = 0
        elif state in STARTED_STATES or end is None:
            elapsed = max(0, int(now) - start)
        else:
            elapsed = max(0, end - start)
        code, signal = wait_status(raw.get("exit_code"))
        job_id = _job_id(raw)
        jobs[job_id] = Job(
            job_id=job_id,
            name=str(raw.get("name") or ""),
            status=JobStatus(
                state=state,
                state_reason=_reason(raw.get("state_reason"), by),
                exit_code=code,
                interrupt_signal=signal,
            ),
            tasks=[],
            time=JobTime(
                elapsed=elapsed,
                start=start,
                end=end,
                suspended=suspended if suspended else None,
                limit=_limit(raw.get("time_limit")),
            ),
            account=raw.get("account") or None,
            allocation_nodes=_number(raw.get("node_count")) or 0,
            cluster=raw.get("cluster") or cluster,
            group=raw.get("group_name") or None,
            nodes=_nodes(raw.get("nodes")),
            partition=str(raw.get("partition") or ""),
            kill_request_user=None,
            user=raw.get("user_name") or None,
            working_directory=str(raw.get("current_working_directory") or ""),
            priority=_number(raw.get("priority")),
        )
    return jobs


def _accounted_time(raw: dict[str, Any]) -> JobTime:
    time = raw.get("time")
    times: dict[str, Any] = time if isinstance(time, dict) else {}
    return JobTime(
        elapsed=_number(times.get("elapsed")),
        start=_epoch(times.get("start")),
        end=_epoch(times.get("end")),
        suspended=_number(times.get("suspended")),
        limit=_limit(times.get("limit")),
    )


def _accounted_state(raw: Any) -> tuple[str, str | None]:
    if isinstance(raw, dict):
        state, by = normalised_state(str(raw.get("current") or ""))
        return state, _reason(raw.get("reason"), by)
    return normalised_state(str(raw or ""))


def jobs_from_accounting(body: dict[str, Any], *, cluster: str) -> dict[str, Job]:
    """``GET /slurmdb/v0.0.38/jobs``: accounting's view with the steps as tasks, by job id."""
    jobs: dict[str, Job] = {}
    for raw in body.get("jobs") or []:
        if not isinstance(raw, dict) or _number(raw.get("job_id")) is None:
            continue
        state, reason = _accounted_state(raw.get("state"))
        code, signal = _accounted_exit(raw.get("exit_code"))
        job_id = _job_id(raw)
        tasks = []
        for step in raw.get("steps") or []:
            if not isinstance(step, dict):
                continue
            step_names = step.get("step")
            names: dict[str, Any] = step_names if isinstance(step_names, dict) else {}
            step_state, step_reason = _accounted_state(step.get("state"))
            step_code, step_signal = _accounted_exit(step.get("exit_code"))
            step_time = _accounted_time(step).model_copy(update={"limit": None})
            tasks.append(
                JobTask(
                    id=f"{job_id}.{names.get('id')}",
                    name=str(names.get("name") or ""),
                    status=JobStatus(
                        state=step_state,
                        state_reason=step_reason,
                        exit_code=step_code,
                        interrupt_signal=step_signal,
                    ),
                    time=step_time,
                )
            )
        jobs[job_id] = Job(
            job_id=job_id,
            name=str(raw.get("name") or ""),
            status=JobStatus(
                state=state, state_reason=reason, exit_code=code, interrupt_signal=signal
            ),
            tasks=tasks,
            time=_accounted_time(raw),
            account=raw.get("account") or None,
            allocation_nodes=_number(raw.get("allocation_nodes")) or 0,
            cluster=raw.get("cluster") or cluster,
            group=raw.get("group") or None,
            nodes=_nodes(raw.get("nodes")),
            partition=str(raw.get("partition") or ""),
            kill_request_user=None,
            user=raw.get("user") or None,
            working_directory=str(raw.get("working_directory") or ""),
            priority=_number(raw.get("priority")),
        )
    return jobs


def script_name(script_path: str) -> str:
    """sbatch names a job submitted by path after the script's file name."""
    name = script_path.rstrip("/").rsplit("/", 1)[-1]
    if not name:
        raise BadRequest("`scriptPath` names no file")
    return name
