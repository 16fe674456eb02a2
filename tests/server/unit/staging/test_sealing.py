"""Keys sealed into staging URLs open only for their own user, system and server key."""

from __future__ import annotations

import asyncssh
import pytest

from firecrest_server.errors import Forbidden
from firecrest_server.ssh.credentials import IssuedKey
from firecrest_server.staging.sealing import KeySealer

SECRET = "s" * 32


def _issued(user: str = "alice") -> IssuedKey:
    ca = asyncssh.generate_private_key("ssh-ed25519")
    key = asyncssh.generate_private_key("ssh-ed25519")
    cert = ca.generate_user_certificate(key, "test", principals=[user])
    return IssuedKey(username=user, key=key, certificate=cert)


def test_a_sealed_key_opens_to_the_same_key_and_certificate() -> None:
    issued = _issued()
    sealed = KeySealer(SECRET).seal(issued, "cluster")
    opened = KeySealer(SECRET).open(sealed, "alice", "cluster")  # another worker, same secret
    assert opened.username == "alice"
    assert opened.key.public_data == issued.key.public_data
    assert opened.certificate is not None
    assert issued.certificate is not None
    assert opened.certificate.public_data == issued.certificate.public_data
    # URL-safe, and small enough for each part URL to carry (an ed25519 key and certificate).
    assert sealed.replace("-", "").replace("_", "").isalnum()
    assert len(sealed) < 1200


def test_the_key_is_not_readable_in_the_url() -> None:
    issued = _issued()
    sealed = KeySealer(SECRET).seal(issued, "cluster")
    public = issued.key.export_public_key("openssh").split()[1].decode()
    assert public[:24] not in sealed
    assert KeySealer(SECRET).seal(issued, "cluster") != sealed  # a fresh nonce each time


@pytest.mark.parametrize(
    ("secret", "user", "system"),
    [
        ("t" * 32, "alice", "cluster"),  # another server's key
        (SECRET, "bob", "cluster"),  # moved to another user's grant
        (SECRET, "alice", "other"),  # or to another system
    ],
)
def test_it_opens_for_nothing_else(secret: str, user: str, system: str) -> None:
    sealed = KeySealer(SECRET).seal(_issued(), "cluster")
    with pytest.raises(Forbidden):
        KeySealer(secret).open(sealed, user, system)


def test_tampered_or_garbage_seals_are_refused() -> None:
    sealed = KeySealer(SECRET).seal(_issued(), "cluster")
    flipped = sealed[:-5] + ("A" if sealed[-5] != "A" else "B") + sealed[-4:]
    for bad in (flipped, "", "!!!", sealed[:20]):
        with pytest.raises(Forbidden):
            KeySealer(SECRET).open(bad, "alice", "cluster")


def test_an_rsa_key_fits_in_a_staging_url() -> None:
    from firecrest_server.api.routes.staging import MAX_TOKEN
    from firecrest_server.staging.tokens import StagingGrant, UrlSigner

    ca = asyncssh.generate_private_key("ssh-ed25519")
    key = asyncssh.generate_private_key("ssh-rsa", key_size=3072)
    cert = ca.generate_user_certificate(key, "test", principals=["alice"])
    sealed = KeySealer(SECRET).seal(IssuedKey("alice", key, cert), "cluster")
    grant = StagingGrant(
        "upload", "alice", "cluster", "/home/alice/" + "x" * 60, 1, sealed_key=sealed
    )
    token = UrlSigner(SECRET).sign(grant, 600)
    assert len(token) < MAX_TOKEN
    assert UrlSigner(SECRET).verify(token, "upload").sealed_key == sealed
    assert KeySealer(SECRET).open(sealed, "alice", "cluster").key.public_data == key.public_data
