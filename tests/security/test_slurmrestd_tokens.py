"""Tokens against slurmrestd (rest mode): Slurm itself refuses what is not the caller's.

slurmrestd (Slurm 22.05, auth/jwt with the provider's JWKS) is asked directly with tokens
the API server would never forward, and the API server in rest mode with a token whose Slurm
user differs from its own username.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from firecrest_dev.info import StackInfo
from firecrest_dev.own_server import own_server

from .conftest import forge

pytestmark = pytest.mark.stack


def _jobs(stack: StackInfo, user: str, token: str) -> tuple[int, dict]:
    response = httpx.get(
        f"{stack.slurmrestd_url}/slurm/v{stack.slurmrestd_api_version}/jobs",
        headers={"X-SLURM-USER-NAME": user, "X-SLURM-USER-TOKEN": token},
        timeout=30,
    )
    return response.status_code, response.json() if response.content else {}


def _refused(stack: StackInfo, user: str, token: str) -> bool:
    status, body = _jobs(stack, user, token)
    return status != 200 and bool(body.get("errors")) and not body.get("jobs")


def test_the_callers_own_token_lists_jobs(stack: StackInfo, token_for) -> None:
    status, body = _jobs(stack, "alice", token_for("alice"))
    assert status == 200
    assert body["errors"] == []


def test_another_users_token_is_refused(stack: StackInfo, token_for) -> None:
    assert _refused(stack, "alice", token_for("bob"))


def test_a_token_signed_by_a_foreign_key_is_refused(stack: StackInfo, provider_kid) -> None:
    foreign = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = int(time.time())
    token = jwt.encode(
        {"sun": "alice", "iat": now, "exp": now + 300},
        foreign,
        algorithm="RS256",
        headers={"kid": provider_kid, "typ": "JWT"},
    )
    assert _refused(stack, "alice", token)


def test_an_expired_token_is_refused(stack: StackInfo, provider_kid) -> None:
    now = int(time.time())
    claims = {"sun": "alice", "iat": now - 900, "exp": now - 600}
    token = forge(stack, claims, typ="JWT", kid=provider_kid)
    assert _refused(stack, "alice", token)


def test_a_valid_provider_token_is_accepted_as_a_control(stack: StackInfo, provider_kid) -> None:
    # The same forging path as above, unbroken: the refusals are about what they change.
    token = forge(stack, {"sun": "alice"}, typ="JWT", kid=provider_kid)
    assert not _refused(stack, "alice", token)


@pytest.fixture(scope="module")
def rest_server(stack: StackInfo, tmp_path_factory) -> Iterator[str]:
    rest = {
        "scheduler": {
            "connection_mode": "rest",
            "api_url": stack.slurmrestd_url,
            "api_version": stack.slurmrestd_api_version,
        }
    }
    with own_server(stack, tmp_path_factory.mktemp("rest-tokens"), system_overrides=rest) as url:
        yield url


@pytest.mark.parametrize("sun", ["bob", None])
def test_the_api_never_forwards_a_token_naming_another_slurm_user(
    stack: StackInfo, rest_server: str, sun: str | None
) -> None:
    # Accepted by the API server as alice's (preferred_username), but Slurm would act as bob,
    # or would not know whom: 403 before slurmrestd is asked.
    token = forge(stack, {"preferred_username": "alice", "sun": sun}, typ="JWT")
    response = httpx.get(
        f"{rest_server}/compute/{stack.system}/jobs",
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    assert response.status_code == 403, response.text
    assert "sun" in response.json()["message"]


def test_slurm_does_not_check_audience_or_issuer(stack: StackInfo, provider_kid) -> None:
    # A known gap of Slurm 22.05's auth/jwt (signature, kid and exp only), recorded here so a
    # change is noticed: any token of the provider with a `sun` claim is accepted, whatever
    # service it was issued for. Hence slurmrestd listens on loopback or a private network
    # that only the API server reaches (docs/deployment.md).
    token = forge(
        stack,
        {"sun": "alice", "aud": "some-other-service", "iss": "https://elsewhere"},
        typ="JWT",
        kid=provider_kid,
    )
    assert not _refused(stack, "alice", token)
