"""AiiDA's daemon through the balancer while a replica restarts (issue 15).

Calculations run through a real daemon (PostgreSQL, RabbitMQ, two workers) with the
``firecrest`` transport and scheduler pointed at the 2-replica stack's balancer URL; a few
seconds in, one replica is stopped (SIGTERM: it drains; SIGKILL: a crash, after freezing it
until it holds some of the daemon's requests) and started again. Every calculation must finish
OK with the right sum, none excepted, none paused, none lost, none sent to AiiDA's backoff, and
each must have been submitted to Slurm exactly once (a submit whose answer died with the
replica is looked for before it is sent again: see docs/aiida.md).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from firecrest_dev.aiida_env import loaded, new_profile, states, submit_additions, wait_terminated
from firecrest_dev.info import StackInfo
from firecrest_dev.running import restart_part

from ..e2e.conftest import COMPUTER, E2E, POLL_INTERVAL, WORKERS
from .conftest import haproxy_stats

pytestmark = [pytest.mark.stack, pytest.mark.slow]

# Enough calculations that every stage (upload, submit, poll, retrieve) is under way when the
# replica goes down, few enough for CI (40-70 s a run on the shared 2-core machine).
COUNT = 12
# Requests of the daemon's to have on the replica when it is killed (see _frozen_until_busy).
IN_FLIGHT = 3


@pytest.fixture(scope="module")
def aiida(replicas: StackInfo) -> Iterator[E2E]:
    """A profile, a daemon of two workers, and the computer ``stack`` for alice whose ``url``
    is the balancer's: the plugin never learns that there are replicas behind it."""
    profile = new_profile("fcrep")
    try:
        profile.create()
        workdir = profile.add_computer(replicas, COMPUTER)
        with loaded(profile):
            from aiida import orm

            computer = orm.load_computer(COMPUTER)
            computer.set_minimum_job_poll_interval(POLL_INTERVAL)
            with computer.get_transport() as transport:
                transport.makedirs(workdir)  # see tests/e2e/conftest.py: upload's makedirs race
            profile.start_daemon(WORKERS)
            yield E2E(profile, replicas, workdir)
    finally:
        problems = profile.destroy()
        assert not problems, f"cleaning up the AiiDA profile {profile.name}: {problems}"


