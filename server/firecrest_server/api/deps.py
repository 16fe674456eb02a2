"""FastAPI dependencies: the runtime, the authenticated caller, the system they address.

All are ``async def``: FastAPI runs plain ``def`` dependencies in a thread pool, a thread hop per
dependency per request for functions that never block.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ..auth import Principal, TokenRejected
from ..auth.systems import authorized_system
from ..cluster import Remote
from ..config import SystemConfig
from ..errors import Unauthorized
from ..logs import current_request
from ..ratelimit import RateLimited
from ..runtime import Runtime

# auto_error=False: a missing header must get our 401 body with WWW-Authenticate,
# not FastAPI's own 403.
_bearer = HTTPBearer(auto_error=False, description="An access token from the site's OIDC provider")


async def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


async def get_principal(
    request: Request,
    runtime: RuntimeDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> AsyncIterator[Principal]:
    """The authenticated caller, holding one of their rate-limit slots for the whole request.

    Every authenticated route depends on this, so none can skip the per-user limits. As a
    yield dependency its exit runs after the response has been sent, so a streamed download
    keeps its slot until the last byte.
    """
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized("Missing bearer token")
    try:
        principal = await runtime.tokens.validate(credentials.credentials)
    except TokenRejected as exc:
        raise Unauthorized(exc.reason) from None
    context = current_request.get()
    if context is not None:
        # Before the policy check: a refused login is named in the access log line of its 403.
        context.user = principal.username
    # Before the rate limiter and anything else: a system account costs one cached lookup
    # and a 403, never an SSH login.
    uid = await runtime.principals.check_token(principal.username, principal.claims)
    principal = dataclasses.replace(principal, uid=uid)
    request.state.principal = principal
    # Kept for this request only, for credential providers that forward it (key service).
    request.state.bearer_token = credentials.credentials
    async with contextlib.AsyncExitStack() as held:
        try:
            await held.enter_async_context(runtime.limiter.admitted(principal.username))
        except RateLimited as exc:
            runtime.metrics.rate_limited.labels(exc.reason).inc()
            raise
        yield principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]


async def get_system(
    system_name: str, runtime: RuntimeDep, principal: PrincipalDep
) -> SystemConfig:
    system = authorized_system(runtime.settings, system_name, principal.username)
    context = current_request.get()
    if context is not None:
        context.system = system.name
    return system


SystemDep = Annotated[SystemConfig, Depends(get_system)]


async def get_remote(
    request: Request, runtime: RuntimeDep, system: SystemDep, principal: PrincipalDep
) -> Remote:
    # Fail fast while the last probe says the login node is unreachable: the request would
    # only wait for its own connect timeout and then fail anyway.
    runtime.health.ensure_available(system.name, "ssh")
    # Most filesystem operations name their path in the query; those on an unhealthy file
    # system get the same fast 503. Paths given in a body are checked by their routes.
    path = request.query_params.get("path")
    if path:
        runtime.health.ensure_path(system.name, path)
    return runtime.cluster.remote(
        system,
        principal.username,
        getattr(request.state, "bearer_token", None),
        request_id=getattr(request.state, "request_id", None),
    )


async def require_scheduler(runtime: RuntimeDep, system: SystemDep) -> None:
    """503 at once while the last probe found the system's scheduler down (compute requests
    and transfer jobs would each wait for Slurm's own connect timeouts, then fail)."""
    runtime.health.ensure_available(system.name, "scheduler")


RemoteDep = Annotated[Remote, Depends(get_remote)]
