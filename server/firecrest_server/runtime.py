"""Objects with state that live as long as the app: created in the lifespan, passed in by deps."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx

from .auth import TokenValidator
from .config import Settings
from .filesystem.names import IdNames
from .ssh import SSHPool, build_credential_provider


@dataclass
class Runtime:
    settings: Settings
    http: httpx.AsyncClient
    tokens: TokenValidator
    pools: dict[str, SSHPool]  # by system name
    names: dict[str, IdNames]  # by system name


@contextlib.asynccontextmanager
async def open_runtime(settings: Settings) -> AsyncIterator[Runtime]:
    async with httpx.AsyncClient(timeout=settings.auth.jwks_timeout) as http:
        pools = {
            system.name: SSHPool(
                system.name,
                system.ssh,
                build_credential_provider(system.ssh.credentials, http),
            )
            for system in settings.systems
        }
        for pool in pools.values():
            pool.start()
        try:
            yield Runtime(
                settings=settings,
                http=http,
                tokens=TokenValidator(settings.auth, http),
                pools=pools,
                names={system.name: IdNames() for system in settings.systems},
            )
        finally:
            for pool in pools.values():
                await pool.close()
