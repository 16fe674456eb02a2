"""One user cannot starve another, nor make the system look down for everyone.

mallory, a stack user kept for these tests (alice's and bob's dotfiles are never touched: other
sessions run as them at the same time), attacks while bob lists his home in a loop:

(a) she holds every one of her SSH channels busy with trickling tree downloads and keeps
    calling with more requests in flight than her share;
(b) her ~/.bashrc sleeps 60 s, so every command she runs hangs;
(c) her ~/.bashrc prints junk (including the word Slurm's ``scontrol ping`` prints for a
    controller that is down) on stdout and stderr.

Each time bob gets no answer but 2xx (his P99 is printed, not asserted), and ``/status/systems``
reports the system healthy from probes that ran during the attack: the probes run as the
stack's probe account, over a pool of their own. A last test configures mallory herself as the
probe user while her channels are saturated: the probes still pass, on their own connection.

Each test runs a one-worker server of its own (own_server) with small per-user limits that
mallory can reach, probing every second. Her dotfiles are saved and restored byte for byte, and
the commands her hostile shell left sleeping are killed by process id.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import shutil
import signal
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from firecrest_dev.info import StackInfo
from firecrest_dev.own_server import own_server

from .conftest import bearer, ops

pytestmark = pytest.mark.stack

ATTACK_SECONDS = 12
# Per user: 2 connections x (3 channels - 1 for SFTP) = 4 operations on the cluster at once,
# 8 requests in flight; a wait for one of one's own channels ends after 3 + 4 s with a 429.
SSH_LIMITS = {
    "max_channels_per_connection": 3,
    "max_connections_per_user": 2,
    "connect_timeout": 3,
    "command_timeout": 4,
}
RATE_LIMIT = {"requests_per_second": 1000, "burst": 1000, "max_concurrent_requests": 8}
DOTFILES = (".bashrc", ".profile", ".bash_logout")
# "DOWN" is what the scheduler probe looks for in `scontrol ping`: a probe that ran as mallory
# would report Slurm down for everyone.
JUNK_BASHRC = (
    'echo "Slurm controller DOWN: junk from mallory\'s .bashrc"\n'
    "head -c 100000 /dev/zero | tr '\\0' x\n"
    "echo 'more junk' >&2\n"
)


def _server_overrides(probe_user: str | None) -> tuple[dict, dict]:
    system = {"probe_interval": 1, "probe_user": probe_user, "ssh": SSH_LIMITS}
    return {"rate_limit": RATE_LIMIT}, system


@pytest.fixture(scope="module")
def server(stack: StackInfo, tmp_path_factory) -> Iterator[str]:
    assert stack.probe_user, "the stack configures a probe account"
    overrides, system = _server_overrides(stack.probe_user)
    directory = tmp_path_factory.mktemp("fairness-server")
    with own_server(stack, directory, overrides=overrides, system_overrides=system) as url:
        yield url


@pytest.fixture
def mallory_home(stack: StackInfo) -> Iterator[Path]:
    """mallory's home; her dotfiles are restored afterwards exactly as they were, and what her
    hostile shell left running (sleeps of up to 60 s) is killed."""
    home = Path(stack.users["mallory"].home)
    saved = {}
    for name in DOTFILES:
        path = home / name
        if path.exists():
            info = path.stat()
            saved[name] = (path.read_bytes(), info.st_mode, info.st_uid, info.st_gid)
    try:
        yield home
    finally:
        for name in DOTFILES:
            path = home / name
            if name in saved:
                content, mode, uid, gid = saved[name]
                path.write_bytes(content)
                os.chown(path, uid, gid)
                path.chmod(mode)
            else:
                path.unlink(missing_ok=True)
        _kill_sleeps_of(pwd.getpwnam("mallory").pw_uid)


def _kill_sleeps_of(uid: int) -> None:
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if entry.stat().st_uid == uid and (entry / "comm").read_text().strip() == "sleep":
                os.kill(int(entry.name), signal.SIGKILL)


def _write_dotfile(home: Path, name: str, text: str) -> None:
    path = home / name
    user = pwd.getpwnam("mallory")
    path.write_text(text)
    os.chown(path, user.pw_uid, user.pw_gid)
    path.chmod(0o644)


@dataclass
class Answers:
    rows: list[tuple[int, float]] = field(default_factory=list)  # (status, seconds)

    def statuses(self) -> Counter[int]:
        return Counter(status for status, _ in self.rows)

    def non_2xx(self) -> int:
        return sum(1 for status, _ in self.rows if not 200 <= status < 300)

    def slowest(self) -> float:
        return max((s for _, s in self.rows), default=0.0)

    def p99(self) -> float:
        seconds = sorted(s for _, s in self.rows)
        return seconds[min(len(seconds) - 1, int(0.99 * len(seconds)))] if seconds else 0.0


async def _loop(client: httpx.AsyncClient, path: str, params: dict, stop: asyncio.Event, into):
    while not stop.is_set():
        t0 = time.perf_counter()
        try:
            response = await client.get(path, params=params)
            into.rows.append((response.status_code, time.perf_counter() - t0))
        except httpx.TransportError:
            into.rows.append((0, time.perf_counter() - t0))  # counted as non-2xx


def _client(url: str, token: str) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=32, max_keepalive_connections=32)
    return httpx.AsyncClient(base_url=url, headers=bearer(token), timeout=120, limits=limits)


async def _health(client: httpx.AsyncClient, since: float) -> list[dict]:
    """The system's services from /status/systems once every one was probed after ``since``."""
    deadline = time.monotonic() + 30
    while True:
        answer = await client.get("/status/systems")
        assert answer.status_code == 200, answer.text
        # None before the first probe; lastChecked is an ISO 8601 date, as in FirecREST v2.
        services = answer.json()["systems"][0]["servicesHealth"] or []
        checked = [datetime.fromisoformat(s["lastChecked"]).timestamp() for s in services]
        if checked and all(t > since for t in checked):
            return services
        assert time.monotonic() < deadline, f"no probe ran during the attack: {services}"
        await asyncio.sleep(0.5)


