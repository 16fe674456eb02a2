"""``client_secret``: the secret itself, or the path of a file that holds it.

aiida-firecrest 1.0 stores a path: its ``verdi computer configure`` writes a secret typed at the
prompt to ``~/.firecrest/secret_<uuid>`` and keeps that file's absolute path, and it accepts an
absolute path to an existing file as is. Its transport then reads the file when the path
exists and uses the value itself otherwise. The same rule here lets a 1.0 configuration work
unchanged: a value is a path when it is absolute and names an existing file, at the moment a
token is needed (so a rotated secret file is picked up without reconfiguring).

A secret can begin with ``/`` (base64 has it), so a missing file cannot be told from a secret:
such a value is sent as the secret, and a refusal says that it may have been a path, without
repeating the value.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import httpx

from .client.auth import TokenFetcher
from .client.errors import AuthenticationError


def names_a_file(value: str) -> bool:
    """True when ``value`` is read as a secret file's path rather than as the secret."""
    return os.path.isabs(value) and Path(value).is_file()


def looks_like_a_path(value: str) -> bool:
    return os.path.isabs(value) and not names_a_file(value)


def read_secret_file(path: str) -> str:
    try:
        secret = Path(path).read_text().strip()
    except (OSError, UnicodeDecodeError) as exc:
        # The path is not the secret (the file exists), so it may be named.
        raise AuthenticationError(
            f"Cannot read the client secret file {path}: {type(exc).__name__}"
        ) from None
    if not secret:
        raise AuthenticationError(f"The client secret file {path} is empty")
    return secret


def secret_source(value: str) -> Callable[[], str]:
    """The secret, looked up afresh each time a token is fetched."""

    def secret() -> str:
        return read_secret_file(value) if names_a_file(value) else value

    return secret


PATH_HINT = (
    " (client_secret begins with '/' but names no existing file, so it was sent as the secret "
    "itself; aiida-firecrest 1.0 configurations store the absolute path of a secret file, "
    "which must exist on this machine)"
)


def with_path_hint(fetch: TokenFetcher, value: str) -> TokenFetcher:
    """``fetch``, whose refusals add PATH_HINT when ``value`` looks like a missing file."""

    async def fetch_with_hint(http: httpx.AsyncClient) -> tuple[str, float | None]:
        try:
            return await fetch(http)
        except AuthenticationError as exc:
            if exc.status_code not in (400, 401) or not looks_like_a_path(value):
                raise
            raise AuthenticationError(str(exc) + PATH_HINT, status_code=exc.status_code) from None

    return fetch_with_hint
