"""Unit tests of the plugin's one table of Slurm facts (``client.slurm``): it must name every
job state Slurm documents, and a job in any final state must end the client's wait."""

from __future__ import annotations

import httpx
import pytest
from aiida.schedulers.datastructures import JobState

from aiida_firecrest.client import auth
from aiida_firecrest.client.api import FirecrestClient
from aiida_firecrest.client.retry import RetryPolicy
from aiida_firecrest.client.slurm import FINAL_STATES, JOB_STATES, Phase, is_final_state
from aiida_firecrest.scheduler import aiida_state

# The job state names of squeue(1), JOB STATE CODES, Slurm 22.05 (the version of the test
# cluster; checked against its manual page): the reference the table is held to.
SLURM_22_05_JOB_STATES = {
    "BOOT_FAIL",
    "CANCELLED",
    "COMPLETED",
    "CONFIGURING",
    "COMPLETING",
    "DEADLINE",
    "FAILED",
    "NODE_FAIL",
    "OUT_OF_MEMORY",
    "PENDING",
    "PREEMPTED",
    "RUNNING",
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
# Those after which the job does not change any more (without a person stepping in).
SLURM_FINAL_STATES = {
    "BOOT_FAIL",
    "CANCELLED",
    "COMPLETED",
    "DEADLINE",
    "FAILED",
    "NODE_FAIL",
    "OUT_OF_MEMORY",
    "PREEMPTED",
    "REVOKED",
    "SPECIAL_EXIT",
    "TIMEOUT",
}


def test_every_documented_state_is_known() -> None:
    missing = SLURM_22_05_JOB_STATES - JOB_STATES.keys()
    assert not missing, f"job states Slurm documents but client.slurm does not know: {missing}"
    assert JOB_STATES.keys() == SLURM_22_05_JOB_STATES


def test_final_states() -> None:
    assert FINAL_STATES == SLURM_FINAL_STATES
    for name in SLURM_22_05_JOB_STATES:
        assert is_final_state(name) is (name in SLURM_FINAL_STATES), name
        assert is_final_state(f"{name} by 1001") is (name in SLURM_FINAL_STATES), name


@pytest.mark.parametrize("name", sorted(SLURM_22_05_JOB_STATES))
def test_the_scheduler_maps_every_state(name: str) -> None:
    state = aiida_state(name)
    assert state is not JobState.UNDETERMINED
    assert (state is JobState.DONE) is (JOB_STATES[name] is Phase.FINISHED)


def test_an_unknown_state_is_undetermined() -> None:
    assert aiida_state("NO_SUCH_STATE") is JobState.UNDETERMINED
    assert not is_final_state("NO_SUCH_STATE")


@pytest.mark.parametrize("final", ["REVOKED", "SPECIAL_EXIT"])
async def test_wait_for_job_returns_for_a_final_state(final: str) -> None:
    """Regression: the client's copy of the final states lacked these two, so a job that
    ended in them was polled until the wait's timeout (and then cancelled)."""
    answers = iter(["PENDING", "RUNNING", final])
    polls: list[str] = []

    def server(request: httpx.Request) -> httpx.Response:
        assert request.method == "GET", "the wait must not cancel the job"
        assert request.url.path == "/api/compute/cluster/jobs/42"
        state = next(answers)
        polls.append(state)
        return httpx.Response(200, json={"jobs": [{"jobId": "42", "status": {"state": state}}]})

    client = FirecrestClient(
        "http://firecrest.test/api",
        auth.StaticToken("t0"),
        retry=RetryPolicy(attempts=1),
        transport=httpx.MockTransport(server),
        max_poll_interval=0.001,
    )
    try:
        record = await client.wait_for_job("cluster", "42", timeout=600)
    finally:
        await client.aclose()
    assert record["status"]["state"] == final
    assert polls == ["PENDING", "RUNNING", final]
