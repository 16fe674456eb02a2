"""Where the SSH login for a user comes from.

The built-in CA mints an ephemeral ed25519 key and a short-lived certificate whose only principal
is the token's username, so a token for alice can only ever log in as alice. Credentials are
fetched only when the pool opens a new connection, never per request.

What a request brings to log in with (``CallerProof``) is the caller's bearer token, which only
the key service uses, or, for a staging URL's request, which has no bearer token, the key the
key service issued when the URL was made (carried sealed in the URL, staging/sealing.py).
"""

from __future__ import annotations

import math
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

import asyncssh
import httpx

from ..config import (
    CertificateAuthorityCredentials,
    Credentials,
    KeyServiceCredentials,
    StaticKeyCredentials,
)
from ..errors import ApiError, Forbidden, ServiceUnavailable

ClientKey = tuple[asyncssh.SSHKey, asyncssh.SSHCertificate | None]


@dataclass(frozen=True)
class IssuedKey:
    """A key and certificate the key service issued for ``username`` earlier."""

    username: str
    key: asyncssh.SSHKey
    certificate: asyncssh.SSHCertificate | None


CallerProof = str | IssuedKey | None


def bearer_token(proof: CallerProof) -> str | None:
    """The caller's bearer token, if that is what the request brought (a staging URL's request
    brings an issued key instead, which neither the key service nor slurmrestd takes)."""
    return proof if isinstance(proof, str) else None


class CredentialError(ApiError):
    status_code = 500


class CredentialProvider(Protocol):
    async def client_key(self, username: str, proof: CallerProof) -> ClientKey: ...


# Where certificate serials come from. Every worker of every replica signs with the same CA, so
# a per-process counter repeats serials (sshd's logs and a KRL revoke by serial). An async
# callable, so that a shared counter (an INCR on Redis) can replace the random source where
# serials must be ordered.
SerialSource = Callable[[], Awaitable[int]]


async def random_serial() -> int:
    """A random non-zero 64-bit serial (at least 64 bits of entropy is what is asked of X.509
    serials). Any two of a million certificates share one with odds of n**2 / 2**65 ~ 3e-8."""
    return secrets.randbits(64) or 1


class CertificateAuthority:
    # Back-dated a little so a login node whose clock lags ours still accepts the certificate.
    CLOCK_SKEW = 60

    def __init__(
        self, config: CertificateAuthorityCredentials, serials: SerialSource = random_serial
    ) -> None:
        passphrase = config.ca_key_passphrase
        try:
            self._ca = asyncssh.import_private_key(
                config.ca_key.get_secret_value(),
                passphrase.get_secret_value() if passphrase else None,
            )
        except (asyncssh.KeyImportError, ValueError) as exc:
            raise CredentialError(f"cannot load the SSH CA key: {exc}") from None
        self._validity = config.validity
        self._serials = serials

    async def client_key(self, username: str, proof: CallerProof) -> ClientKey:
        key = asyncssh.generate_private_key("ssh-ed25519")
        now = int(time.time())
        serial = await self._serials()
        cert = self._ca.generate_user_certificate(
            key,
            # sshd logs the key id and serial of every login: this ties a login to a mint.
            f"firecrest-server:{username}:{now}:{serial}",
            serial=serial,
            principals=[username],
            valid_after=now - self.CLOCK_SKEW,
            valid_before=now + int(self._validity),
            permit_x11_forwarding=False,
            permit_agent_forwarding=False,
            permit_port_forwarding=False,
            permit_pty=False,
            permit_user_rc=False,
        )
        return key, cert


class KeyService:
    """FirecREST's SSHService protocol: POST the user's token, get a key and certificate back."""

    def __init__(self, config: KeyServiceCredentials, http: httpx.AsyncClient) -> None:
        self._url = config.url.rstrip("/") + "/api/v1/ssh-keys"
        self._timeout = config.timeout
        self._http = http
        self.staging_key_duration = config.staging_key_duration

    async def client_key(self, username: str, proof: CallerProof) -> ClientKey:
        if isinstance(proof, IssuedKey):
            if proof.username != username:  # a staging URL's key is for its own user only
                raise Forbidden(f"the issued key is not {username}'s")
            return proof.key, proof.certificate
        return await self.issue(username, proof, 60)

    async def issue(self, username: str, token: str | None, seconds: float) -> ClientKey:
        """A key for ``username``, asked for ``seconds`` (in whole minutes, at least one)."""
        if not token:
            raise CredentialError("the key service needs the caller's token")
        duration = f"{max(1, math.ceil(seconds / 60))}min"
        try:
            response = await self._http.post(
                self._url,
                json={"duration": duration, "username": username},
                headers={"Authorization": f"Bearer {token}"},
                timeout=self._timeout,
            )
        except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
            raise CredentialError(f"SSH key service URL unusable: {exc}") from None
        except httpx.HTTPError as exc:
            # Transient, like an unreachable login node: 503 with Retry-After, which the AiiDA
            # plugin retries. Not 408 for a timeout: to clients a 408 means "the command took
            # too long, run it as a transfer job", which needs the same missing credentials.
            raise ServiceUnavailable(
                f"SSH key service unreachable: {type(exc).__name__}", retry_after=2
            ) from None
        if response.status_code in (401, 403):
            raise Forbidden("SSH key service refused to issue a key for this user")
        if response.status_code in (502, 503, 504):
            raise ServiceUnavailable(
                f"SSH key service unavailable (it answered {response.status_code})", retry_after=2
            )
        if response.status_code != 201:
            raise CredentialError(f"SSH key service answered {response.status_code}")
        try:
            ssh_key = response.json()["sshKey"]
            key = asyncssh.import_private_key(ssh_key["privateKey"])
            cert = asyncssh.import_certificate(ssh_key["publicKey"])
        except (KeyError, TypeError, ValueError, asyncssh.KeyImportError) as exc:
            raise CredentialError(f"SSH key service sent an unusable key: {exc}") from None
        return key, cert


class StaticKeys:
    """Per-user keys from the configuration. For development only."""

    def __init__(self, config: StaticKeyCredentials) -> None:
        self._keys: dict[str, ClientKey] = {}
        for user, entry in config.keys.items():
            passphrase = entry.passphrase.get_secret_value() if entry.passphrase else None
            key = asyncssh.import_private_key(entry.private_key.get_secret_value(), passphrase)
            cert = asyncssh.import_certificate(entry.certificate) if entry.certificate else None
            self._keys[user] = (key, cert)

    async def client_key(self, username: str, proof: CallerProof) -> ClientKey:
        try:
            return self._keys[username]
        except KeyError:
            raise Forbidden(f"no SSH key is configured for user {username}") from None


def build_credential_provider(
    config: Credentials, http: httpx.AsyncClient, serials: SerialSource | None = None
) -> CredentialProvider:
    if isinstance(config, CertificateAuthorityCredentials):
        return CertificateAuthority(config, serials or random_serial)
    if isinstance(config, KeyServiceCredentials):
        return KeyService(config, http)
    return StaticKeys(config)
