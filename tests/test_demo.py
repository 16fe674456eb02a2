"""The README's main job (dev/demo runs dev/smoke.py on a fresh stack) works on the stack."""

import subprocess
import sys

import pytest

from firecrest_dev.info import StackInfo
from firecrest_dev.stack.settings import REPO

pytestmark = pytest.mark.stack


def test_demo_session_passes(stack: StackInfo) -> None:
    result = subprocess.run(
        [sys.executable, str(REPO / "dev" / "smoke.py"), str(stack.dir / "stack.json")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "demo run passed" in result.stdout
    assert "sum = 5050" in result.stdout
