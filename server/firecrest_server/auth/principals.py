"""Which logins the server acts as: never root, never a system account.

A validly signed token (or a staging grant) names a login; before anything runs on the cluster,
and before a certificate is minted for it, ``refusal`` decides whether the server may act as that
login. It needs the login's uid without SSH: from this host's name service (``getpwnam``; at a
centre the API host reads the cluster's LDAP, so both agree) or from a token claim that the
identity provider fills from the same directory. A login the source does not know is refused by
default: the server cannot tell a user from a system account it has never heard of.

The health probes' login is chosen by the operator, not by a token, and is not checked here.
"""

from __future__ import annotations

import asyncio
import pwd
import time
from collections.abc import Callable, Mapping
from typing import Any

from ..config import PrincipalPolicyConfig
from ..errors import Forbidden

# Unmapped and overflow ids (NFS's nobody, an id that did not fit): never a real user.
_OVERFLOW_UIDS = frozenset({65534, 4294967294, 4294967295})
# Decisions remembered at most; beyond this the oldest is forgotten.
MAX_CACHED = 10_000

UidLookup = Callable[[str], int | None]


def nss_uid(username: str) -> int | None:
    """The uid this host's name service gives ``username``; None if it knows no such login."""
    try:
        return pwd.getpwnam(username).pw_uid
    except KeyError:
        return None


def refusal(config: PrincipalPolicyConfig, username: str, uid: int | None) -> str | None:
    """Why the server must not act as ``username`` (with ``uid``, None if unknown), or None."""
    if username == "root" or uid == 0:
        return "the superuser is never served"
    if username in config.deny_users:
        return "this account is not served"
    if uid is None:
        if config.unknown_users == "allow":
            return None
        return "this account is unknown to the server"
    if uid in _OVERFLOW_UIDS:
        return "this account is not served"
    if uid < config.min_uid and username not in config.allow_users:
        return "system accounts are not served"
    return None


def _claimed_uid(claims: Mapping[str, Any], name: str) -> int | None:
    value = claims.get(name)
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and value >= 0:
        return value
    if isinstance(value, str) and value.isdigit():  # some providers send every claim as text
        return int(value)
    return None


class PrincipalPolicy:
    """Applies ``refusal`` to tokens and staging grants; remembers decisions for ``cache_ttl``.

    Created in the lifespan: the cache is per process, which is harmless because every process
    reaches the same decision from the same directory.
    """

    def __init__(
        self,
        config: PrincipalPolicyConfig,
        lookup: UidLookup = nss_uid,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._config = config
        self._lookup = lookup
        self._clock = clock
        # username -> (uid, refusal reason or None, monotonic time until which it holds)
        self._decided: dict[str, tuple[int | None, str | None, float]] = {}
        self.lookups = 0  # name-service lookups made (for tests and metrics)
        # Lookups in flight, by login: shared by the requests that wait for the same one.
        self._looking_up: dict[str, asyncio.Future[tuple[int | None, str | None]]] = {}

    async def check_token(self, username: str, claims: Mapping[str, Any]) -> int | None:
        """The login's uid if the server may act as ``username``; 403 otherwise."""
        if self._config.uid_source == "claim":
            uid = _claimed_uid(claims, self._config.uid_claim or "")
            return self._decide(username, uid)
        return await self._check_nss(username)

    async def check_grant(self, username: str, uid: int | None) -> int | None:
        """As ``check_token``, for a staging grant (which carries the uid it was issued with)."""
        if self._config.uid_source == "claim":
            return self._decide(username, uid)
        return await self._check_nss(username)

    async def _check_nss(self, username: str) -> int | None:
        cached = self._decided.get(username)
        if cached is not None and self._clock() < cached[2]:
            uid, reason, _ = cached
        else:
            # Requests for a login arriving together (a burst of first requests after a start,
            # 250 per worker in benchmarks/cold_burst.py) share one lookup instead of each
            # taking a thread. The lookup is a task of its own: a caller that goes away does
            # not cancel it for the others.
            lookup = self._looking_up.get(username)
            if lookup is None:
                lookup = asyncio.ensure_future(self._look_up(username))
                self._looking_up[username] = lookup
            uid, reason = await asyncio.shield(lookup)
        if reason is not None:
            raise Forbidden(f"User {username} may not use this service: {reason}")
        return uid

    async def _look_up(self, username: str) -> tuple[int | None, str | None]:
        try:
            self.lookups += 1
            # In a thread: with LDAP behind NSS a lookup may wait on the network.
            uid = await asyncio.to_thread(self._lookup, username)
            reason = refusal(self._config, username, uid)
            if len(self._decided) >= MAX_CACHED:
                del self._decided[next(iter(self._decided))]
            self._decided[username] = (uid, reason, self._clock() + self._config.cache_ttl)
            return uid, reason
        finally:
            del self._looking_up[username]

    def _decide(self, username: str, uid: int | None) -> int | None:
        reason = refusal(self._config, username, uid)
        if reason is not None:
            raise Forbidden(f"User {username} may not use this service: {reason}")
        return uid
