"""Steady request load through the balancer while a test breaks replicas, with a tally."""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from dataclasses import dataclass, field

import httpx


@dataclass
class Tally:
    ok: int = 0
    # What each failed request got: an HTTP status, or the name of the transport error.
    failures: Counter[str] = field(default_factory=Counter)

    @property
    def failed(self) -> int:
        return sum(self.failures.values())

    def __str__(self) -> str:
        detail = ", ".join(f"{what}: {n}" for what, n in sorted(self.failures.items()))
        return f"{self.ok + self.failed} requests, {self.failed} failed" + (
            f" ({detail})" if detail else ""
        )


class Load:
    """``gets`` clients listing a directory (an SSH round trip each) and ``posts`` clients
    making directories in it (not idempotent: never retried by the balancer), each sending
    its next request when the last one is answered, until ``stop``."""

    def __init__(self, url: str, system: str, token: str, directory: str) -> None:
        self.url, self.system, self.directory = url, system, directory
        self.headers = {"Authorization": f"Bearer {token}"}
        self.get, self.post = Tally(), Tally()
        self._names = itertools.count()
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task] = []

    def start(self, gets: int = 3, posts: int = 2) -> None:
        self._tasks = [asyncio.create_task(self._client("GET")) for _ in range(gets)]
        self._tasks += [asyncio.create_task(self._client("POST")) for _ in range(posts)]

    async def stop(self) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks)

    def snapshot(self) -> tuple[int, int]:
        return self.get.ok + self.get.failed, self.post.ok + self.post.failed

    async def _client(self, method: str) -> None:
        tally = self.get if method == "GET" else self.post
        base = f"{self.url}/filesystem/{self.system}/ops"
        # One connection per client, kept alive: the balancer's side is what replicas break.
        async with httpx.AsyncClient(headers=self.headers, timeout=60) as http:
            while not self._stop.is_set():
                try:
                    if method == "GET":
                        response = await http.get(f"{base}/ls", params={"path": self.directory})
                    else:
                        path = f"{self.directory}/d{next(self._names)}"
                        response = await http.post(f"{base}/mkdir", json={"path": path})
                except httpx.HTTPError as exc:
                    tally.failures[_kind(exc)] += 1
                    continue
                if response.is_success:
                    tally.ok += 1
                else:
                    tally.failures[str(response.status_code)] += 1


def _kind(exc: httpx.HTTPError) -> str:
    # The balancer closed a kept-alive client connection without an answer (HAProxy does so
    # when the replica died before answering, as a server closing an idle connection would):
    # the request may have acted, and only the client knows whether repeating it is safe.
    if isinstance(exc, httpx.RemoteProtocolError) and "without sending a response" in str(exc):
        return "closed without a response"
    return type(exc).__name__