async def _attack(
    stack: StackInfo, url: str, token_for, mallory_work, *, label: str
) -> tuple[Answers, Counter[int], list[dict]]:
    """bob lists his home in a loop while ``mallory_work(client, stop, answers)`` runs; returns
    bob's answers, mallory's statuses and the health read at the end of the attack."""
    bob, mallory = Answers(), Answers()
    stop = asyncio.Event()
    async with (
        _client(url, token_for("bob")) as bob_client,
        _client(url, token_for("mallory")) as mallory_client,
    ):
        home = {"path": stack.users["bob"].home}
        assert (await bob_client.get(f"{ops(stack)}/ls", params=home)).status_code == 200
        started = time.time()
        attack = asyncio.create_task(mallory_work(mallory_client, stop, mallory))
        await asyncio.sleep(1)  # mallory's work is under way
        bob_started = time.time()
        workers = [
            asyncio.create_task(_loop(bob_client, f"{ops(stack)}/ls", home, stop, bob))
            for _ in range(2)
        ]
        await asyncio.sleep(ATTACK_SECONDS)
        # Read while she still attacks: probes that ran after bob started.
        health = await _health(bob_client, since=bob_started)
        stop.set()
        await asyncio.gather(*workers)
        await attack
    print(
        f"\n{label}: bob {len(bob.rows)} ops/ls, non-2xx {bob.non_2xx()}, "
        f"P99 {bob.p99() * 1000:.0f} ms; mallory {dict(mallory.statuses())}, slowest "
        f"{mallory.slowest():.0f} s; "
        f"attack {time.time() - started:.0f} s"
    )
    return bob, mallory.statuses(), health


def _assert_healthy(health: list[dict]) -> None:
    assert all(s["healthy"] is True for s in health), health
    assert {s["serviceType"] for s in health} >= {"ssh", "scheduler", "filesystem"}


@contextlib.contextmanager
def _big_directory(home: Path) -> Iterator[Path]:
    """A directory of mallory's whose tar stream outlasts the test (a 4 GiB sparse file)."""
    directory = home / f"fair-{uuid.uuid4().hex[:8]}"
    user = pwd.getpwnam("mallory")
    directory.mkdir()
    big = directory / "big"
    with big.open("wb") as fh:
        fh.truncate(4 << 30)
    for path in (directory, big):
        os.chown(path, user.pw_uid, user.pw_gid)
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _saturate(stack: StackInfo, directory: Path, downloads: int, callers: int):
    """mallory's work for (a): ``downloads`` tree downloads read a chunk a second, holding a
    channel each, while ``callers`` loops list her home."""

    async def work(client: httpx.AsyncClient, stop: asyncio.Event, answers: Answers) -> None:
        async def trickle() -> None:
            params = {"path": str(directory)}
            async with client.stream("GET", f"{ops(stack)}/tree", params=params) as response:
                answers.rows.append((response.status_code, 0.0))
                chunks = response.aiter_raw(16 * 1024)
                while not stop.is_set():
                    await chunks.__anext__()
                    await asyncio.sleep(1)

        trees = [asyncio.create_task(trickle()) for _ in range(downloads)]
        await asyncio.sleep(1)  # the downloads hold her channels before she calls on
        home = {"path": stack.users["mallory"].home}
        loops = [
            asyncio.create_task(_loop(client, f"{ops(stack)}/ls", home, stop, answers))
            for _ in range(callers)
        ]
        await asyncio.gather(*trees, *loops)

    return work


