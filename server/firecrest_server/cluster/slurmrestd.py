"""The HTTP client for slurmrestd (scheduler.connection_mode ``rest``).

One client per system, created in the lifespan; every request carries the caller's own user
name and access token (``X-SLURM-USER-NAME``, ``X-SLURM-USER-TOKEN``), which slurmrestd hands to
Slurm's auth/jwt: Slurm itself decides what the caller may do, as it does for their commands
over SSH. The server holds no Slurm credential of its own.

Transport failures are mapped here (slurmrestd unreachable: 503 with Retry-After; no answer in
``scheduler.timeout``: 408). What an answer's ``errors`` mean is up to the operation
(``rest_jobs.py``), as the SSH mode maps each program's stderr.
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass
from typing import Any

import httpx
import jwt

from ..config import SchedulerConfig
from ..errors import Forbidden, RequestTimeout, ServiceUnavailable

# Slurm 22.05's auth/jwt takes the user name from this claim of the token.
SLURM_USER_CLAIM = "sun"
# Seconds a client is told to wait when slurmrestd cannot be reached.
RETRY_AFTER = 5.0
# slurmdbd's answer to a query that matches no job (ESLURM_REST_EMPTY_RESULT): an empty list.
NOTHING_FOUND = 9003


@dataclass
class RestAnswer:
    status: int
    body: dict[str, Any]

    @property
    def errors(self) -> list[dict[str, Any]]:
        """What went wrong; an empty result of a query is not an error here."""
        errors = self.body.get("errors")
        if not isinstance(errors, list):
            return []
        return [e for e in errors if isinstance(e, dict) and e.get("error_number") != NOTHING_FOUND]

    def error_text(self) -> str:
        """Every error slurmrestd reported, in one line (as stderr would give them)."""
        parts = []
        for error in self.errors:
            text = " ".join(str(error[key]) for key in ("error", "description") if error.get(key))
            parts.append(text or f"error {error.get('error_number', error.get('error_code'))}")
        return "; ".join(parts) or f"HTTP {self.status}"


def check_token(token: str | None, username: str) -> str:
    """The caller's token, if slurmrestd can tell whose it is.

    The API server has validated it already; this only reads the claim Slurm will read, so
    that a token Slurm would refuse for want of it gets a 403 that says so, instead of
    slurmrestd's "Unspecified error" for every query."""
    if not token:
        raise Forbidden("The scheduler needs the caller's access token, and there is none")
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        raise Forbidden("The scheduler cannot read the access token") from None
    if claims.get(SLURM_USER_CLAIM) != username:
        raise Forbidden(
            f"The access token has no claim {SLURM_USER_CLAIM!r} naming user {username}: "
            "the scheduler (slurmrestd) would refuse it"
        )
    return token


class SlurmRestClient:
    """slurmrestd's REST API at ``scheduler.api_url``, version ``scheduler.api_version``."""

    def __init__(
        self, config: SchedulerConfig, *, transport: httpx.AsyncBaseTransport | None = None
    ):
        if config.api_url is None or config.api_version is None:
            raise ValueError("slurmrestd needs scheduler.api_url and scheduler.api_version")
        self.version = config.api_version
        self._http = httpx.AsyncClient(
            base_url=config.api_url,
            timeout=config.timeout,
            transport=transport,
            # Answers are small JSON documents; the pool bounds connections to slurmrestd.
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
        )

    async def close(self) -> None:
        await self._http.aclose()

    def slurm(self, path: str) -> str:
        return f"/slurm/v{self.version}/{path}"

    def slurmdb(self, path: str) -> str:
        return f"/slurmdb/v{self.version}/{path}"

    async def request(
        self,
        method: str,
        path: str,
        *,
        username: str,
        token: str | None,
        params: dict[str, str] | None = None,
        json: dict[str, Any] | None = None,
    ) -> RestAnswer:
        headers = {
            "X-SLURM-USER-NAME": username,
            "X-SLURM-USER-TOKEN": check_token(token, username),
        }
        if params:
            # slurmrestd 22.05 drops the connection on a literal comma in a query value.
            path = f"{path}?{urllib.parse.urlencode(params, quote_via=urllib.parse.quote)}"
        try:
            response = await self._http.request(method, path, headers=headers, json=json)
        except httpx.TimeoutException:
            raise RequestTimeout(
                f"The scheduler (slurmrestd) did not answer {method} {path} in time"
            ) from None
        except httpx.TransportError as exc:
            raise ServiceUnavailable(
                f"The scheduler (slurmrestd) is unreachable: {type(exc).__name__}",
                retry_after=RETRY_AFTER,
            ) from None
        try:
            body = response.json()
        except ValueError:
            body = {}
        if not isinstance(body, dict):
            body = {}
        if response.status_code in (401, 403) and not body.get("errors"):
            # rest_auth refused the request before Slurm saw it.
            raise Forbidden("The scheduler (slurmrestd) refused the access token")
        return RestAnswer(response.status_code, body)

    async def ping(self) -> str | None:
        """None when slurmrestd serves (an unauthenticated request gets its 401), else why not.

        The health probes have no user token, so this shows that slurmrestd answers; that
        slurmctld answers is shown by the SSH mode's ``scontrol ping`` as the probe user."""
        try:
            response = await self._http.get(self.slurm("ping"))
        except httpx.HTTPError as exc:
            return f"slurmrestd is unreachable: {type(exc).__name__}"
        if response.status_code in (200, 401):
            return None
        return f"slurmrestd answered HTTP {response.status_code}"
