"""Session fixtures: one real HPC stack for the whole test session, and tokens for its users.

Set FIRECREST_STACK=/path/to/stack.json to reuse a stack started with `dev/stack up` (faster when
iterating); otherwise the session starts its own under /tmp on free ports and stops it at the end.
"""

from __future__ import annotations

import fnmatch
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from .stack import StackInfo, new_stack_dir, stack_down, stack_up

# AiiDA writes its configuration under $AIIDA_PATH (default ~/.aiida) as soon as it is imported:
# keep the test session's AiiDA state in a temporary directory that is removed afterwards.
_AIIDA_PATH = None
if "AIIDA_PATH" not in os.environ:
    _AIIDA_PATH = tempfile.mkdtemp(prefix="fc-aiida-")
    os.environ["AIIDA_PATH"] = _AIIDA_PATH


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _AIIDA_PATH:
        shutil.rmtree(_AIIDA_PATH, ignore_errors=True)


@pytest.fixture(scope="session")
def stack() -> Iterator[StackInfo]:
    reuse = os.environ.get("FIRECREST_STACK")
    if reuse:
        yield StackInfo.load(Path(reuse))
        return
    directory = new_stack_dir()
    info, elapsed = stack_up(directory)
    print(f"\nstack up in {elapsed:.1f} s at {directory}")
    homes_before = {name: _entries(Path(user.home)) for name, user in info.users.items()}
    try:
        yield info
    finally:
        result = stack_down(directory)
        if result.returncode == 0:
            shutil.rmtree(directory, ignore_errors=True)
        else:
            print(f"dev/stack down failed; state kept in {directory}:\n{result.stderr}")
        if not os.environ.get("FIRECREST_KEEP_HOMES"):
            for name, before in homes_before.items():
                _remove_new_artefacts(Path(info.users[name].home), before)


# What the server, the plugin and the tools leave in a user's home as they work: transfer-job
# logs (FirecREST's names), job markers, staging, the plugin's temporary directory, the demo's
# and the API benchmark's directories. Tests remove their own directories themselves.
_ARTEFACTS = (
    ".f7t_file_handling_job_*",
    ".firecrest-server",
    ".firecrest-staging",
    ".aiida-firecrest-tmp",
    ".bench-ls",
    "aiida_run",
)


def _entries(directory: Path) -> set[str]:
    return {entry.name for entry in directory.iterdir()}


def _remove_new_artefacts(home: Path, before: set[str]) -> None:
    """The test users' homes outlive the stack (every CI run left ~140 transfer-job logs there):
    remove the artefacts this session created, only those (names in ``_ARTEFACTS`` that were
    not there when it started: another stack's state, made earlier, stays). Set
    FIRECREST_KEEP_HOMES=1 to keep them for a look after a failed run."""
    for entry in _entries(home) - before:
        if not any(fnmatch.fnmatchcase(entry, pattern) for pattern in _ARTEFACTS):
            continue
        path = home / entry
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


@pytest.fixture(scope="session")
def token_for(stack: StackInfo) -> Callable[[str], str]:
    """token_for("alice") -> an access token with at least a minute left, cached per user."""
    cache: dict[str, tuple[str, float]] = {}

    def get(user: str) -> str:
        token, fetched = cache.get(user, ("", 0.0))
        if not token or time.monotonic() - fetched > 240:  # tokens live 600 s
            token = stack.fetch_token(user)
            cache[user] = (token, time.monotonic())
        return token

    return get
