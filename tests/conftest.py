"""Session fixtures: one real HPC stack for the whole test session, and tokens for its users.

Set FIRECREST_STACK=/path/to/stack.json to reuse a stack started with `dev/stack up` (faster when
iterating); otherwise the session starts its own under /tmp on free ports and stops it at the end.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator

import pytest
from hypothesis import HealthCheck, settings

from firecrest_dev.info import StackInfo
from firecrest_dev.running import running_stack

# Property tests assert properties, never speed: on a loaded machine one draw can stall for
# seconds, which hypothesis would report as a failure (its deadline, its too-slow health check).
# Loaded here, before any test module makes its own @settings from the default profile.
settings.register_profile("no-timing", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("no-timing")

# AiiDA writes its configuration under $AIIDA_PATH (default ~/.aiida) as soon as it is imported:
# keep the test session's AiiDA state in a temporary directory that is removed afterwards.
_AIIDA_PATH = None
if "AIIDA_PATH" not in os.environ:
    _AIIDA_PATH = tempfile.mkdtemp(prefix="fc-aiida-")
    os.environ["AIIDA_PATH"] = _AIIDA_PATH


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _AIIDA_PATH:
        shutil.rmtree(_AIIDA_PATH, ignore_errors=True)


# Extra users (user0001 ...) in the session's stack: for the many-users benchmark's tiny mode and
# the stack test of `up --users`. Existing accounts are reused, so this costs a second or so.
SESSION_EXTRA_USERS = 8


@pytest.fixture(scope="session")
def stack() -> Iterator[StackInfo]:
    with running_stack(os.environ.get("FIRECREST_STACK"), users=SESSION_EXTRA_USERS) as info:
        yield info


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
