"""What a daemon worker keeps from one transport open of a computer to the next.

AiiDA builds a new transport for every batch of transport tasks; with its default poll interval
that is about one open per calculation task. Each open used to fetch a new access token from
the identity provider, ask ``GET /status/systems`` and, for the first upload, ``GET
/status/{system}/userinfo`` (on our server an ``id`` and two ``sacctmgr`` runs, which ask
slurmdbd). None of that changes between opens of the same computer with the same settings:
the token is cached until shortly before it expires (``RefreshingToken``), the system's
capabilities and the user's name are kept ``REUSE_SECONDS``.

Kept per event loop (a token source's lock belongs to the loop that made it; the daemon has
one loop, a test session may make many) and per ``TransportSettings`` (the URL, system and
credentials: another computer or other credentials never share an entry).
"""

from __future__ import annotations

import asyncio
import time
import weakref
from dataclasses import dataclass, field
from typing import TypeVar

from .client import SystemInfo
from .client.auth import TokenSource
from .options import TransportSettings

# Long enough to span many opens, short enough that a server upgraded meanwhile (new
# capabilities or limits) is noticed within minutes.
REUSE_SECONDS = 300.0

T = TypeVar("T")


@dataclass
class _Remembered:
    value: object
    at: float


@dataclass
class ComputerReuse:
    """One computer's token source, system information and user name."""

    token: TokenSource
    _kept: dict[str, _Remembered] = field(default_factory=dict)

    def recall(self, what: str, kind: type[T]) -> T | None:
        kept = self._kept.get(what)
        if kept is None or time.monotonic() - kept.at > REUSE_SECONDS:
            return None
        return kept.value if isinstance(kept.value, kind) else None

    def remember(self, what: str, value: object) -> None:
        self._kept[what] = _Remembered(value, time.monotonic())

    def system_info(self) -> SystemInfo | None:
        return self.recall("system_info", SystemInfo)

    def username(self) -> str | None:
        return self.recall("username", str)


_BY_LOOP: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, dict[TransportSettings, ComputerReuse]
] = weakref.WeakKeyDictionary()


def reuse_for(settings: TransportSettings) -> ComputerReuse:
    """The running loop's entry for ``settings``, made on first use."""
    computers = _BY_LOOP.setdefault(asyncio.get_running_loop(), {})
    entry = computers.get(settings)
    if entry is None:
        entry = computers[settings] = ComputerReuse(settings.token_source())
    return entry
