"""tar arguments for compress/extract, and the matchPattern script run locally on hostile names."""

from __future__ import annotations

import subprocess
import tarfile
from pathlib import Path
from types import SimpleNamespace

import pytest

from firecrest_server.cluster import CommandResult, Remote
from firecrest_server.cluster.names import IdNames
from firecrest_server.config import DataOperation
from firecrest_server.errors import BadRequest, PayloadTooLarge, RequestTimeout
from firecrest_server.filesystem.archives import (
    MATCHING_FILES_SCRIPT,
    WRITE_THEN_RENAME_SCRIPT,
    compress,
    compress_argv,
    extract,
    extract_argv,
    split_source,
)
from firecrest_server.filesystem.unpacking import UNPACK_SCRIPT


def test_split_source() -> None:
    assert split_source("/home/a/dir") == ("/home/a", "dir")
    assert split_source("/home") == ("/", "home")
    assert split_source("/") == ("/", ".")


def _unwrap(argv: list[str], target: str) -> tuple[str, list[str]]:
    """The temporary name and the command writing it, out of compress_argv's wrapper."""
    assert argv[:4] == ["bash", "-c", WRITE_THEN_RENAME_SCRIPT, "bash"]
    partial, renamed_to, writer = argv[4], argv[5], argv[6:]
    assert renamed_to == target
    directory, name = partial.rsplit("/", 1)
    assert directory == target.rsplit("/", 1)[0]
    assert name.startswith(".")
    return partial, writer


@pytest.mark.parametrize(
    ("compression", "flags"),
    [("none", []), ("gzip", ["-z"]), ("bzip2", ["-j"]), ("xz", ["-J"])],
)
def test_compress_argv(compression: str, flags: list[str]) -> None:
    argv = compress_argv("/home/a/src", "/home/a/out.tar", compression=compression)
    partial, writer = _unwrap(argv, "/home/a/out.tar")
    assert writer == ["tar", "-c", *flags, "-f", partial, "-C", "/home/a", "--", "src"]


def test_compress_argv_dereference() -> None:
    argv = compress_argv("/home/a/src", "/home/a/o.tgz", dereference=True)
    partial, writer = _unwrap(argv, "/home/a/o.tgz")
    assert writer == [
        "tar",
        "-c",
        "-z",
        "--dereference",
        "-f",
        partial,
        "-C",
        "/home/a",
        "--",
        "src",
    ]


def test_compress_argv_temporary_names_differ() -> None:
    assert compress_argv("/h/s", "/h/o.tar") != compress_argv("/h/s", "/h/o.tar")


def test_compress_argv_empty_pattern_means_no_pattern() -> None:
    assert _unwrap(compress_argv("/a/b", "/a/c", match_pattern=""), "/a/c")[1][0] == "tar"


def test_compress_argv_with_pattern_keeps_user_values_out_of_the_script() -> None:
    pattern = "$(touch /tmp/x)'\"`id`"
    argv = compress_argv(
        "/home/a/$(id)", "/home/a/o.tar", compression="xz", dereference=True, match_pattern=pattern
    )
    partial, writer = _unwrap(argv, "/home/a/o.tar")
    assert writer[:4] == ["bash", "-c", MATCHING_FILES_SCRIPT, "bash"]
    assert writer[4:] == [
        "/home/a",
        "-L",
        "./$(id)",
        pattern,
        "-c",
        "-J",
        "--dereference",
        "-f",
        partial,
    ]


def test_compress_argv_with_pattern_without_dereference_does_not_follow_links() -> None:
    writer = _unwrap(compress_argv("/h/s", "/h/o", match_pattern=".*"), "/h/o")[1]
    assert writer[5] == "-P"


