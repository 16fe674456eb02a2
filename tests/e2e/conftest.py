"""End-to-end fixtures: AiiDA with PostgreSQL, RabbitMQ and a daemon of two workers, running
calculations on the real stack through the ``firecrest`` transport and scheduler.

One profile for the whole package (made once, ~20 s); torn down before other packages' tests run,
so the plugin tests' own profile is not disturbed (see ``aiida_env.loaded``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from firecrest_dev.aiida_env import AiidaProfile, loaded, new_profile
from firecrest_dev.info import StackInfo

WORKERS = 2
POLL_INTERVAL = 2.0  # seconds between two scheduler polls (AiiDA's default is 10)
COMPUTER = "stack"


class E2E:
    """The profile, the loaded AiiDA, and the computer ``stack`` (firecrest, alice)."""

    def __init__(self, profile: AiidaProfile, stack: StackInfo, workdir: str) -> None:
        self.profile = profile
        self.stack = stack
        self.workdir = workdir

    @property
    def computer(self) -> Any:
        from aiida import orm

        return orm.load_computer(COMPUTER)

    @property
    def code(self) -> Any:
        from aiida import orm

        return orm.load_code(f"bash-installed@{COMPUTER}")


@pytest.fixture(scope="package")
def e2e(stack: StackInfo) -> Iterator[E2E]:
    profile = new_profile()
    try:
        profile.create()
        workdir = profile.add_computer(stack, COMPUTER)
        with loaded(profile):
            from aiida import orm

            computer = orm.load_computer(COMPUTER)
            computer.set_minimum_job_poll_interval(POLL_INTERVAL)
            # The computer's work directory exists, as after its first calculation. In a brand
            # new one, calculations uploading at the same moment race in aiida-core's
            # upload_calculation (path_exists, then makedirs without ignore_existing): all but
            # one fail and are retried 20 s later, with any transport.
            with computer.get_transport() as transport:
                transport.makedirs(workdir)
            profile.start_daemon(WORKERS)
            yield E2E(profile, stack, workdir)
    finally:
        problems = profile.destroy()
        assert not problems, f"cleaning up the AiiDA profile {profile.name}: {problems}"
