from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence

import pytest

from firecrest_server.cluster import CommandResult
from firecrest_server.config import SystemConfig
from firecrest_server.errors import ApiError, ServiceUnavailable
from firecrest_server.health import HealthMonitor
from firecrest_server.ssh.pool import ConnectionLost


def system(**overrides) -> SystemConfig:
    config = {
        "name": "cluster",
        "ssh": {
            "host": "login",
            "known_hosts": "/dev/null",
            "credentials": {"type": "static_keys", "keys": {}},
        },
        "file_systems": [{"path": "/home"}, {"path": "/scratch"}, {"path": "/scratch/fast"}],
    } | overrides
    return SystemConfig.model_validate(config)


class FakeCluster:
    """Answers probe commands; ``answers[argv[0] or path]`` is an exit status or an exception."""

    def __init__(self) -> None:
        self.answers: dict[str, int | Exception] = {}
        self.stderr: dict[str, str] = {}
        self.calls: list[tuple[str, tuple[str, ...]]] = []

    def runner_for(self, config: SystemConfig, user: str):
        cluster = self

        class Runner:
            async def run(self, argv: Sequence[str], *, timeout: float | None = None):
                cluster.calls.append((user, tuple(argv)))
                key = argv[-1] if argv[0] == "stat" else argv[0]
                answer = cluster.answers.get(key, 0)
                if isinstance(answer, Exception):
                    raise answer
                stderr = cluster.stderr.get(key, "").encode()
                return CommandResult(tuple(argv), answer, b"", stderr)

        return Runner()


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def cluster() -> FakeCluster:
    return FakeCluster()


@pytest.fixture
def clock() -> Clock:
    return Clock()


def monitor(cluster: FakeCluster, clock: Clock, **overrides) -> HealthMonitor:
    return HealthMonitor([system(**overrides)], cluster.runner_for, clock=clock)


async def test_unknown_without_a_probe_user(cluster, clock) -> None:
    health = monitor(cluster, clock)
    health.start()
    try:
        assert health._tasks == []  # no loop at all for a system nobody may probe as
        await health.probe("cluster")
    finally:
        await health.close()
    assert cluster.calls == []
    assert health.probe_user("cluster") is None
    assert health.liveness() == ({}, 0)
    assert all(r.healthy is None for r in health.services("cluster"))
    health.ensure_available("cluster")  # unknown never refuses
    health.ensure_path("cluster", "/home/alice")


async def test_probes_run_as_the_probe_user(cluster, clock) -> None:
    health = monitor(cluster, clock, probe_user="svc")
    await health.probe("cluster")
    assert {user for user, _ in cluster.calls} == {"svc"}
    assert ("svc", ("true",)) in cluster.calls
    assert ("svc", ("scontrol", "ping")) in cluster.calls
    results = {(r.service_type, r.path): r for r in health.services("cluster")}
    assert results[("ssh", None)].healthy is True
    assert results[("scheduler", None)].healthy is True
    assert results[("filesystem", "/scratch")].healthy is True
    assert results[("filesystem", "/home")].last_checked == clock.now
    clock.now += 42.7
    assert health.liveness() == ({"cluster": clock.now - 42.7}, 42)


async def test_a_system_left_out_of_probe_users_is_not_probed(cluster, clock) -> None:
    # The runtime leaves out a system whose probe user cannot log in without a caller's token
    # (key service): configured or not, no one else stands in for it.
    config = system(probe_user="svc")
    health = HealthMonitor([config], cluster.runner_for, probe_users={}, clock=clock)
    await health.probe("cluster")
    assert cluster.calls == []
    assert health.probe_user("cluster") is None
    assert all(r.healthy is None for r in health.services("cluster"))


