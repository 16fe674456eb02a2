"""What a staging URL carries to log in with, per credential mode (key service faked with
httpx's MockTransport; the real protocol is in tests/server/test_credential_modes.py)."""

from __future__ import annotations

import json
import time
from types import SimpleNamespace

import asyncssh
import httpx
import pytest

from firecrest_server.config import DataOperation, KeyServiceCredentials
from firecrest_server.ssh.credentials import CertificateAuthority, CredentialError, KeyService
from firecrest_server.staging.logins import staging_login
from firecrest_server.staging.sealing import KeySealer

SEALER = KeySealer("s" * 32)


def _remote(url_ttl: float, token: str | None = "TOKEN"):  # noqa: S107 - a fake
    system = SimpleNamespace(name="cluster", data_operation=DataOperation(staging_url_ttl=url_ttl))
    return SimpleNamespace(
        system=system, username="alice", runner=SimpleNamespace(bearer_token=token)
    )


def _key_service(grants_seconds: int, asked: list[dict]) -> KeyService:
    def answer(request: httpx.Request) -> httpx.Response:
        asked.append(json.loads(request.content))
        ca = asyncssh.generate_private_key("ssh-ed25519")
        key = asyncssh.generate_private_key("ssh-ed25519")
        now = int(time.time())
        cert = ca.generate_user_certificate(
            key, "t", principals=["alice"], valid_after=now - 60, valid_before=now + grants_seconds
        )
        body = {
            "sshKey": {
                "privateKey": key.export_private_key().decode(),
                "publicKey": cert.export_certificate().decode(),
            }
        }
        return httpx.Response(201, json=body)

    config = KeyServiceCredentials(
        type="key_service", url="http://keys.example", staging_key_duration=3600
    )
    return KeyService(config, httpx.AsyncClient(transport=httpx.MockTransport(answer)))


async def test_a_built_in_ca_needs_nothing_carried() -> None:
    ca = asyncssh.generate_private_key("ssh-ed25519").export_private_key().decode()
    provider = CertificateAuthority(
        SimpleNamespace(ca_key=_Secret(ca), ca_key_passphrase=None, validity=300)
    )
    login = await staging_login(_remote(86400), provider, SEALER)
    assert (login.sealed_key, login.ttl) == (None, 86400)


async def test_a_key_service_key_is_sealed_and_the_url_ends_with_it() -> None:
    asked: list[dict] = []
    login = await staging_login(_remote(86400), _key_service(600, asked), SEALER)
    # Asked for as long as the configuration allows (3600 s, not the URL's 24 h), in minutes...
    assert asked == [{"duration": "60min", "username": "alice"}]
    # ...granted 600 s: the URL lasts no longer than the key inside it.
    assert 590 <= login.ttl <= 600
    assert login.sealed_key is not None
    opened = SEALER.open(login.sealed_key, "alice", "cluster")
    assert opened.certificate is not None
    assert opened.certificate.principals == ["alice"]


async def test_a_short_url_asks_for_a_short_key() -> None:
    asked: list[dict] = []
    login = await staging_login(_remote(300), _key_service(600, asked), SEALER)
    assert asked[0]["duration"] == "5min"
    assert login.ttl == 300


async def test_a_key_too_short_for_a_transfer_is_an_error() -> None:
    with pytest.raises(CredentialError, match="valid for"):
        await staging_login(_remote(86400), _key_service(30, []), SEALER)


async def test_without_the_callers_token_nothing_is_asked() -> None:
    asked: list[dict] = []
    with pytest.raises(CredentialError, match="token"):
        await staging_login(_remote(86400, token=None), _key_service(600, asked), SEALER)
    assert asked == []


class _Secret:
    def __init__(self, value: str) -> None:
        self._value = value

    def get_secret_value(self) -> str:
        return self._value
