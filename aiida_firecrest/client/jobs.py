"""Batch jobs as the client sees them: how often to look, which job a lost submit made, and
what a failed transfer job means (which states are final is in ``slurm``)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from .errors import FirecrestError, TransferJobError, classify
from .models import TransferJob

# What FirecREST's transfer job scripts print when they succeed.
TRANSFER_SUCCESS_PHRASES = (
    "Files were successfully",
    "File was successfully",
    "Multipart file upload successfully completed",
)


def transfer_failure(job: TransferJob, state: object, detail: str) -> FirecrestError:
    """The error for a failed transfer job: typed by what its logs say (``cp: cannot stat ...:
    No such file or directory`` is a ``FileNotFoundError``), ``TransferJobError`` otherwise."""
    message = f"Transfer job {job.job_id} on {job.system} failed (state {state}): {detail}"
    error_type, code = classify(None, detail)
    if error_type is FirecrestError:
        error_type = TransferJobError
    return error_type(message, errno_value=code)


def poll_intervals(first: float = 0.2, factor: float = 2.0, cap: float = 5.0) -> Iterator[float]:
    """0.2, 0.4, 0.8 ... seconds, then ``cap`` for ever: quick for short jobs, gentle after."""
    interval = first
    while True:
        yield interval
        interval = min(cap, interval * factor)


def job_in_directory(jobs: Iterable[dict[str, Any]], working_directory: str) -> str | None:
    """The id of the newest job listed with ``working_directory`` (trailing slashes aside), or
    None. AiiDA gives every calculation a directory of its own, so a job there is that
    calculation's: the one a lost submit made."""
    wanted = working_directory.rstrip("/") or "/"
    found = [
        str(job["jobId"])
        for job in jobs
        if str(job.get("workingDirectory") or "").rstrip("/") == wanted and job.get("jobId")
    ]
    return max(found, key=lambda job_id: (len(job_id), job_id), default=None)