@pytest.mark.parametrize(
    ("source", "target"),
    [("/h/src", "/h/src"), ("/h/src", "/h/src/a.tgz"), ("/h/src", "/h/src/sub/a.tgz"), ("/", "/a")],
)
def test_compress_argv_refuses_an_archive_inside_its_source(source: str, target: str) -> None:
    with pytest.raises(BadRequest, match="inside `sourcePath`"):
        compress_argv(source, target)


def test_compress_argv_allows_a_sibling_with_the_same_prefix() -> None:
    _unwrap(compress_argv("/h/src", "/h/src.tgz"), "/h/src.tgz")


@pytest.mark.parametrize(
    ("compression", "decompressor"),
    [("none", ["cat"]), ("gzip", ["gzip", "-d", "-c"]), ("xz", ["xz", "-d", "-c"])],
)
def test_extract_argv_unpacks_within_the_systems_limits(
    compression: str, decompressor: list[str]
) -> None:
    limits = DataOperation(max_extract_bytes=1000, max_extract_files=7)
    argv = extract_argv("/h/a.tar", "/h/out", limits, compression)
    assert argv[:4] == ["bash", "-c", UNPACK_SCRIPT, "bash"]
    assert argv[4:6] == ["/h/a.tar", "/h/out"]
    assert argv[6].startswith(".fcunpack-")
    assert argv[7:] == ["1000", "7", "", *decompressor]


HOSTILE = ["$(touch CANARY)", "`touch CANARY`", "a'b", 'a"b', "new\nline", "-rf", "ünï ☃", "x;y"]


def _run(argv: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, check=False)


def test_matching_files_script_with_hostile_names(tmp_path: Path) -> None:
    source = tmp_path / "-src $(touch CANARY)"
    (source / "sub").mkdir(parents=True)
    for name in HOSTILE:
        (source / "sub" / f"{name}.txt").write_text(name)
        (source / f"{name}.dat").write_text(name)
    archive = tmp_path / "out.tar"
    result = _run(
        compress_argv(str(source), str(archive), compression="none", match_pattern=r".*\.txt")
    )
    assert result.returncode == 0, result.stderr
    with tarfile.open(archive) as tar:
        members = sorted(tar.getnames())
    # In find's regex syntax `.` does not match a newline: that one name is not selected.
    expected = [f"./{source.name}/sub/{name}.txt" for name in HOSTILE if "\n" not in name]
    assert members == sorted(expected)
    assert not list(tmp_path.rglob("CANARY"))
    assert not Path("CANARY").exists()


