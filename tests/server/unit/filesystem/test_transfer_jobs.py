"""Transfer job scripts: user values stay data, the success phrase comes last."""

import subprocess

import pytest

from firecrest_server.errors import BadRequest
from firecrest_server.filesystem.transfer_jobs import _directives, script_word, transfer_script


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


def _system_with_account_directive():
    from firecrest_server.config import SystemConfig

    return SystemConfig.model_validate(
        {
            "name": "c",
            "ssh": {
                "host": "h",
                "known_hosts": "/k",
                "credentials": {"type": "ca", "ca_key": "KEY"},
            },
            "file_systems": [{"path": "/home", "default_work_dir": True}],
            "data_operation": {"transfer_job_directives": ["#SBATCH --account={account}"]},
        }
    )


def test_account_directive_takes_a_plain_name() -> None:
    assert _directives(_system_with_account_directive(), "proj-1.a_b") == [
        "#SBATCH --account=proj-1.a_b"
    ]


@pytest.mark.parametrize(
    "account", ["a --output=/home/bob/x", "a\n#SBATCH --uid=0", "a'b", 'a"b', "a\tb", "a#b"]
)
def test_account_directive_refuses_what_sbatch_would_split(account: str) -> None:
    # sbatch splits #SBATCH lines into words itself: a space would smuggle in an option.
    with pytest.raises(BadRequest, match="Invalid account"):
        _directives(_system_with_account_directive(), account)


HOSTILE_WORDS = [
    "plain",
    "",
    "a b'c\"d",
    "x\r\ntouch CANARY",
    "x\ntouch CANARY\n",
    "\\'; touch CANARY; #",
    "tab\there\x1b[31m\x7f",
    "\\x41\\n$'\\'",
    "ünï✓\r数据",
    "\r",
    "'",
]


def test_script_words_reach_bash_unchanged_and_keep_the_script_free_of_cr(tmp_path) -> None:
    script = transfer_script([["printf", "%s\\0", *HOSTILE_WORDS]], "done")
    # sbatch refuses scripts with CR LF ("DOS line breaks"): none may be left raw
    assert "\r" not in script
    result = subprocess.run(["bash", "-c", script], cwd=tmp_path, capture_output=True)
    assert result.returncode == 0, result.stderr
    printed = result.stdout.decode().removesuffix("done\n")
    assert printed.split("\0")[:-1] == HOSTILE_WORDS
    assert not (tmp_path / "CANARY").exists()


def test_script_word_uses_plain_quoting_when_it_can() -> None:
    assert script_word("/home/a b") == "'/home/a b'"
    assert script_word("x\ny") == "$'x\\x0ay'"
