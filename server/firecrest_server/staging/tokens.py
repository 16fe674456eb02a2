"""Signed, expiring capabilities embedded in staging URLs (JWT, HS256, server-held key).

A staging URL is all a client presents (presigned requests carry no bearer token), so the token
names everything the request may touch: user, system, kind, and the exact staging paths.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import jwt

from ..errors import Forbidden

_ALGORITHM = "HS256"
_AUDIENCE = "firecrest-server-staging"


@dataclass(frozen=True)
class StagingGrant:
    kind: Literal["upload", "download"]
    user: str
    system: str
    path: str  # upload: the staging directory; download: the file to read
    size: int
    part_size: int = 0
    parts: int = 0
    # key_service mode: the login for this URL's requests, sealed (sealing.py).
    sealed_key: str | None = None
    uid: int | None = None  # the login's uid when the grant was issued (principal policy)


class UrlSigner:
    def __init__(self, key: str | bytes, clock: Callable[[], float] = time.time) -> None:
        self.replace_key(key)
        self._clock = clock

    def replace_key(self, key: str | bytes) -> None:
        """Sign and verify with ``key`` from now on (replicas converging on a shared key)."""
        encoded = key.encode() if isinstance(key, str) else key
        if len(encoded) < 32:
            raise ValueError("the URL signing key must be at least 32 bytes")
        self._key = encoded

    def sign(self, grant: StagingGrant, ttl: float) -> str:
        now = int(self._clock())
        claims = {
            "aud": _AUDIENCE,
            "iat": now,
            "exp": now + int(ttl),
            "jti": secrets.token_urlsafe(12),  # unguessable even for identical grants
            "k": grant.kind,
            "u": grant.user,
            "s": grant.system,
            "p": grant.path,
            "n": grant.size,
            "ps": grant.part_size,
            "pc": grant.parts,
            "id": grant.uid,
        }
        if grant.sealed_key is not None:
            claims["c"] = grant.sealed_key
        return jwt.encode(claims, self._key, algorithm=_ALGORITHM)

    def verify(self, token: str, kind: str) -> StagingGrant:
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=[_ALGORITHM],
                audience=_AUDIENCE,
                options={"require": ["exp", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            raise Forbidden("The staging URL has expired") from None
        except jwt.PyJWTError:
            raise Forbidden("Invalid staging URL") from None
        if claims.get("k") != kind:
            raise Forbidden("Invalid staging URL")
        return StagingGrant(
            kind=claims["k"],
            user=claims["u"],
            system=claims["s"],
            path=claims["p"],
            size=claims["n"],
            part_size=claims["ps"],
            parts=claims["pc"],
            sealed_key=claims.get("c"),
            uid=claims.get("id") if isinstance(claims.get("id"), int) else None,
        )
