"""What the plugin knows about Slurm's answers, written once: every job state Slurm documents
and the phase of a job's life it stands for, which states are final, the reasons that mean a
pending job is held, and the exit status that FirecREST reports for a remote command that ran
out of time.

The client reads it to stop waiting for a job; the scheduler to tell AiiDA where a job is. A
state missing here would keep a finished job polled until a timeout, so the unit tests check
this table against the list in Slurm's ``squeue(1)`` manual.
"""

from __future__ import annotations

import enum
from typing import Any


class Phase(enum.Enum):
    """Where in its life a job in a given state is."""

    QUEUED = "queued"
    HELD = "held"  # queued, but waiting for a release rather than for resources
    RUNNING = "running"
    SUSPENDED = "suspended"
    FINISHED = "finished"  # final: the job will not change any more


# Every job state of ``squeue(1)`` (JOB STATE CODES), by phase. sacct may add a suffix
# ("CANCELLED by 1001"), which ``state_names`` drops.
JOB_STATES: dict[str, Phase] = {
    "PENDING": Phase.QUEUED,
    "REQUEUED": Phase.QUEUED,
    "REQUEUE_FED": Phase.QUEUED,
    "REQUEUE_HOLD": Phase.HELD,
    "RESV_DEL_HOLD": Phase.HELD,
    "CONFIGURING": Phase.RUNNING,
    "RUNNING": Phase.RUNNING,
    "COMPLETING": Phase.RUNNING,
    "STAGE_OUT": Phase.RUNNING,
    "SIGNALING": Phase.RUNNING,
    "RESIZING": Phase.RUNNING,
    "SUSPENDED": Phase.SUSPENDED,
    "STOPPED": Phase.SUSPENDED,
    "BOOT_FAIL": Phase.FINISHED,
    "CANCELLED": Phase.FINISHED,
    "COMPLETED": Phase.FINISHED,
    "DEADLINE": Phase.FINISHED,
    "FAILED": Phase.FINISHED,
    "NODE_FAIL": Phase.FINISHED,
    "OUT_OF_MEMORY": Phase.FINISHED,
    "PREEMPTED": Phase.FINISHED,
    "REVOKED": Phase.FINISHED,  # a federation sibling that another cluster started
    "SPECIAL_EXIT": Phase.FINISHED,  # held after a special exit value: waits for a person
    "TIMEOUT": Phase.FINISHED,
}

# Slurm's reasons for a pending job that waits for a release, not for resources (a PENDING
# job with one of them is held).
HELD_REASONS = ("Held", "JobHeld", "JobHeldUser", "JobHeldAdmin")

FINAL_STATES = frozenset(name for name, phase in JOB_STATES.items() if phase is Phase.FINISHED)

# PBS's "finished", which FirecREST servers in front of PBS report (Slurm's short code for
# FAILED is the same letter, and final too).
PBS_FINISHED = "F"

# The exit status of timeout(1), which FirecREST puts in the message of a remote command that
# ran out of time ("Remote process failed with exit status:124 ..."): a 408, or a 500 from
# servers older than FirecREST v2's PR #24.
TIMEOUT_EXIT_STATUS = 124
TIMEOUT_EXIT_MESSAGE = f"exit status:{TIMEOUT_EXIT_STATUS}"


def job_state(job: dict[str, Any]) -> str | list[str] | None:
    """The ``status.state`` of a FirecREST job record, as the server sent it."""
    status = job.get("status") or {}
    state: str | list[str] | None = status.get("state")
    return state


def state_names(state: str | list[str] | None) -> list[str]:
    """The bare state names in a job state as servers send it: ``"CANCELLED by 1001"``,
    ``"COMPLETED,FAILED"`` or ``["FAILED"]``."""
    if state is None:
        return []
    parts = state if isinstance(state, list) else str(state).split(",")
    return [str(part).strip().split(" ")[0].upper() for part in parts if str(part).strip()]


def first_state_name(job: dict[str, Any]) -> str:
    """The first bare state name of a job record ("" when it has none)."""
    names = state_names(job_state(job))
    return names[0] if names else ""


def is_final_state(state: str | list[str] | None) -> bool:
    """Whether a job state (``COMPLETED``, ``CANCELLED by 1001``, ``["FAILED"]`` ...) is final."""
    names = state_names(state)
    return bool(names) and all(name in FINAL_STATES or name == PBS_FINISHED for name in names)