async def test_unreachable_login_node_fails_fast_with_503(cluster, clock) -> None:
    health = monitor(cluster, clock, probe_user="svc")
    cluster.answers["true"] = ConnectionLost("Cannot connect to cluster over SSH: refused")
    await health.probe("cluster")
    with pytest.raises(ServiceUnavailable) as refused:
        health.ensure_available("cluster")
    assert refused.value.status_code == 503
    assert "Cannot connect" in refused.value.message
    assert int(refused.value.headers["Retry-After"]) >= 1
    # Nothing behind SSH could be probed: unknown, not unhealthy.
    assert all(r.healthy is None for r in health.services("cluster")[1:])
    health.ensure_path("cluster", "/home/alice")
    cluster.answers["true"] = 0
    await health.probe("cluster")
    health.ensure_available("cluster")


async def test_probe_users_own_failures_are_not_outages(cluster, clock) -> None:
    health = monitor(cluster, clock, probe_user="svc")
    cluster.answers["true"] = ApiError("SSH login to cluster as svc was refused")
    await health.probe("cluster")
    assert health.services("cluster")[0].healthy is None
    assert "refused" in (health.services("cluster")[0].message or "")
    health.ensure_available("cluster")
    cluster.answers["true"] = 1  # a nologin shell
    await health.probe("cluster")
    assert health.services("cluster")[0].healthy is None


async def test_probe_timeout_is_an_outage(cluster, clock) -> None:
    health = monitor(cluster, clock, probe_user="svc")
    cluster.answers["true"] = TimeoutError()
    await health.probe("cluster")
    with pytest.raises(ServiceUnavailable):
        health.ensure_available("cluster")


async def test_unhealthy_file_system_refuses_only_its_paths(cluster, clock) -> None:
    health = monitor(cluster, clock, probe_user="svc")
    cluster.answers["/scratch"] = 1
    cluster.stderr["/scratch"] = "stat: cannot statx '/scratch': Stale file handle"
    await health.probe("cluster")
    health.ensure_available("cluster")
    health.ensure_path("cluster", "/home/alice/x")
    health.ensure_path("cluster", "/scratchy/x")  # a sibling, not under /scratch
    health.ensure_path("cluster", "/scratch/fast/run")  # a healthy mount inside it decides
    with pytest.raises(ServiceUnavailable) as refused:
        health.ensure_path("cluster", "/scratch/../scratch/alice")
    assert "/scratch" in refused.value.message
    assert "Stale file handle" in refused.value.message
    health.ensure_path("cluster", "relative/path")  # not ours to judge: path checks reject it


async def test_permission_denied_on_a_file_system_is_unknown(cluster, clock) -> None:
    health = monitor(cluster, clock, probe_user="svc")
    cluster.answers["/home"] = 1
    cluster.stderr["/home"] = "stat: cannot statx '/home': Permission denied"
    cluster.answers["/scratch"] = 124
    await health.probe("cluster")
    results = {r.path: r for r in health.services("cluster") if r.path}
    assert results["/home"].healthy is None
    assert results["/scratch"].healthy is False
    assert "timed out" in (results["/scratch"].message or "")


async def test_scheduler_down_is_reported(cluster, clock) -> None:
    health = monitor(cluster, clock, probe_user="svc")
    cluster.answers["scontrol"] = 1
    await health.probe("cluster")
    assert health.services("cluster")[1].healthy is False
    with pytest.raises(ServiceUnavailable):
        health.ensure_available("cluster", "scheduler")
    health.ensure_available("cluster", "ssh")


async def test_in_rest_mode_slurmrestd_must_answer_too(cluster, clock) -> None:
    answers: list[str | None] = [None, "slurmrestd is unreachable: ConnectError"]
    calls = []

    async def ping() -> str | None:
        calls.append(1)
        return answers[len(calls) - 1]

    health = HealthMonitor(
        [system(probe_user="svc")], cluster.runner_for, clock=clock, rest_pings={"cluster": ping}
    )
    await health.probe("cluster")
    assert health.services("cluster")[1].healthy is True
    await health.probe("cluster")
    scheduler = health.services("cluster")[1]
    assert (scheduler.healthy, scheduler.message) == (False, answers[1])
    with pytest.raises(ServiceUnavailable):
        health.ensure_available("cluster", "scheduler")
    # slurmctld down: the SSH probe says so, and slurmrestd is not asked.
    cluster.answers["scontrol"] = 1
    await health.probe("cluster")
    assert len(calls) == 2


