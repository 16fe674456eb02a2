"""Background health probes per system, and the fast 503 for services known to be down.

Every ``probe_interval`` seconds each system is probed: SSH (``true``), then the scheduler
(``scontrol ping``) and every configured file system (``stat``) at once. Results are cached here;
``/status/systems`` reports them and requests to a service whose last probe failed get a 503 at
once instead of waiting for their own timeout.

The probes run as the system's ``probe_user``, the server's own login, over a pool of their own
with its own limits (runtime.py): never as a caller, never on a caller's connections. Otherwise
a user whose channels are all busy, or whose ~/.bashrc hangs or prints, would have the system
marked down for every user. A system without a probe identity (no ``probe_user``, or one that
cannot log in without a caller's token) is not probed: its health stays unknown and nothing is
refused.

Only failures that cannot be the probe user's own are counted as an outage — the host unreachable,
a timeout, a file system that is missing or stale. A refused login or a permission error is
recorded as unknown: it says something about that user, and one user's broken account must not
turn every other user away.

File systems are probed with a ``stat`` process rather than over SFTP: OpenSSH's sftp-server
handles one request at a time, so a ``stat`` hanging on a dead mount would block the probe user's
shared SFTP channel, and with it all their other file operations. A process per file system per
interval costs nothing that matters.
"""

from __future__ import annotations

import asyncio
import logging
import posixpath
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from .cluster import TIMEOUT_EXIT, CommandResult
from .config import SystemConfig
from .errors import ApiError, NotFound, RequestTimeout, ServiceUnavailable
from .models.status import ServiceType
from .scheduler.slurm_cluster import PING_ARGV, ping_healthy
from .ssh.pool import ConnectionLost

log = logging.getLogger("firecrest_server.health")

# After a failed probe (SSH, scheduler or a file system), probe again sooner than the interval,
# so an outage that has ended stops costing users 503s quickly.
_RETRY_AFTER_FAILURE = 15.0
_MAX_MESSAGE = 300


class CommandRunner(Protocol):
    async def run(self, argv: Sequence[str], *, timeout: float | None = None) -> CommandResult: ...


# (system, probe user) -> something that runs commands as that user on that system, over
# connections that serve nothing else.
RunnerFactory = Callable[[SystemConfig, str], CommandRunner]


@dataclass
class ProbeResult:
    service_type: ServiceType
    healthy: bool | None = None  # None: unknown
    last_checked: float | None = None  # epoch seconds
    latency: float | None = None
    message: str | None = None
    path: str | None = None


@dataclass
class _SystemHealth:
    system: SystemConfig
    ssh: ProbeResult = field(default_factory=lambda: ProbeResult("ssh"))
    scheduler: ProbeResult = field(default_factory=lambda: ProbeResult("scheduler"))
    filesystems: dict[str, ProbeResult] = field(default_factory=dict)
    user: str | None = None  # the probe identity; None: not probed
    last_run: float | None = None  # epoch seconds of the last probe run
    next_run: float = 0.0  # monotonic

    def __post_init__(self) -> None:
        self.filesystems = {
            fs.path: ProbeResult("filesystem", path=fs.path) for fs in self.system.file_systems
        }

    @property
    def failing(self) -> bool:
        """Whether the last probe found any service of the system down."""
        results = [self.ssh, self.scheduler, *self.filesystems.values()]
        return any(result.healthy is False for result in results)


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 3] + "..."


def _covers(fs_path: str, path: str) -> bool:
    return fs_path == "/" or path == fs_path or path.startswith(fs_path + "/")


