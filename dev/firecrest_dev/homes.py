"""What tools leave in the test users' homes, which outlive every stack, and its removal."""

from __future__ import annotations

import fnmatch
import shutil
from pathlib import Path

# What the server, the plugin and the tools leave in a user's home as they work: transfer-job
# logs (FirecREST's names), job markers, staging, the plugin's temporary directory, the demo's
# and the API benchmark's directories. Tests remove their own directories themselves.
HOME_ARTEFACTS = (
    ".f7t_file_handling_job_*",
    ".firecrest-server",
    ".firecrest-staging",
    ".aiida-firecrest-tmp",
    ".bench-ls",
    "aiida_run",
)


def home_entries(home: str | Path) -> set[str]:
    return {entry.name for entry in Path(home).iterdir()}


def remove_new_artefacts(home: str | Path, before: set[str]) -> None:
    """The test users' homes outlive every stack (each CI run used to leave ~140 transfer-job
    logs there): remove the artefacts made since ``before`` was taken, only those (names in
    ``HOME_ARTEFACTS`` that were not there then: another stack's state, made earlier, stays)."""
    for entry in home_entries(home) - before:
        if not any(fnmatch.fnmatchcase(entry, pattern) for pattern in HOME_ARTEFACTS):
            continue
        path = Path(home, entry)
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
