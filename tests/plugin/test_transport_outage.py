"""The API cannot be reached: where AiiDA's engine would read an ``OSError`` as an answer about
the files, the transport raises ``FirecrestUnavailableError`` (not an ``OSError``) instead.

The engine takes an ``OSError`` from ``mkdir`` as "the directory exists" (and moves the
calculation's directory to lost+found), and one from ``compress``/``extract``/``copy`` while
stashing or unstashing as "cannot be done" (logged and skipped: the calculation finishes without
its stash). With any other exception it retries the step with its exponential backoff, which is
what a server that is down for a while needs (tests/e2e/test_daemon.py kills it mid-run).

The server here is a closed port on this machine: a real refused connection, after the client's
own retries (a few seconds).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from aiida_firecrest.transport import FirecrestUnavailableError
from firecrest_dev.info import StackInfo
from firecrest_dev.running import free_ports

from .conftest import USER, open_transport

pytestmark = [pytest.mark.stack, pytest.mark.slow]


async def test_unreachable_api_is_not_an_answer_about_files(
    make_computer: Callable[..., Any], stack: StackInfo
) -> None:
    (port,) = free_ports(1)
    home = stack.users[USER].home
    computer = make_computer(url=f"http://127.0.0.1:{port}")
    async with open_transport(computer) as transport:
        calls = {
            "mkdir": transport.mkdir_async(f"{home}/x"),
            "copy": transport.copy_async(f"{home}/a/*", f"{home}/b"),
            "compress": transport.compress_async(
                "tar.gz", [f"{home}/a/x"], f"{home}/stash/x.tar.gz", root_dir=home
            ),
            "extract": transport.extract_async(f"{home}/x.tar", f"{home}/x"),
        }
        outcomes = await asyncio.gather(*calls.values(), return_exceptions=True)
    for name, outcome in zip(calls, outcomes, strict=True):
        assert isinstance(outcome, FirecrestUnavailableError), (name, outcome)
        assert not isinstance(outcome, OSError | ValueError), name
        assert isinstance(outcome.__cause__, ConnectionError), name
        assert f"127.0.0.1:{port}" in str(outcome), name


async def test_answers_about_files_stay_oserrors(transport: Any, remote_dir: str) -> None:
    await transport.mkdir_async(f"{remote_dir}/d")
    with pytest.raises(FileExistsError):
        await transport.mkdir_async(f"{remote_dir}/d")
    with pytest.raises(OSError, match="does not exist"):
        await transport.compress_async(
            "tar", [f"{remote_dir}/missing"], f"{remote_dir}/x.tar", root_dir=remote_dir
        )
    with pytest.raises(FileNotFoundError):
        await transport.copy_async(f"{remote_dir}/missing*", f"{remote_dir}/d")
