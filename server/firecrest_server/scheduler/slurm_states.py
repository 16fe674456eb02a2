"""Slurm's job states: the server's one vocabulary for them.

``JOB_STATES`` are the states squeue and sacct document ("JOB STATE CODES" in their manuals;
tests/server/unit/scheduler/test_slurm_states.py fails when the installed Slurm documents one
that is missing here). The timeout of a remote command is not a job state: its exit status is
``cluster.commands.TIMEOUT_EXIT``.
"""

from __future__ import annotations

PENDING = "PENDING"
RUNNING = "RUNNING"
FAILED = "FAILED"
# What a state Slurm printed nothing for is reported as.
UNKNOWN = "UNKNOWN"

JOB_STATES = frozenset(
    {
        "BOOT_FAIL",
        "CANCELLED",
        "COMPLETED",
        "CONFIGURING",
        "COMPLETING",
        "DEADLINE",
        FAILED,
        "NODE_FAIL",
        "OUT_OF_MEMORY",
        PENDING,
        "PREEMPTED",
        RUNNING,
        "RESV_DEL_HOLD",
        "REQUEUE_FED",
        "REQUEUE_HOLD",
        "REQUEUED",
        "RESIZING",
        "REVOKED",
        "SIGNALING",
        "SPECIAL_EXIT",
        "STAGE_OUT",
        "STOPPED",
        "SUSPENDED",
        "TIMEOUT",
    }
)

# The job has ended and will not run again by itself (a requeued job leaves these states).
FINAL_STATES = frozenset(
    {
        "BOOT_FAIL",
        "CANCELLED",
        "COMPLETED",
        "DEADLINE",
        FAILED,
        "NODE_FAIL",
        "OUT_OF_MEMORY",
        "PREEMPTED",
        "TIMEOUT",
        "REVOKED",
        "SPECIAL_EXIT",
    }
)

# Started and not ended: like squeue, the time used counts until now.
STARTED_STATES = frozenset({RUNNING, "SUSPENDED", "COMPLETING"})


def normalised_state(raw: str) -> tuple[str, str | None]:
    """Slurm's state, normalised; ``CANCELLED by 1001`` keeps its suffix as the reason."""
    state, _, rest = raw.strip().partition(" ")
    # pyfirecrest's wait_for_job treats any state containing "F" as finished: a job that is
    # still CONFIGURING (nodes booting) is reported as RUNNING so it is not mistaken for done.
    if state == "CONFIGURING":
        return RUNNING, "Configuring"
    return state or UNKNOWN, rest or None
