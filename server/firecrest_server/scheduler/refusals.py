"""What Slurm's refusals mean for the API, in one place for both connection modes.

Slurm words a refusal the same whether sbatch/scancel print it on stderr (ssh mode) or
slurmrestd returns it in ``errors`` (rest mode): both map through here, so the two modes give
the same status for the same refusal.
"""

from __future__ import annotations

from ..cluster.failures import command_error
from ..errors import ApiError, BadRequest, Conflict, Forbidden, NotFound

NOT_FOUND = "Job not found"
_QUOTA = ("QOSMax", "QOSMin", "AssocMax", "AssocMin", "Job violates accounting/QOS policy")
_SUBMIT_REFUSALS = (
    "Invalid account",
    "invalid partition",
    "Invalid qos",
    "Requested reservation",
    "Invalid feature specification",
    "Invalid directive",
    "unrecognized option",
    "too long",  # "Pathname of a file, directory or other parameter too long"
    "Unable to open file",  # scriptPath missing or unreadable
    "DOS line breaks",  # a script saved with CR LF line ends
    "Batch script is empty",  # scriptPath names an empty file or a directory
)


def submit_error(text: str, exit_status: int = 1) -> ApiError:
    if any(marker in text for marker in _QUOTA):
        return Forbidden(f"Job submission refused by a scheduler limit: {text.strip()}")
    for phrase in _SUBMIT_REFUSALS:
        if phrase.lower() in text.lower():
            return BadRequest(f"Job submission refused: {text.strip()}")
    return command_error(exit_status, text)


def cancel_error(job_id: str, text: str, exit_status: int = 1) -> ApiError | None:
    """The error for a cancel that Slurm answered with ``text``; None: it was cancelled."""
    if "Invalid job id" in text:
        return NotFound(f"{NOT_FOUND}: {job_id}")
    if "Access/permission denied" in text or "Permission denied" in text:
        return Forbidden(f"Not allowed to cancel job {job_id}")
    if "already completing or completed" in text:
        return Conflict(f"Job {job_id} has already ended: nothing to cancel")
    if exit_status != 0 or "error:" in text:
        return command_error(exit_status or 1, text)
    return None