async def test_a_failing_service_is_probed_again_sooner(cluster, clock) -> None:
    health = monitor(cluster, clock, probe_user="svc", probe_interval=3600)
    state = health._systems["cluster"]
    await health.probe("cluster")
    assert not state.failing
    cluster.answers["scontrol"] = 1  # the scheduler alone
    await health.probe("cluster")
    assert state.failing
    cluster.answers["scontrol"] = 0
    await health.probe("cluster")
    assert not state.failing


async def test_the_probe_loop_retries_a_failed_scheduler_within_the_short_delay(
    cluster, monkeypatch
) -> None:
    monkeypatch.setattr("firecrest_server.health._RETRY_AFTER_FAILURE", 0.02)
    health = HealthMonitor([system(probe_interval=3600, probe_user="svc")], cluster.runner_for)
    cluster.answers["scontrol"] = 1
    health.start()
    try:
        await asyncio.sleep(0.2)
        probes = sum(1 for _, argv in cluster.calls if argv[0] == "scontrol")
        assert probes >= 3  # with the 3600 s interval there would be one
    finally:
        await health.close()


async def test_the_loop_probes_at_start_without_waiting_for_a_caller(cluster) -> None:
    health = HealthMonitor([system(probe_interval=3600, probe_user="svc")], cluster.runner_for)
    health.start()
    try:
        for _ in range(100):
            if health.liveness()[0]:
                break
            await asyncio.sleep(0.01)
        assert "cluster" in health.liveness()[0]
        assert {user for user, _ in cluster.calls} == {"svc"}
    finally:
        await health.close()


async def test_a_crashing_probe_does_not_stop_the_loop(cluster) -> None:
    health = HealthMonitor([system(probe_interval=0.02, probe_user="svc")], cluster.runner_for)
    cluster.answers["true"] = RuntimeError("bug")  # not an ApiError: escapes the probe
    health.start()
    try:
        await asyncio.sleep(0.1)
        assert sum(1 for _, argv in cluster.calls if argv == ("true",)) >= 2
    finally:
        await health.close()


def test_all_results_for_metrics(cluster, clock) -> None:
    health = monitor(cluster, clock)
    rows = list(health.all_results())
    assert ("cluster", "ssh", "", None) in rows
    assert ("cluster", "filesystem", "/scratch/fast", None) in rows


def test_probe_user_must_be_a_login_name() -> None:
    assert system(probe_user="svc-probe").probe_user == "svc-probe"
    assert system().probe_user is None
    with pytest.raises(ValueError, match="probe_user"):
        system(probe_user="root; rm -rf /")


async def test_close_ends_the_loop_even_if_a_probe_swallows_the_cancellation() -> None:
    # Third-party code (asyncio.wait_for on Python 3.11, inside asyncssh's connect) can lose a
    # cancellation; the loop must still end, not sleep for its hour-long interval.
    started = asyncio.Event()

    def runner_for(config, user):
        class Swallowing:
            async def run(self, argv, *, timeout=None):
                started.set()
                with contextlib.suppress(asyncio.CancelledError):  # lost, as wait_for can
                    await asyncio.sleep(3600)
                return CommandResult(tuple(argv), 0, b"", b"")

        return Swallowing()

    health = HealthMonitor([system(probe_interval=3600, probe_user="svc")], runner_for)
    health.start()
    await asyncio.wait_for(started.wait(), 5)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    await asyncio.wait([asyncio.ensure_future(health.close())], timeout=10)
    # Without the fix close() waits for the loop's next wake-up, an hour away.
    assert loop.time() - t0 < 5
    assert health._tasks == []