class HealthMonitor:
    def __init__(
        self,
        systems: Iterable[SystemConfig],
        runner_for: RunnerFactory,
        *,
        probe_users: Mapping[str, str | None] | None = None,
        rest_pings: Mapping[str, Callable[[], Awaitable[str | None]]] | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._systems = {s.name: _SystemHealth(s) for s in systems}
        # By default each system's configured probe_user; the runtime leaves out those that
        # could not log in (a key service needs a token, and probes have none).
        for name, state in self._systems.items():
            state.user = state.system.probe_user if probe_users is None else probe_users.get(name)
        self._runner_for = runner_for
        # Systems whose scheduler is reached over slurmrestd: it must answer too.
        self._rest_pings = dict(rest_pings or {})
        self._clock = clock
        self._monotonic = monotonic
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False

    # ------------------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._loop(state), name=f"health-{name}")
            for name, state in self._systems.items()
            if state.user is not None
        ]

    async def close(self) -> None:
        self._closing = True
        for task in self._tasks:
            # Cancelled until it ends: a cancellation can be lost inside a probe (on Python
            # 3.11 asyncio.wait_for, used by asyncssh's connect, drops one that arrives as its
            # inner call finishes), and the loop would then sleep a whole interval.
            while not task.done():
                task.cancel()
                await asyncio.wait([task], timeout=1)
            if not task.cancelled() and task.exception() is not None:
                log.error("health probe loop failed", exc_info=task.exception())
        self._tasks = []

    async def _loop(self, state: _SystemHealth) -> None:
        interval = state.system.probe_interval
        while not self._closing:
            try:
                await self.probe(state.system.name)
            except Exception:  # a bug in a probe must not end the probing
                log.exception("health probe failed", extra={"system": state.system.name})
            delay = min(interval, _RETRY_AFTER_FAILURE) if state.failing else interval
            state.next_run = self._monotonic() + delay
            await asyncio.sleep(delay)

    # ---------------------------------------------------------------------------- who probes

    def probe_user(self, system_name: str) -> str | None:
        """The login the system's probes run as; None: the system is not probed."""
        return self._systems[system_name].user

    # -------------------------------------------------------------------------------- probing

    async def probe(self, system_name: str) -> None:
        """Probe every service of one system now, and cache the results."""
        state = self._systems[system_name]
        user = self.probe_user(system_name)
        if user is None:
            return
        runner = self._runner_for(state.system, user)
        timeout = state.system.ssh.command_timeout
        state.ssh = await self._probe_ssh(runner, user, timeout)
        paths = list(state.filesystems)
        if state.ssh.healthy:
            scheduler, *filesystems = await asyncio.gather(
                self._probe_scheduler(runner, timeout, self._rest_pings.get(system_name)),
                *(self._probe_filesystem(runner, path, timeout) for path in paths),
            )
        else:
            # Without a working SSH login nothing else can be known.
            message = "not probed: SSH is unavailable or the probe could not log in"
            scheduler = ProbeResult("scheduler", last_checked=self._clock(), message=message)
            filesystems = [
                ProbeResult("filesystem", last_checked=self._clock(), message=message, path=p)
                for p in paths
            ]
        state.scheduler = scheduler
        state.filesystems = dict(zip(paths, filesystems, strict=True))
        state.last_run = state.ssh.last_checked
        if state.ssh.healthy is False:
            log.warning(
                "SSH probe failed",
                extra={"system": system_name, "probe_message": state.ssh.message},
            )

    async def _timed(
        self, runner: CommandRunner, argv: Sequence[str], timeout: float
    ) -> tuple[float, float, CommandResult | Exception]:
        checked, started = self._clock(), time.perf_counter()
        try:
            # The runner has deadlines of its own; this one also covers a connect that hangs.
            async with asyncio.timeout(timeout + 30):
                outcome: CommandResult | Exception = await runner.run(argv, timeout=timeout)
        except (ApiError, TimeoutError) as exc:
            outcome = exc
        return checked, round(time.perf_counter() - started, 4), outcome

    async def _probe_ssh(self, runner: CommandRunner, user: str, timeout: float) -> ProbeResult:
        checked, latency, outcome = await self._timed(runner, ["true"], timeout)
        result = ProbeResult("ssh", last_checked=checked, latency=latency)
        if isinstance(outcome, ConnectionLost | RequestTimeout | TimeoutError):
            result.healthy = False
            result.message = _short(getattr(outcome, "message", "") or "SSH probe timed out")
        elif isinstance(outcome, Exception):
            result.message = _short(f"the probe as {user} failed: {outcome}")
        elif outcome.exit_status == 0:
            result.healthy = True
        elif outcome.exit_status == TIMEOUT_EXIT:
            result.healthy = False
            result.message = "SSH probe timed out on the login node"
        else:
            # A login shell such as nologin: a fact about the probe user, not an outage.
            result.message = _short(f"`true` as {user} exited {outcome.exit_status}")
        return result

    async def _probe_scheduler(
        self,
        runner: CommandRunner,
        timeout: float,
        rest_ping: Callable[[], Awaitable[str | None]] | None = None,
    ) -> ProbeResult:
        checked, latency, outcome = await self._timed(runner, PING_ARGV, timeout)
        result = ProbeResult("scheduler", last_checked=checked, latency=latency)
        if isinstance(outcome, Exception):
            result.healthy = False
            result.message = _short(str(outcome) or "scheduler probe timed out")
        else:
            text = outcome.stdout_text + outcome.stderr_text
            result.healthy = ping_healthy(outcome.exit_status, text)
            result.message = _short(text)
        if rest_ping is not None and result.healthy:
            # The probe user has no token for slurmrestd: an unauthenticated request shows
            # that it serves (slurmctld is shown by scontrol ping above).
            try:
                async with asyncio.timeout(timeout):
                    problem = await rest_ping()
            except TimeoutError:
                problem = "slurmrestd did not answer in time"
            if problem is not None:
                result.healthy = False
                result.message = _short(problem)
        return result

    async def _probe_filesystem(
        self, runner: CommandRunner, path: str, timeout: float
    ) -> ProbeResult:
        argv = ["stat", "-c", "%F", "--", path]
        checked, latency, outcome = await self._timed(runner, argv, timeout)
        result = ProbeResult("filesystem", last_checked=checked, latency=latency, path=path)
        if isinstance(outcome, Exception):
            result.healthy = False
            result.message = _short(str(outcome) or "file system probe timed out")
        elif outcome.exit_status == 0:
            result.healthy = True
        elif "Permission denied" in outcome.stderr_text:
            result.message = _short(outcome.stderr_text)  # the probe user's, not an outage
        else:
            result.healthy = False
            detail = "timed out" if outcome.exit_status == TIMEOUT_EXIT else outcome.stderr_text
            result.message = _short(f"stat {path}: {detail}")
        return result

    # ---------------------------------------------------------------------------- answering

    def _unavailable(self, state: _SystemHealth, what: str, message: str | None) -> None:
        retry_after = max(1.0, state.next_run - self._monotonic())
        raise ServiceUnavailable(
            f"{what} of system {state.system.name} is unavailable: {message or 'probe failed'}",
            retry_after=retry_after,
        )

    def ensure_available(self, system_name: str, service: str = "ssh") -> None:
        """Raise 503 if the last probe of ``service`` (ssh or scheduler) on the system failed."""
        state = self._systems.get(system_name)
        if state is None:
            raise NotFound(f"System not found: {system_name}")
        result = state.ssh if service == "ssh" else state.scheduler
        if result.healthy is False:
            self._unavailable(
                state, "The SSH service" if service == "ssh" else "The scheduler", result.message
            )

    def ensure_path(self, system_name: str, path: str) -> None:
        """Raise 503 if ``path`` lies on a configured file system whose last probe failed."""
        state = self._systems.get(system_name)
        if state is None or not path.startswith("/"):
            return
        path = posixpath.normpath(path)
        covering = [fs for fs in state.filesystems if _covers(fs, path)]
        if not covering:
            return
        fs_path = max(covering, key=len)  # the innermost mount decides
        result = state.filesystems[fs_path]
        if result.healthy is False:
            self._unavailable(state, f"The file system {fs_path}", result.message)

    def services(self, system_name: str) -> list[ProbeResult]:
        state = self._systems[system_name]
        return [state.ssh, state.scheduler, *state.filesystems.values()]

    def probed(self, system_name: str) -> bool:
        """Whether this system is probed at all (it has a probe identity that could log in)."""
        return self._systems[system_name].user is not None

    def last_run(self, system_name: str) -> float | None:
        """Epoch seconds of the system's last probe run; None before the first."""
        return self._systems[system_name].last_run

    def all_results(self) -> Iterable[tuple[str, str, str, bool | None]]:
        """(system, service, path, healthy) for metrics."""
        for name in self._systems:
            for result in self.services(name):
                yield name, result.service_type, result.path or "", result.healthy

    def liveness(self) -> tuple[dict[str, float], int]:
        """When each system was last probed, and the age in seconds of the oldest probe."""
        runs = {n: s.last_run for n, s in self._systems.items() if s.last_run is not None}
        if not runs:
            return {}, 0
        return runs, max(0, int(self._clock() - min(runs.values())))
