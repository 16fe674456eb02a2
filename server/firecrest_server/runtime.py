"""Objects with state that live as long as the app: created in the lifespan, passed in by deps."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx

from .auth import TokenValidator
from .auth.principals import PrincipalPolicy
from .cluster import ClusterAccess
from .cluster.slurmrestd import SlurmRestClient
from .config import KeyServiceCredentials, Settings, SSHConfig, SystemConfig
from .draining import Drain
from .health import HealthMonitor
from .metrics import Metrics
from .ratelimit import UserLimiter
from .ssh import CredentialProvider, SSHPool, build_credential_provider
from .ssh.service_token import ClientCredentialsToken, WithServiceToken
from .staging.sealing import KeySealer
from .staging.tokens import UrlSigner
from .state.shared import open_shared_state
from .worker_env import SIGNING_KEY_ENV  # set by the command line when no key is configured

log = logging.getLogger("firecrest_server.health")


@dataclass
class Runtime:
    settings: Settings
    http: httpx.AsyncClient
    tokens: TokenValidator
    principals: PrincipalPolicy
    pools: dict[str, SSHPool]  # by system name; callers only
    probe_pools: dict[str, SSHPool]  # by system name; the health probes only
    cluster: ClusterAccess  # what requests act on the cluster through, over those pools
    limiter: UserLimiter  # per worker, or shared through Redis (state.redis_url)
    health: HealthMonitor
    metrics: Metrics
    signer: UrlSigner
    sealer: KeySealer  # staging URLs' keys in key_service mode, under the same secret
    drain: Drain


@contextlib.asynccontextmanager
async def open_runtime(settings: Settings) -> AsyncIterator[Runtime]:
    metrics = Metrics()

    def state_error(operation: str) -> None:
        metrics.state_errors.labels(operation).inc()

    async with (
        httpx.AsyncClient(timeout=settings.auth.jwks_timeout) as http,
        open_shared_state(settings, _local_signing_key, state_error) as shared,
    ):
        credentials = {
            system.name: build_credential_provider(system.ssh.credentials, http, shared.serials)
            for system in settings.systems
        }
        pools = {
            system.name: SSHPool(system.name, system.ssh, credentials[system.name])
            for system in settings.systems
        }
        probe_users = {system.name: _probe_identity(system) for system in settings.systems}
        # The probes' own pool: a caller's busy channels, slow shell start-up or closed
        # connections can neither delay a probe nor make it fail.
        probe_pools = {
            system.name: SSHPool(
                system.name,
                _probe_ssh(system),
                _probe_credentials(system, credentials[system.name], http),
            )
            for system in settings.systems
            if probe_users[system.name] is not None
        }

        # By system name, for the systems whose scheduler.connection_mode is rest.
        slurmrestd = {
            system.name: SlurmRestClient(system.scheduler)
            for system in settings.systems
            if system.scheduler.connection_mode == "rest"
        }
        cluster = ClusterAccess(
            settings.systems, pools, probe_pools, slurmrestd, observe=metrics.observe_command
        )
        health = HealthMonitor(
            settings.systems,
            cluster.probe_runner,
            probe_users=probe_users,
            rest_pings={name: client.ping for name, client in slurmrestd.items()},
        )
        metrics.add_pool_stats(lambda: {name: pool.stats() for name, pool in pools.items()})
        metrics.add_health(health.all_results)
        for pool in [*pools.values(), *probe_pools.values()]:
            pool.start()
        health.start()
        drain = Drain(settings.server.drain_seconds)
        tokens = TokenValidator(settings.auth, http)
        if tokens.discovery is not None:
            # Ahead of the first request: the OpenAPI document's token URL comes from it, and
            # the first token need not wait. A failure is logged, not fatal: the provider may
            # be down at start, and the next token that needs keys tries again.
            await tokens.discovery.metadata()
        await tokens.prefetch_keys()
        drain.install(asyncio.get_running_loop())
        try:
            yield Runtime(
                settings=settings,
                http=http,
                tokens=tokens,
                principals=PrincipalPolicy(settings.auth.principals),
                pools=pools,
                probe_pools=probe_pools,
                cluster=cluster,
                limiter=shared.limiter,
                health=health,
                metrics=metrics,
                signer=shared.signer,
                sealer=shared.sealer,
                drain=drain,
            )
        finally:
            drain.uninstall()
            await health.close()
            for pool in [*pools.values(), *probe_pools.values()]:
                await pool.close()
            for client in slurmrestd.values():
                await client.close()


def _probe_identity(system: SystemConfig) -> str | None:
    """The login a system's probes run as, or None (with a warning) when there is none.

    Never a caller: without an identity of its own the server does not probe, and the
    system's health stays unknown, which refuses nothing."""
    if system.probe_user is None:
        log.warning(
            "systems.%s.probe_user is not set: the system is not probed and its health "
            "stays unknown (no request is refused for health)",
            system.name,
            extra={"system": system.name},
        )
        return None
    credentials = system.ssh.credentials
    if isinstance(credentials, KeyServiceCredentials) and credentials.probe_token is None:
        # The key service issues keys only for a bearer token of the same user, and probes
        # run outside any request.
        log.warning(
            "systems.%s.probe_user is ignored: key_service credentials need a token for the "
            "probe user (ssh.credentials.probe_token is not set); the system's health stays "
            "unknown",
            system.name,
            extra={"system": system.name},
        )
        return None
    return system.probe_user


def _probe_credentials(
    system: SystemConfig, callers: CredentialProvider, http: httpx.AsyncClient
) -> CredentialProvider:
    """The callers' provider (the CA mints for any login), or, for a key service, the same
    provider presenting the probe user's own service-account token."""
    credentials = system.ssh.credentials
    if isinstance(credentials, KeyServiceCredentials) and credentials.probe_token is not None:
        return WithServiceToken(callers, ClientCredentialsToken(credentials.probe_token, http))
    return callers


def _probe_ssh(system: SystemConfig) -> SSHConfig:
    """The probes' SSH limits: one connection, with a channel for each probe of one run (the
    SSH probe, the scheduler, each file system) and its SFTP slot: they never queue behind
    each other, and cost the login node one login per system however many users there are."""
    channels = 1 + 2 + len(system.file_systems)
    return system.ssh.model_copy(
        update={
            "max_connections_per_user": 1,
            "max_channels_per_connection": min(system.ssh.max_channels_per_connection, channels),
        }
    )


def _local_signing_key() -> str:
    # No key configured and no Redis: the key the command line made for its workers, or for an
    # app built without the command line (tests, embedding) a key for this process only.
    return os.environ.get(SIGNING_KEY_ENV) or secrets.token_urlsafe(32)
