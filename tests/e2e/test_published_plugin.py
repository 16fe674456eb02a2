"""The published aiida-firecrest 1.0.0 runs unchanged against this server.

Installed from the package registry into a cached venv of its own (``published_plugin``), it
sets up, configures and tests a computer with ``-T firecrest -S firecrest`` for alice, then runs
calculations through the stack: additions, and one job that uploads a 2 MiB file (above
pyfirecrest's 1 MiB direct-transfer limit, so through the staged transfer path), checksums and
copies it on the cluster, and retrieves the copy. No patches: the plugin as users get it.

The profile is SQLite with no broker, and the calculations run in the ``verdi run`` process
(no daemon): nothing but the stack is needed.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from firecrest_dev.info import StackInfo

from .published_plugin import VERSION, Verdi, published_venv, verdi_in

pytestmark = [pytest.mark.stack, pytest.mark.slow]

COMPUTER = "published"  # not a hex string: verdi would read "fc10" as a UUID prefix
ADDITIONS = 3
BIG_FILE = 2 * 1024 * 1024
JOBS = Path(__file__).with_name("published_plugin_jobs.py")


@pytest.fixture(scope="module")
def venv() -> Path:
    return published_venv()


@pytest.fixture
def published(venv: Path, tmp_path: Path, stack: StackInfo) -> Iterator[tuple[Verdi, str]]:
    """verdi of the published plugin with a fresh profile; alice's remote directories made by
    it are removed afterwards (as root: the stack runs on this machine)."""
    home = stack.users["alice"].home
    remote = f"{home}/aiida-published-{uuid.uuid4().hex[:8]}"
    with verdi_in(venv, tmp_path) as verdi:
        try:
            yield verdi, remote
        finally:
            shutil.rmtree(remote, ignore_errors=True)


def _ok(result) -> str:
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    return output


def test_published_plugin_sets_up_and_runs_calculations(
    published: tuple[Verdi, str], stack: StackInfo
) -> None:
    verdi, remote = published
    alice = stack.users["alice"]
    # What 1.0.0 asks for; client_secret may be the secret or the absolute path of a file
    # holding it (given as the secret, it writes one to ~/.firecrest: here, the test's HOME).
    secret = verdi.workdir / "client-secret"
    secret.write_text(alice.client_secret)
    secret.chmod(0o600)
    config = verdi.workdir / "computer.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "url": stack.url,
                "token_uri": stack.token_url,
                "client_id": alice.client_id,
                "client_secret": str(secret),
                "compute_resource": stack.system,
                "billing_account": stack.account,
                "temp_directory": f"{remote}/tmp",
                "max_io_allowed": 8,
                "checksum_check": False,
            }
        )
    )
    _ok(
        verdi(
            "profile", "setup", "core.sqlite_dos", "-n", "--profile-name", "published",
            "--email", "published@example.org", "--first-name", "Published",
            "--last-name", "Plugin", "--institution", "tests", "--broker", "none",
        )
    )  # fmt: skip
    _ok(
        verdi(
            "computer", "setup", "-n", "--label", COMPUTER, "--hostname", stack.system,
            "--transport", "firecrest", "--scheduler", "firecrest",
            "--work-dir", f"{remote}/work/", "--mpiprocs-per-machine", "1",
        )
    )  # fmt: skip
    # The step that failed before FirecREST v2's "cannot statx" wording: the plugin checks
    # the temporary directory with isfile()/path_exists() and creates it.
    configured = _ok(
        verdi("computer", "configure", "firecrest", COMPUTER, "-n", "--config", str(config))
    )
    assert "successfully configured" in configured
    assert Path(f"{remote}/tmp").is_dir()
    tested = _ok(verdi("computer", "test", COMPUTER))
    # (6 checks with aiida-core 2.9; the number is aiida-core's, whichever version pip chose)
    assert re.search(r"Success: all \d+ tests succeeded", tested), tested
    assert "[Failed]" not in tested
    assert "Determining remote user name... [OK]: alice" in tested
    _ok(
        verdi(
            "code", "create", "core.code.installed", "-n", "--label", "bash",
            "--computer", COMPUTER, "--filepath-executable", "/bin/bash",
        )
    )  # fmt: skip

    ran = verdi("run", str(JOBS), COMPUTER, str(ADDITIONS), str(BIG_FILE), timeout=900)
    output = _ok(ran)
    lines = [line for line in ran.stdout.splitlines() if line.startswith("REPORT ")]
    assert lines, output
    report = json.loads(lines[-1].removeprefix("REPORT "))
    # The calculations ran with the published plugin, not this repository's.
    assert report["plugin"]["version"] == VERSION
    assert Path(report["plugin"]["module"]).is_relative_to(verdi.venv)

    additions = report["additions"]
    assert len(additions) == ADDITIONS
    for addition in additions:
        assert addition["exit_status"] == 0, output
        assert addition["sum"] == addition["expected"]
    big = report["big"]
    assert big["exit_status"] == 0, output
    assert big["remote_sha256"] == big["sha256"]  # uploaded intact
    assert big["retrieved_sha256"] == big["sha256"]  # and retrieved intact
    assert big["remote_workdir"].startswith(f"{remote}/work/")


def test_the_venv_holds_the_published_release(venv: Path) -> None:
    installed = (venv / ".installed").read_text().lower().replace("_", "-")
    assert f"aiida-firecrest=={VERSION}" in installed.splitlines()
    # The plugin its verdi loads is the venv's copy, not this repository's.
    found = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-c",
            "import aiida_firecrest; print(aiida_firecrest.__file__)",
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=venv,  # not this repository's root, where `import aiida_firecrest` finds ours
    )
    assert Path(found.stdout.strip()).is_relative_to(venv)
