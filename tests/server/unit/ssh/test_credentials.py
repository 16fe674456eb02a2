"""How the key service's answers become API errors (its HTTP side faked with httpx's
MockTransport; the real protocol runs against dev/key_service.py in
tests/server/test_credential_modes.py)."""

from __future__ import annotations

import subprocess

import asyncssh
import httpx
import pytest

from firecrest_server.config import CertificateAuthorityCredentials, KeyServiceCredentials
from firecrest_server.errors import Forbidden, ServiceUnavailable
from firecrest_server.ssh.credentials import (
    CertificateAuthority,
    CredentialError,
    IssuedKey,
    KeyService,
    random_serial,
)


def _service(handler) -> KeyService:
    config = KeyServiceCredentials(type="key_service", url="http://keys.example/")
    return KeyService(config, httpx.AsyncClient(transport=httpx.MockTransport(handler)))


def _issued() -> dict:
    ca = asyncssh.generate_private_key("ssh-ed25519")
    key = asyncssh.generate_private_key("ssh-ed25519")
    cert = ca.generate_user_certificate(key, "test", principals=["alice"])
    return {
        "sshKey": {
            "privateKey": key.export_private_key().decode(),
            "publicKey": cert.export_certificate().decode(),
        }
    }


async def test_a_key_comes_back_for_the_token_and_user_asked() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(201, json=_issued())

    key, cert = await _service(answer).client_key("alice", "TOKEN")
    assert cert is not None
    assert cert.principals == ["alice"]
    assert key.public_data == cert.key.public_data
    (request,) = seen
    assert str(request.url) == "http://keys.example/api/v1/ssh-keys"
    assert request.headers["Authorization"] == "Bearer TOKEN"
    assert b'"username":"alice"' in request.content.replace(b" ", b"")


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (401, Forbidden),
        (403, Forbidden),
        (502, ServiceUnavailable),
        (503, ServiceUnavailable),
        (504, ServiceUnavailable),
        (500, CredentialError),
        (200, CredentialError),  # FirecREST's protocol answers 201
    ],
)
async def test_answers_other_than_a_key_map_to_errors(status: int, error: type) -> None:
    with pytest.raises(error) as raised:
        await _service(lambda _request: httpx.Response(status, json={})).client_key("alice", "T")
    if error is ServiceUnavailable:
        assert int(raised.value.headers["Retry-After"]) >= 1


async def test_unusable_keys_unreachable_services_and_timeouts() -> None:
    garbage = {"sshKey": {"privateKey": "not a key", "publicKey": "not a cert"}}
    with pytest.raises(CredentialError, match="unusable key"):
        await _service(lambda _r: httpx.Response(201, json=garbage)).client_key("alice", "T")

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with pytest.raises(ServiceUnavailable, match="unreachable"):
        await _service(refuse).client_key("alice", "T")

    def hang(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("no answer", request=request)

    with pytest.raises(ServiceUnavailable, match="unreachable"):
        await _service(hang).client_key("alice", "T")

    def misconfigured(request: httpx.Request) -> httpx.Response:
        raise httpx.UnsupportedProtocol("no scheme", request=request)

    with pytest.raises(CredentialError, match="URL unusable"):
        await _service(misconfigured).client_key("alice", "T")
    with pytest.raises(CredentialError, match="token"):
        await _service(lambda _r: httpx.Response(201, json=_issued())).client_key("alice", None)


async def test_an_issued_key_logs_in_its_own_user_only_without_asking_again() -> None:
    asked: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        asked.append(request)
        return httpx.Response(201, json=_issued())

    key = asyncssh.generate_private_key("ssh-ed25519")
    issued = IssuedKey(username="alice", key=key, certificate=None)
    assert await _service(answer).client_key("alice", issued) == (key, None)
    with pytest.raises(Forbidden):
        await _service(answer).client_key("bob", issued)
    assert asked == []


def _ca_config(validity: float = 60) -> CertificateAuthorityCredentials:
    ca = asyncssh.generate_private_key("ssh-ed25519").export_private_key().decode()
    return CertificateAuthorityCredentials(type="ca", ca_key=ca, validity=validity)


def _serial(cert: asyncssh.SSHCertificate) -> int:
    """The serial as sshd reads it: ed25519 certificates are string type, string nonce,
    string public key, uint64 serial (PROTOCOL.certkeys)."""
    data, offset = cert.public_data, 0
    for _ in range(3):
        offset += 4 + int.from_bytes(data[offset : offset + 4], "big")
    return int.from_bytes(data[offset : offset + 8], "big")


def cert_key_id(cert: asyncssh.SSHCertificate) -> str:
    listing = subprocess.run(
        ["ssh-keygen", "-L", "-f", "/dev/stdin"],
        input=cert.export_certificate(),
        capture_output=True,
        check=True,
    ).stdout.decode()
    return next(line for line in listing.splitlines() if "Key ID" in line).split('"')[1]


async def test_random_serials_are_64_bit_non_zero_and_distinct() -> None:
    serials = [await random_serial() for _ in range(100_000)]
    assert len(set(serials)) == len(serials)
    assert all(0 < s < 2**64 for s in serials)
    assert max(serials) >= 2**60  # uses the whole width, not a small counter


async def test_certificates_take_serials_from_the_seam() -> None:
    counter = iter(range(41, 100))

    async def next_serial() -> int:  # as a shared counter would hand them out
        return next(counter)

    ca = CertificateAuthority(_ca_config(), serials=next_serial)
    _, first = await ca.client_key("alice", None)
    _, second = await ca.client_key("alice", None)
    assert (_serial(first), _serial(second)) == (41, 42)
    assert first.principals == ["alice"]
    assert cert_key_id(first).endswith(":41")


async def test_two_authorities_like_two_workers_do_not_repeat_serials() -> None:
    config = _ca_config()
    workers = [CertificateAuthority(config), CertificateAuthority(config)]
    serials = [_serial((await w.client_key("alice", None))[1]) for w in workers for _ in range(50)]
    assert len(set(serials)) == 100
