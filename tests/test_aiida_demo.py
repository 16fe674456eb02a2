"""The README's main job: AiiDA calculations through the plugin and the server, with the daemon."""

import subprocess
import sys

import pytest

from firecrest_dev.info import StackInfo
from firecrest_dev.stack.settings import REPO

pytestmark = [pytest.mark.stack, pytest.mark.slow]


def test_aiida_demo_runs_calculations_through_the_daemon(stack: StackInfo) -> None:
    result = subprocess.run(
        [
            sys.executable,
            str(REPO / "dev" / "aiida_demo.py"),
            str(stack.dir / "stack.json"),
            "--count",
            "6",
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "summary: 6 finished OK, 0 failed" in result.stdout
    assert "verdi computer test: " in result.stdout
    assert "FAILED" not in result.stdout