def test_matching_files_script_with_a_hostile_pattern(tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    (source / "f.txt").write_text("x")
    for pattern in ["$(touch CANARY)", "`touch CANARY`", "'; touch CANARY; '", "-delete"]:
        result = _run(compress_argv(str(source), str(tmp_path / "o.tgz"), match_pattern=pattern))
        assert result.returncode == 0, result.stderr
    assert (source / "f.txt").exists()
    assert not list(tmp_path.rglob("CANARY"))


def test_matching_files_script_fails_on_a_missing_source(tmp_path: Path) -> None:
    result = _run(
        compress_argv(str(tmp_path / "nope"), str(tmp_path / "o.tar"), match_pattern=".*")
    )
    assert result.returncode != 0
    assert "No such file or directory" in result.stderr


def test_plain_compress_and_extract_round_trip(tmp_path: Path) -> None:
    source = tmp_path / "-n"
    source.mkdir()
    (source / "--help").write_text("payload")
    archive = tmp_path / "a.tar.bz2"
    result = _run(compress_argv(str(source), str(archive), compression="bzip2"))
    assert result.returncode == 0, result.stderr
    out = tmp_path / "out"
    out.mkdir()
    result = _run(extract_argv(str(archive), str(out), DataOperation(), "bzip2"))
    assert result.returncode == 0, result.stderr
    assert (out / "-n" / "--help").read_text() == "payload"


def test_a_failed_compress_leaves_the_old_target_and_no_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "a.tgz"
    target.write_text("the archive from yesterday")
    for pattern in (None, ".*"):
        result = _run(compress_argv(str(tmp_path / "nope"), str(target), match_pattern=pattern))
        assert result.returncode != 0
        assert "No such file or directory" in result.stderr
    assert target.read_text() == "the archive from yesterday"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.tgz"]


def test_compress_onto_a_directory_fails_without_moving_into_it(tmp_path: Path) -> None:
    source, target = tmp_path / "src", tmp_path / "out"
    source.mkdir()
    (source / "f").write_text("x")
    target.mkdir()
    result = _run(compress_argv(str(source), str(target)))
    assert result.returncode != 0
    assert "cannot overwrite" in result.stderr  # mapped to 400
    assert list(target.iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "src"]


def test_compress_replaces_an_existing_archive(tmp_path: Path) -> None:
    source, target = tmp_path / "src", tmp_path / "a.tar"
    source.mkdir()
    (source / "f").write_text("new")
    target.write_text("old")
    result = _run(compress_argv(str(source), str(target), compression="none"))
    assert result.returncode == 0, result.stderr
    with tarfile.open(target) as tar:
        assert tar.getnames() == ["src", "src/f"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.tar", "src"]


# ------------------------------------------------------------------------- through Remote.run


class _Runner:
    """Stands in for the SSH runner: records argv and answers with a fixed exit status."""

    def __init__(self, exit_status: int, stderr: bytes = b"") -> None:
        self.exit_status, self.stderr = exit_status, stderr
        self.calls: list[tuple[list[str], float | None]] = []
        self.username = "alice"

    async def run(self, argv, *, stdin=None, env=None, timeout=None, idempotent=True):
        self.calls.append((list(argv), timeout))
        return CommandResult(tuple(argv), self.exit_status, b"", self.stderr)


def _remote(runner: _Runner) -> Remote:
    system = SimpleNamespace(data_operation=DataOperation())
    return Remote(system=system, runner=runner, names=IdNames())  # type: ignore[arg-type]


async def test_a_remote_timeout_is_408_so_pyfirecrest_falls_back_to_a_transfer_job() -> None:
    runner = _Runner(124)
    with pytest.raises(RequestTimeout):
        await compress(_remote(runner), "/h/src", "/h/o.tgz")
    with pytest.raises(RequestTimeout):
        await extract(_remote(runner), "/h/o.tgz", "/h/out")
    # No per-call override: the runner's timeout is the system's ssh.command_timeout.
    assert [timeout for _, timeout in runner.calls] == [None, None]


async def test_compress_passes_its_arguments() -> None:
    runner = _Runner(0)
    await compress(_remote(runner), "/h/src", "/h/o.tar", compression="none", dereference=True)
    partial, writer = _unwrap(runner.calls[0][0], "/h/o.tar")
    assert writer == ["tar", "-c", "--dereference", "-f", partial, "-C", "/h", "--", "src"]


async def test_not_an_archive_is_400() -> None:
    runner = _Runner(2, b"tar: This does not look like a tar archive\n")
    with pytest.raises(BadRequest, match="does not look like a tar archive"):
        await extract(_remote(runner), "/h/f.txt", "/h/out", "none")


def test_compress_argv_refuses_a_nul_in_the_pattern() -> None:
    # it would reach the SSH exec request, and sshd drops the connection on a NUL
    with pytest.raises(BadRequest, match="matchPattern"):
        compress_argv("/h/src", "/h/a.tar", match_pattern="x\x00y")


async def test_an_archive_over_a_limit_is_413_with_the_scripts_message() -> None:
    message = b"The archive has more than 7 entries, the limit (data_operation.max_extract_files)"
    runner = _Runner(3, b"tar: stdout: Broken pipe\n" + message + b"\n")
    with pytest.raises(PayloadTooLarge) as excinfo:
        await extract(_remote(runner), "/h/a.tar", "/h/out", "none")
    assert excinfo.value.message == message.decode()
