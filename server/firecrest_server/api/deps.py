"""FastAPI dependencies: the runtime, the authenticated caller, the system they address."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ..auth import Principal, TokenRejected
from ..config import SystemConfig
from ..errors import Forbidden, NotFound, Unauthorized
from ..runtime import Runtime

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
