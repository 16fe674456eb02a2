"""The deployment files in deploy/ are checked by the tools that will read them."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
UNIT = REPO / "deploy" / "systemd" / "firecrest-server@.service"
INSTALLED_SERVER = "/opt/firecrest/bin/firecrest-server"


@pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed here"
)
def test_systemd_unit_verifies(tmp_path: Path) -> None:
    text = UNIT.read_text()
    assert INSTALLED_SERVER in text
    # systemd-analyze checks that ExecStart names an executable: point it at this checkout's.
    server = Path(sys.executable).parent / "firecrest-server"
    instance = tmp_path / "firecrest-server@test.service"
    instance.write_text(text.replace(INSTALLED_SERVER, str(server)))
    result = subprocess.run(
        ["systemd-analyze", "verify", str(instance)], capture_output=True, text=True
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    # Unknown or misspelt keys are only warnings to systemd (it ignores them): refuse them here.
    assert "Unknown key" not in output, output
    assert "ignoring" not in output, output
