"""FastAPI dependencies: the runtime, the authenticated caller, the system they address."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ..auth import Principal, TokenRejected
from ..config import SystemConfig
from ..errors import Forbidden, NotFound, Unauthorized
from ..remote import Remote
from ..runtime import Runtime
from ..ssh import RemoteRunner

# auto_error=False: a missing header must get our 401 body with WWW-Authenticate,
# not FastAPI's own 403.
_bearer = HTTPBearer(auto_error=False, description="An access token from the site's OIDC provider")


def get_runtime(request: Request) -> Runtime:
    return request.app.state.runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


async def get_principal(
    request: Request,
    runtime: RuntimeDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized("Missing bearer token")
    try:
        principal = await runtime.tokens.validate(credentials.credentials)
    except TokenRejected as exc:
        raise Unauthorized(exc.reason) from None
    request.state.principal = principal
    # Kept for this request only, for credential providers that forward it (key service).
    request.state.bearer_token = credentials.credentials
    return principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def get_system(system_name: str, runtime: RuntimeDep, principal: PrincipalDep) -> SystemConfig:
    system = runtime.settings.system(system_name)
    if system is None:
        raise NotFound(f"System not found: {system_name}")
    if system.allowed_users is not None and principal.username not in system.allowed_users:
        raise Forbidden(f"User {principal.username} may not use system {system.name}")
    return system


SystemDep = Annotated[SystemConfig, Depends(get_system)]


def get_remote(
    request: Request, runtime: RuntimeDep, system: SystemDep, principal: PrincipalDep
) -> Remote:
    runner = RemoteRunner(
        runtime.pools[system.name],
        principal.username,
        getattr(request.state, "bearer_token", None),
        timeout=system.ssh.command_timeout,
        max_output=system.ssh.max_output_bytes,
        request_id=getattr(request.state, "request_id", None),
    )
    return Remote(system=system, runner=runner, names=runtime.names[system.name])


RemoteDep = Annotated[Remote, Depends(get_remote)]