def _slurm_jobs_per_workdir(stack: StackInfo, workdirs: set[str]) -> Counter[str]:
    """How many Slurm jobs alice has in each of ``workdirs`` (the API's listing, through the
    balancer): a submit sent twice shows as two jobs in one calculation's directory."""
    response = httpx.get(
        f"{stack.url}/compute/{stack.system}/jobs",
        params={"time_window": "1h"},
        headers={"Authorization": f"Bearer {stack.fetch_token('alice')}"},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    count: Counter[str] = Counter()
    for job in response.json()["jobs"]:
        workdir = str(job.get("workingDirectory") or "").rstrip("/")
        if workdir in workdirs:
            count[workdir] += 1
    return count


def _run_through_a_restart(aiida: E2E, replica: str, how: str, offset: int) -> dict[str, Any]:
    """Submit COUNT additions, restart ``replica`` with SIG``how`` 3 s later, wait for all."""
    from aiida import orm

    stack = aiida.stack
    log_offset = aiida.profile.daemon_log_offset()
    submitted = submit_additions(aiida.code, COUNT, offset=offset)
    pks = [node.pk for node, _ in submitted]
    time.sleep(3)  # the daemon has picked them up: uploads and submits are under way
    unfinished = [pk for pk, (state, _) in states(pks).items() if state != "finished"]
    old_pid = stack.pids[replica]
    before = haproxy_stats(stack)[replica]
    t0 = time.monotonic()
    if how == "KILL":
        with _frozen_until_busy(stack, replica) as in_flight:
            new_pid = restart_part(stack, replica, signal=how, down=1.0)
    else:
        in_flight = None
        new_pid = restart_part(stack, replica, signal=how, down=1.0)
    restart = time.monotonic() - t0
    wall = wait_terminated(aiida.profile, pks, timeout=600)

    nodes = [(orm.load_node(node.pk), expected) for node, expected in submitted]
    failures = Counter(
        (task, re.sub(r"/home/\S+", "PATH", error))
        for task, error in aiida.profile.task_failures(log_offset)
    )
    after = haproxy_stats(stack)[replica]
    result = {
        "unfinished_at_restart": len(unfinished),
        "in_flight_at_kill": in_flight,
        # What the balancer did about it: answers that never came (eresp), and requests it
        # sent again (wretr) or to the other replica (wredis), which the plugin never saw.
        "balancer": {
            key: int(after[key] or 0) - int(before[key] or 0)
            for key in ("eresp", "econ", "wretr", "wredis")
        },
        "restart_seconds": restart,
        "wall": wall,
        "finished_ok": sum(node.is_finished_ok for node, _ in nodes),
        "excepted": sum(node.is_excepted for node, _ in nodes),
        "wrong": [
            f"{node.pk}: {node.process_state} {node.exit_status}"
            for node, expected in nodes
            if not node.is_finished_ok or node.outputs.sum.value != expected
        ],
        "plugin_retries": aiida.profile.plugin_retries(log_offset),
        "task_failures": failures,
        "jobs": _slurm_jobs_per_workdir(
            stack, {node.get_remote_workdir().rstrip("/") for node, _ in nodes}
        ),
        "lost_answers": _lost_answers(aiida, log_offset),
    }
    print(
        f"\n{replica} restarted with SIG{how} ({restart:.1f} s) with {len(unfinished)}/"
        f"{COUNT} calculations unfinished and {in_flight} of their requests on it; all "
        f"terminated {wall:.1f} s after it served again: {result['finished_ok']} finished OK, "
        f"{result['excepted']} excepted; balancer: {result['balancer']}; "
        f"requests retried by the plugin: {result['plugin_retries']}; answers lost with the "
        f"replica, settled by looking: {result['lost_answers']}; transport tasks retried by "
        f"AiiDA's backoff: {sum(failures.values())}; Slurm jobs per calculation: "
        f"{sorted(Counter(result['jobs'].values()).items())}"
    )
    for (task, error), n in failures.most_common():
        print(f"  {n:3d} x {task}: {error}")
    assert new_pid != old_pid
    assert unfinished, "every calculation had finished before the replica was restarted"
    return result


@contextlib.contextmanager
def _frozen_until_busy(stack: StackInfo, replica: str) -> Iterator[int]:
    """SIGSTOP the replica (its supervisor and workers) until the balancer has sent it
    ``IN_FLIGHT`` requests, or has taken it out (~1 s: its health checks go unanswered); gives
    how many it holds. A crash then always meets requests in flight: a SIGKILL out of the blue
    mostly finds none (the daemon's requests take milliseconds), and tests nothing."""
    pid = stack.pids[replica]
    assert os.getpgid(pid) == pid, f"{replica} is not a process group leader"
    os.killpg(pid, signal.SIGSTOP)
    try:
        deadline = time.monotonic() + 20
        while True:
            row = haproxy_stats(stack)[replica]
            held = int(row["scur"] or 0)
            if held >= IN_FLIGHT or row["status"] != "UP" or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        yield held
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGCONT)  # killed by then; if not, not left frozen


# The plugin's warnings for requests not repeated whose answer died with the replica, by outcome.
LOST_ANSWER_OUTCOMES = {
    "submit found": "taken as submitted",
    "submit sent again": "submitted again",
    "mkdir found": "taken as made",  # there when looked at, or made late
    "mkdir sent again": "not there, sent again",
}


def _lost_answers(aiida: E2E, since: int) -> dict[str, int]:
    """How the plugin settled the lost answers (its warnings in the daemon log)."""
    with aiida.profile.daemon_log.open("rb") as handle:
        handle.seek(since)
        lines = [
            line
            for line in handle.read().decode(errors="replace").splitlines()
            if "answer lost" in line
        ]
    return {what: sum(p in line for line in lines) for what, p in LOST_ANSWER_OUTCOMES.items()}


def _check(result: dict[str, Any]) -> None:
    assert result["wrong"] == [], result["wrong"]
    assert result["finished_ok"] == COUNT
    assert result["excepted"] == 0
    # None lost, none run twice: exactly one Slurm job in each calculation's directory.
    assert sorted(result["jobs"].values()) == [1] * COUNT, result["jobs"]


def test_calculations_survive_a_graceful_replica_restart(aiida: E2E) -> None:
    result = _run_through_a_restart(aiida, "server-2", "TERM", offset=0)
    _check(result)
    # A draining replica finishes what it has: nothing reaches AiiDA's backoff.
    assert result["task_failures"] == Counter()


def test_calculations_survive_a_replica_crash(aiida: E2E) -> None:
    result = _run_through_a_restart(aiida, "server-2", "KILL", offset=100)
    _check(result)
    # The crash met requests in flight: the balancer sent GETs again, the plugin repeated
    # idempotent requests and settled the others by looking (a mkdir, a submit) ...
    assert result["in_flight_at_kill"] > 0
    assert result["balancer"]["eresp"] + result["balancer"]["wredis"] > 0
    # ... and none failed over to AiiDA's backoff.
    assert result["task_failures"] == Counter()