async def test_a_user_holding_all_her_channels_delays_only_herself(
    stack: StackInfo, server: str, token_for, mallory_home: Path
) -> None:
    with _big_directory(mallory_home) as directory:
        # 4 downloads take her 4 channels; 8 callers make 12 requests, over her 8 in flight.
        work = _saturate(stack, directory, downloads=4, callers=8)
        bob, mallory, health = await _attack(
            stack, server, token_for, work, label="(a) channels held"
        )
    assert len(bob.rows) > 0
    assert bob.non_2xx() == 0, bob.statuses()
    # Over her share she is told so (429 with Retry-After), never that the cluster is down.
    assert mallory[429] > 0, mallory
    assert set(mallory) <= {200, 429}, mallory
    _assert_healthy(health)


def _calling(stack: StackInfo, callers: int):
    """mallory's work for (b) and (c): loops of requests that run commands as her."""

    async def work(client: httpx.AsyncClient, stop: asyncio.Event, answers: Answers) -> None:
        path = f"/status/{stack.system}/userinfo"
        await asyncio.gather(*(_loop(client, path, {}, stop, answers) for _ in range(callers)))

    return work


async def test_a_hanging_bashrc_hurts_only_its_owner(
    stack: StackInfo, server: str, token_for, mallory_home: Path
) -> None:
    _write_dotfile(mallory_home, ".bashrc", "sleep 60\n")
    bob, mallory, health = await _attack(
        stack, server, token_for, _calling(stack, callers=6), label="(b) bashrc sleeps 60 s"
    )
    assert len(bob.rows) > 0
    assert bob.non_2xx() == 0, bob.statuses()
    assert sum(n for status, n in mallory.items() if status != 200) > 0, mallory  # it bit her
    _assert_healthy(health)


async def test_a_junk_printing_bashrc_hurts_only_its_owner(
    stack: StackInfo, server: str, token_for, mallory_home: Path
) -> None:
    _write_dotfile(mallory_home, ".bashrc", JUNK_BASHRC)
    bob, mallory, health = await _attack(
        stack, server, token_for, _calling(stack, callers=4), label="(c) bashrc prints junk"
    )
    assert len(bob.rows) > 0
    assert bob.non_2xx() == 0, bob.statuses()
    assert sum(mallory.values()) > 0
    _assert_healthy(health)


async def test_probes_never_use_a_callers_pool(
    stack: StackInfo, token_for, mallory_home: Path, tmp_path: Path
) -> None:
    """mallory herself is the probe user, and her channels are saturated: the probes, on a
    pool of their own, still log in and pass. (On her pool they would wait for her channels
    and fail, and the system would be reported down for everyone.)"""
    overrides, system = _server_overrides("mallory")
    with (
        own_server(stack, tmp_path, overrides=overrides, system_overrides=system) as url,
        _big_directory(mallory_home) as directory,
    ):
        work = _saturate(stack, directory, downloads=4, callers=8)
        bob, mallory, health = await _attack(
            stack, url, token_for, work, label="probe user = mallory, her channels saturated"
        )
    assert mallory[429] > 0, mallory  # her own pool was saturated
    assert bob.non_2xx() == 0, bob.statuses()
    _assert_healthy(health)


async def test_without_a_probe_user_no_caller_is_probed_as(
    stack: StackInfo, token_for, mallory_home: Path, tmp_path: Path
) -> None:
    """No probe identity: callers come and go, the system is never probed (health unknown,
    nothing refused), and a caller's hanging shell cannot matter."""
    _write_dotfile(mallory_home, ".bashrc", "sleep 60\n")
    overrides, system = _server_overrides(None)
    with own_server(stack, tmp_path, overrides=overrides, system_overrides=system) as url:
        bob, mallory, _ = Answers(), Answers(), None
        stop = asyncio.Event()
        async with (
            _client(url, token_for("bob")) as bob_client,
            _client(url, token_for("mallory")) as mallory_client,
        ):
            home = {"path": stack.users["bob"].home}
            tasks = [
                asyncio.create_task(_loop(bob_client, f"{ops(stack)}/ls", home, stop, bob)),
                asyncio.create_task(
                    _loop(mallory_client, f"/status/{stack.system}/userinfo", {}, stop, mallory)
                ),
            ]
            await asyncio.sleep(4)  # four probe intervals
            stop.set()
            await asyncio.gather(*tasks)
            live = (await bob_client.get("/status/liveness")).json()
            systems = (await bob_client.get("/status/systems")).json()["systems"]
        assert live == {"healthcheckRuns": {}, "lastUpdate": 0}
        # Nothing probed: no health entries at all (FirecREST v2's null), no probed services.
        assert systems[0]["servicesHealth"] is None
        assert systems[0]["probing"]["services"] == {}
        assert len(bob.rows) > 0
        assert bob.non_2xx() == 0, bob.statuses()
    assert "probe_user is not set" in (tmp_path / "server.log").read_text()
