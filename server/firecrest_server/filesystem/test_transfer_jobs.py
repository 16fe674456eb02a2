"""Transfer job scripts: user values stay data, the success phrase comes last."""

import subprocess

from .transfer_jobs import transfer_script


def test_script_quotes_every_value_and_runs_as_written(tmp_path) -> None:
    hostile = "a b'$(touch CANARY)`touch CANARY`\nc"
    script = transfer_script(
        [["touch", "--", str(tmp_path / hostile)]],
        "Files were successfully copied.",
        ["#SBATCH --partition=xfer"],
    )
    assert script.startswith("#!/bin/bash\n#SBATCH --partition=xfer\nset -euo pipefail\n")
    result = subprocess.run(["bash", "-c", script], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "Files were successfully copied.\n"
    assert (tmp_path / hostile).exists()
    assert not (tmp_path / "CANARY").exists()


def test_failure_means_no_success_phrase(tmp_path) -> None:
    script = transfer_script([["false"], ["echo", "never"]], "Files were successfully moved.")
    result = subprocess.run(["bash", "-c", script], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode != 0
    assert "successfully" not in result.stdout
