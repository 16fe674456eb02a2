"""The server's vocabulary of Slurm job states against what the installed Slurm documents."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import pytest

from firecrest_server.scheduler.slurm_states import (
    FINAL_STATES,
    JOB_STATES,
    STARTED_STATES,
    normalised_state,
)

MAN_PAGES = [Path("/usr/share/man/man1/squeue.1.gz"), Path("/usr/share/man/man1/sacct.1.gz")]
# In a manual's "JOB STATE CODES" section, each state is a bold line "CODE  NAME", such as
# "\fBCD  COMPLETED\fR" (squeue) or "\f3CD  COMPLETED\fP" (sacct).
_STATE_LINE = re.compile(r"^\\f[B3][A-Z]{1,3} +([A-Z_]+)\\f[RP]", re.MULTILINE)


def documented_states(man_page: Path) -> set[str]:
    text = gzip.decompress(man_page.read_bytes()).decode("utf-8", errors="replace")
    section = text.split('.SH "JOB STATE CODES"', 1)[1].split("\n.SH ", 1)[0]
    return set(_STATE_LINE.findall(section))


@pytest.mark.parametrize("man_page", MAN_PAGES, ids=lambda p: p.name)
def test_every_state_slurm_documents_is_known(man_page: Path) -> None:
    if not man_page.exists():
        pytest.skip(f"{man_page} is not installed (dev/stack install installs Slurm's clients)")
    documented = documented_states(man_page)
    assert len(documented) >= 15, documented  # the section was found and read
    assert documented - JOB_STATES == set()


def test_final_and_started_states_are_job_states() -> None:
    assert FINAL_STATES <= JOB_STATES
    assert STARTED_STATES <= JOB_STATES
    assert not FINAL_STATES & STARTED_STATES
    assert {"PENDING", "RUNNING", "COMPLETING", "REQUEUED"}.isdisjoint(FINAL_STATES)


def test_cancelled_by_keeps_the_user_as_reason_and_configuring_is_running() -> None:
    assert normalised_state("CANCELLED by 1001") == ("CANCELLED", "by 1001")
    assert normalised_state("CONFIGURING")[0] == "RUNNING"
    assert normalised_state("") == ("UNKNOWN", None)
