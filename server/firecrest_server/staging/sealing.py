"""Keys sealed into staging URLs, for the key service credential mode.

A staging URL's requests carry no bearer token, and the key service issues keys only against
one. So when a URL is made (a request that has the caller's token) the server asks the key
service for a key that lasts as long as the URL, and puts it in the URL's signed token,
encrypted: AES-256-GCM under a key derived (HKDF-SHA256) from the server's URL signing key, with
the user and system as associated data. Any worker or replica that shares the signing key can
open it; nobody else can, so a leaked URL still grants only what the URL names (its parts, or
its one file) until it expires, and the URL expires no later than the key inside.
"""

from __future__ import annotations

import base64
import binascii
import os
import zlib

import asyncssh
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ..errors import Forbidden
from ..ssh.credentials import IssuedKey

# Domain separation: the same signing key also signs (HMAC) the staging tokens themselves.
_INFO = b"firecrest-server staging key sealing v1"
_NONCE_BYTES = 12


def _associated_data(username: str, system: str) -> bytes:
    return f"{system}\0{username}".encode()


class KeySealer:
    def __init__(self, signing_key: str | bytes) -> None:
        self.replace_key(signing_key)

    def replace_key(self, signing_key: str | bytes) -> None:
        """Seal and open under ``signing_key`` from now on (replicas converging on a shared key)."""
        secret = signing_key.encode() if isinstance(signing_key, str) else signing_key
        derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(secret)
        self._aead = AESGCM(derived)

    def seal(self, issued: IssuedKey, system: str) -> str:
        parts = [issued.key.export_private_key("openssh")]
        if issued.certificate is not None:
            parts.append(issued.certificate.export_certificate("openssh"))
        # The PEM-style text compresses by about a quarter; each part URL carries it.
        plain = zlib.compress(b"\0".join(parts), 9)
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, plain, _associated_data(issued.username, system))
        return base64.urlsafe_b64encode(nonce + sealed).rstrip(b"=").decode()

    def open(self, sealed: str, username: str, system: str) -> IssuedKey:
        """The key sealed for ``username`` on ``system``; 403 for anything else."""
        try:
            raw = base64.urlsafe_b64decode(sealed + "=" * (-len(sealed) % 4))
            nonce, body = raw[:_NONCE_BYTES], raw[_NONCE_BYTES:]
            plain = zlib.decompress(
                self._aead.decrypt(nonce, body, _associated_data(username, system))
            )
            parts = plain.split(b"\0")
            key = asyncssh.import_private_key(parts[0])
            cert = asyncssh.import_certificate(parts[1]) if len(parts) > 1 else None
        except (InvalidTag, ValueError, binascii.Error, zlib.error, asyncssh.KeyImportError):
            raise Forbidden("Invalid staging URL") from None
        return IssuedKey(username=username, key=key, certificate=cert)
