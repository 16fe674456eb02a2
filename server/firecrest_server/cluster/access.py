"""The one factory of what acts on the cluster: a ``Remote`` per request, a runner per probe."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from ..config import SystemConfig
from ..ssh.credentials import CallerProof
from ..ssh.pool import SSHPool
from .commands import CommandObserver, RemoteRunner
from .names import IdNames
from .remote import Remote
from .slurmrestd import SlurmRestClient

# Probes only need an exit status and a line of stderr.
PROBE_OUTPUT_LIMIT = 64 * 1024


class ClusterAccess:
    """Puts together, for one system, a pool, a login, the system's limits and the metrics hook.

    Made once in the app's lifespan from the pools it owns; every command run through what it
    hands out is reported to ``observe``.
    """

    def __init__(
        self,
        systems: Iterable[SystemConfig],
        pools: Mapping[str, SSHPool],
        probe_pools: Mapping[str, SSHPool],
        slurmrestd: Mapping[str, SlurmRestClient],
        observe: CommandObserver | None = None,
    ) -> None:
        self._pools = pools
        self._probe_pools = probe_pools
        self._slurmrestd = slurmrestd
        self._observe = observe
        # Per system and shared by its callers: names seen in one user's listing serve all.
        self._names = {system.name: IdNames() for system in systems}

    def remote(
        self,
        system: SystemConfig,
        username: str,
        proof: CallerProof,
        request_id: str | None = None,
    ) -> Remote:
        """``username`` acting on ``system``, logging in with ``proof`` (their bearer token, a
        staging URL's sealed key, or None for the pool's own credentials)."""
        runner = RemoteRunner(
            self._pools[system.name],
            username,
            proof,
            timeout=system.ssh.command_timeout,
            max_output=system.ssh.max_output_bytes,
            request_id=request_id,
            observe=self._observe,
        )
        return Remote(
            system=system,
            runner=runner,
            names=self._names[system.name],
            slurmrestd=self._slurmrestd.get(system.name),
        )

    def probe_runner(self, system: SystemConfig, user: str) -> RemoteRunner:
        """Commands as the system's probe user, over the probes' own pool."""
        return RemoteRunner(
            self._probe_pools[system.name],
            user,
            None,  # probes run outside any request: no caller, no token
            timeout=system.ssh.command_timeout,
            max_output=PROBE_OUTPUT_LIMIT,
            request_id="health-probe",
            observe=self._observe,
        )
