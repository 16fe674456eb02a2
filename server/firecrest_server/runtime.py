"""Objects with state that live as long as the app: created in the lifespan, passed in by deps."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx

from .auth import TokenValidator
from .config import Settings, SystemConfig
from .filesystem.names import IdNames
from .health import HealthMonitor
from .metrics import Metrics
from .ratelimit import UserLimiter
from .ssh import RemoteRunner, SSHPool, build_credential_provider
from .staging.tokens import UrlSigner
from .state.shared import open_shared_state

# Set by the command line for its worker processes when the configuration has no key.
SIGNING_KEY_ENV = "FIRECREST_SERVER_SIGNING_KEY"

# Probes only need an exit status and a line of stderr.
_PROBE_OUTPUT_LIMIT = 64 * 1024


@dataclass
class Runtime:
    settings: Settings
    http: httpx.AsyncClient
    tokens: TokenValidator
    pools: dict[str, SSHPool]  # by system name
    names: dict[str, IdNames]  # by system name
    limiter: UserLimiter  # per worker, or shared through Redis (state.redis_url)
    health: HealthMonitor
    metrics: Metrics
    signer: UrlSigner


@contextlib.asynccontextmanager
async def open_runtime(settings: Settings) -> AsyncIterator[Runtime]:
    metrics = Metrics()

    def state_error(operation: str) -> None:
        metrics.state_errors.labels(operation).inc()

    async with (
        httpx.AsyncClient(timeout=settings.auth.jwks_timeout) as http,
        open_shared_state(settings, _local_signing_key, state_error) as shared,
    ):
        pools = {
            system.name: SSHPool(
                system.name,
                system.ssh,
                build_credential_provider(system.ssh.credentials, http, shared.serials),
            )
            for system in settings.systems
        }

        def probe_runner(system: SystemConfig, user: str) -> RemoteRunner:
            # No bearer token: probes run outside any request (a key service cannot serve
            # them, and its systems' health stays unknown unless logins already exist).
            return RemoteRunner(
                pools[system.name],
                user,
                None,
                timeout=system.ssh.command_timeout,
                max_output=_PROBE_OUTPUT_LIMIT,
                request_id="health-probe",
            )

        health = HealthMonitor(settings.systems, probe_runner)
        metrics.add_pool_stats(lambda: {name: pool.stats() for name, pool in pools.items()})
        metrics.add_health(health.all_results)
        metrics.count_audit_log()
        for pool in pools.values():
            pool.start()
        health.start()
        try:
            yield Runtime(
                settings=settings,
                http=http,
                tokens=TokenValidator(settings.auth, http),
                pools=pools,
                names={system.name: IdNames() for system in settings.systems},
                limiter=shared.limiter,
                health=health,
                metrics=metrics,
                signer=shared.signer,
            )
        finally:
            await health.close()
            metrics.stop_counting()
            for pool in pools.values():
                await pool.close()


def _local_signing_key() -> str:
    # No key configured and no Redis: the key the command line made for its workers, or for an
    # app built without the command line (tests, embedding) a key for this process only.
    return os.environ.get(SIGNING_KEY_ENV) or secrets.token_urlsafe(32)
