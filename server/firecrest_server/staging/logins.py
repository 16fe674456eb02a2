"""How a staging URL's requests log in to the cluster, decided when the URL is made.

With the built-in CA or static keys the pool logs in as the URL's user by itself. With a key
service it cannot: the service wants the caller's bearer token, which presigned requests do not
carry. So the request that makes the URL (it has the token) asks the key service for a key that
lasts as long as the URL may, and the URL carries that key sealed; the URL then expires no
later than its key.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import asyncssh

from ..cluster import Remote
from ..ssh.credentials import (
    CredentialError,
    CredentialProvider,
    IssuedKey,
    KeyService,
    bearer_token,
)
from .sealing import KeySealer

# A key that lasts less than this is no use for a transfer: the key service is misconfigured.
MIN_KEY_SECONDS = 60


def _valid_before(cert: asyncssh.SSHCertificate | None) -> float:
    # asyncssh keeps a certificate's validity only in a private attribute (no accessor).
    value = getattr(cert, "_valid_before", None)
    return float(value) if isinstance(value, int) else float("inf")


@dataclass(frozen=True)
class StagingLogin:
    sealed_key: str | None  # None: the pool's own credentials serve the URL's requests
    ttl: float  # seconds the URL stays valid


async def staging_login(
    remote: Remote, provider: CredentialProvider, sealer: KeySealer
) -> StagingLogin:
    ttl = remote.system.data_operation.staging_url_ttl
    if not isinstance(provider, KeyService):
        return StagingLogin(None, ttl)
    asked = min(ttl, provider.staging_key_duration)
    key, cert = await provider.issue(
        remote.username, bearer_token(remote.runner.bearer_token), asked
    )
    # The service may grant less than asked (the dev service caps at 10 minutes).
    lasts = min(asked, _valid_before(cert) - time.time())
    if lasts < MIN_KEY_SECONDS:
        raise CredentialError(
            f"SSH key service issued a key valid for {int(lasts)} s; staging URLs need "
            f"at least {MIN_KEY_SECONDS} s"
        )
    issued = IssuedKey(username=remote.username, key=key, certificate=cert)
    return StagingLogin(sealer.seal(issued, remote.system.name), lasts)
