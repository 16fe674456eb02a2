"""Where the SSH login for a user comes from.

The built-in CA mints an ephemeral ed25519 key and a short-lived certificate whose only principal
is the token's username, so a token for alice can only ever log in as alice. Credentials are
fetched only when the pool opens a new connection, never per request.
"""

from __future__ import annotations

import time
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


class CredentialError(ApiError):
    status_code = 500


class CredentialProvider(Protocol):
    async def client_key(self, username: str, token: str | None) -> ClientKey: ...


class SerialSource(Protocol):
    """Where certificate serials come from: one counter per process, or one shared by all
    replicas (``state.serials.RedisSerials``)."""

    async def next_serial(self) -> int: ...


class CountingSerials:
    def __init__(self) -> None:
        self._serial = 0

    async def next_serial(self) -> int:
        self._serial += 1
        return self._serial


class CertificateAuthority:
    # Back-dated a little so a login node whose clock lags ours still accepts the certificate.
    CLOCK_SKEW = 60

    def __init__(
        self, config: CertificateAuthorityCredentials, serials: SerialSource | None = None
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
        self._serials = serials or CountingSerials()

    async def client_key(self, username: str, token: str | None) -> ClientKey:
        key = asyncssh.generate_private_key("ssh-ed25519")
        now = int(time.time())
        cert = self._ca.generate_user_certificate(
            key,
            f"firecrest-server:{username}:{now}",
            serial=await self._serials.next_serial(),
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

    async def client_key(self, username: str, token: str | None) -> ClientKey:
        if not token:
            raise CredentialError("the key service needs the caller's token")
        try:
            response = await self._http.post(
                self._url,
                json={"duration": "1min", "username": username},
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

    async def client_key(self, username: str, token: str | None) -> ClientKey:
        try:
            return self._keys[username]
        except KeyError:
            raise Forbidden(f"no SSH key is configured for user {username}") from None


def build_credential_provider(
    config: Credentials, http: httpx.AsyncClient, serials: SerialSource | None = None
) -> CredentialProvider:
    if isinstance(config, CertificateAuthorityCredentials):
        return CertificateAuthority(config, serials)
    if isinstance(config, KeyServiceCredentials):
        return KeyService(config, http)
    return StaticKeys(config)
