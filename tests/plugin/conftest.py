"""Fixtures for the AiiDA plugin: a real AiiDA profile, and a computer on the real stack.

aiida-core's fixtures are imported here rather than listed in ``pytest_plugins`` (pytest allows
that only in the top-level conftest), so their autouse profile applies to the plugin tests only.
The profile is ``core.sqlite_dos`` without a broker; AIIDA_PATH already points at a temporary
directory (tests/conftest.py).

"Remote" files live in the test users' homes on this machine: tests create them through the
transport (alice's home is 0700 and hers) and, running as root, may check them on disk.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import pwd
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiida.tools.pytest_fixtures import (  # noqa: F401  (fixtures, used by name)
    aiida_config,
    aiida_config_factory,
    aiida_profile,
    aiida_profile_factory,
)

from firecrest_dev.aiida_env import computer_settings
from firecrest_dev.info import StackInfo

USER = "alice"


def scheduler_type() -> str:
    """``firecrest`` once it can be instantiated; until then ``core.direct`` (which needs no
    connection to be stored; transport tests never use the scheduler)."""
    from aiida.plugins import SchedulerFactory

    try:
        SchedulerFactory("firecrest")()
    except TypeError:
        return "core.direct"
    return "firecrest"


@pytest.fixture
def make_computer(stack: StackInfo) -> Callable[..., Any]:
    """make_computer(**overrides) -> a stored Computer with transport `firecrest`, configured
    for alice (overrides change the configuration)."""
    from aiida import orm

    def make(user: str = USER, **overrides: Any) -> orm.Computer:
        computer = orm.Computer(
            label=f"firecrest-{uuid.uuid4().hex[:8]}",
            hostname=stack.system,
            transport_type="firecrest",
            scheduler_type=scheduler_type(),
            workdir=f"{stack.users[user].home}/aiida/",
        ).store()
        computer.configure(**computer_settings(stack, user, **overrides))
        return computer

    return make


@contextlib.asynccontextmanager
async def open_transport(computer: Any, *, plain: bool = False) -> AsyncIterator[Any]:
    """An open FirecrestTransport, built the way the engine builds it. ``plain``: ignore the
    server's extensions, as against a plain FirecREST (all requests still real)."""
    instance = computer.get_transport()
    await instance.open_async()
    if plain:
        info = await instance.fs.info()
        instance.fs._info = dataclasses.replace(info, capabilities=frozenset())
    try:
        yield instance
    finally:
        await instance.close_async()


@pytest.fixture
async def transport(make_computer: Callable[..., Any]) -> AsyncIterator[Any]:
    """An open FirecrestTransport for alice."""
    async with open_transport(make_computer()) as instance:
        yield instance


@pytest.fixture
async def remote_dir(transport: Any, stack: StackInfo) -> AsyncIterator[str]:
    """A fresh directory in alice's home, made through the transport and removed afterwards."""
    path = f"{stack.users[USER].home}/test-{uuid.uuid4().hex[:12]}"
    await transport.mkdir_async(path)
    try:
        yield path
    finally:
        await transport.rmtree_async(path)


def seed(path: str | Path, text: str | bytes = "", user: str = USER) -> Path:
    """Put a file on the "remote" directly on disk (faster than the API, and independent of
    it), owned by ``user`` as if they had written it, parents included."""
    path = Path(os.path.normpath(path))
    account = pwd.getpwnam(user)
    missing = [p for p in reversed(path.parents) if not p.exists()]
    for directory in missing:
        directory.mkdir()
        os.chown(directory, account.pw_uid, account.pw_gid)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    os.chown(path, account.pw_uid, account.pw_gid)
    return path


@pytest.fixture
async def requests_made(transport: Any) -> list[str]:
    """ "METHOD /path" of every request the transport sends from now on (system info, which a
    transport asks once, is fetched beforehand)."""
    await transport.fs.info()
    made: list[str] = []

    async def record(request: httpx.Request) -> None:
        made.append(f"{request.method} {request.url.path}")

    transport.client.session.http.event_hooks["request"].append(record)
    return made
