"""The special-file guards: the SFTP mode check, and the bash guard run locally on real files."""

from __future__ import annotations

import os
import socket
import stat as stat_module
import subprocess
from pathlib import Path

import pytest

from firecrest_server.filesystem.special import (
    SPECIAL_EXITS,
    SpecialFile,
    guarded_argv,
    refuse_special,
    refuse_special_exit,
    special_kind,
)


@pytest.mark.parametrize(
    ("mode", "kind"),
    [
        (stat_module.S_IFIFO | 0o644, "a named pipe (FIFO)"),
        (stat_module.S_IFCHR | 0o666, "a character device"),
        (stat_module.S_IFBLK | 0o660, "a block device"),
        (stat_module.S_IFSOCK | 0o755, "a socket"),
    ],
)
def test_special_modes_are_refused_naming_the_kind(mode: int, kind: str) -> None:
    assert special_kind(mode) == kind
    with pytest.raises(SpecialFile) as excinfo:
        refuse_special("/home/a/x", mode)
    assert excinfo.value.status_code == 400
    assert excinfo.value.message.startswith("/home/a/x: Not a regular file (")
    assert kind in excinfo.value.message


@pytest.mark.parametrize(
    "mode", [stat_module.S_IFREG | 0o644, stat_module.S_IFDIR | 0o755, stat_module.S_IFLNK, None]
)
def test_files_directories_and_links_pass(mode: int | None) -> None:
    refuse_special("/home/a/x", mode)  # no error


@pytest.fixture
def specials(tmp_path: Path):
    os.mkfifo(tmp_path / "fifo")
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(tmp_path / "sock"))
    (tmp_path / "zero").symlink_to("/dev/zero")
    (tmp_path / "file").write_bytes(b"content\n")
    yield tmp_path
    server.close()


def _run(path: Path, argv: list[str]) -> subprocess.CompletedProcess:
    # timeout: a guard that let `cat` open the FIFO would hang here, not pass.
    return subprocess.run(guarded_argv(str(path), argv), capture_output=True, timeout=10)


@pytest.mark.parametrize(("name", "status"), [("fifo", 96), ("zero", 97), ("sock", 99)])
def test_the_guard_refuses_before_the_program_opens_the_path(specials, name, status) -> None:
    result = _run(specials / name, ["cat", "--", str(specials / name)])
    assert result.returncode == status
    assert result.stdout == b""
    with pytest.raises(SpecialFile, match=SPECIAL_EXITS[status].split(" (")[0]):
        refuse_special_exit(name, result.returncode)


def test_the_guard_runs_the_program_on_files_and_keeps_its_errors(specials) -> None:
    ok = _run(specials / "file", ["cat", "--", str(specials / "file")])
    assert (ok.returncode, ok.stdout) == (0, b"content\n")
    missing = _run(specials / "none", ["cat", "--", str(specials / "none")])
    assert missing.returncode == 1
    assert b"No such file or directory" in missing.stderr
    refuse_special_exit("none", missing.returncode)  # not a special-file status: no error


def test_the_path_is_an_argument_not_script_text(specials) -> None:
    hostile = specials / "$(touch pwned); x"
    hostile.write_bytes(b"")
    assert _run(hostile, ["cat", "--", str(hostile)]).returncode == 0
    assert not (specials / "pwned").exists()
    assert not Path("pwned").exists()
