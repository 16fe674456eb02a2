"""The unpacking script run locally on real archives: limits, bombs, and a target left as it was."""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from firecrest_server.errors import BadRequest, NotFound, PayloadTooLarge
from firecrest_server.filesystem.unpacking import OVER_BYTES, OVER_FILES, unpack_argv, unpack_error

MiB = 1024 * 1024


def _tar(members: dict[str, bytes], mode: str = "w") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=mode) as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _snapshot(directory: Path) -> dict[str, bytes | None]:
    return {
        str(p.relative_to(directory)): (p.read_bytes() if p.is_file() else None)
        for p in sorted(directory.rglob("*"))
    }


def _unpack(
    archive: Path | bytes,
    target: Path,
    compression: str = "none",
    max_bytes: int = 100 * MiB,
    max_files: int = 1000,
    keep_permissions: bool = False,
) -> subprocess.CompletedProcess:
    stdin = archive if isinstance(archive, bytes) else None
    name = "-" if isinstance(archive, bytes) else str(archive)
    argv = unpack_argv(
        name,
        str(target),
        compression=compression,
        max_bytes=max_bytes,
        max_files=max_files,
        keep_permissions=keep_permissions,
    )
    return subprocess.run(argv, input=stdin, capture_output=True, timeout=60, check=False)


@pytest.fixture
def target(tmp_path: Path) -> Path:
    target = tmp_path / "target"
    (target / "keep").mkdir(parents=True)
    (target / "keep" / "old").write_bytes(b"old")
    (target / "replaced").write_bytes(b"before")
    return target


@pytest.mark.parametrize("compression", ["none", "gzip", "bzip2", "xz"])
def test_unpacks_merging_into_the_target_as_tar_would(
    tmp_path: Path, target: Path, compression: str
) -> None:
    suffix = {"none": "", "gzip": "gz", "bzip2": "bz2", "xz": "xz"}[compression]
    archive = tmp_path / "a.tar"
    archive.write_bytes(
        _tar({"keep/new": b"new", "replaced": b"after", ".hidden": b"h"}, f"w:{suffix}")
    )
    result = _unpack(archive, target, compression)
    assert result.returncode == 0, result.stderr
    assert _snapshot(target) == {
        ".hidden": b"h",
        "keep": None,
        "keep/new": b"new",
        "keep/old": b"old",
        "replaced": b"after",
    }


def test_a_stream_of_exactly_the_limit_is_unpacked(target: Path) -> None:
    data = _tar({"f": b"x" * 5000})
    assert _unpack(data, target, max_bytes=len(data)).returncode == 0
    assert (target / "f").read_bytes() == b"x" * 5000


@pytest.mark.parametrize("compression", ["gzip", "bzip2", "xz"])
def test_a_compression_bomb_is_stopped_at_the_byte_limit(
    tmp_path: Path, target: Path, compression: str
) -> None:
    suffix = {"gzip": "gz", "bzip2": "bz2", "xz": "xz"}[compression]
    archive = tmp_path / "bomb"
    archive.write_bytes(_tar({"zeros": bytes(20 * MiB)}, f"w:{suffix}"))
    assert archive.stat().st_size < 100_000  # a thousandfold and more
    before = _snapshot(target)
    result = _unpack(archive, target, compression, max_bytes=MiB)
    assert result.returncode == OVER_BYTES
    assert b"max_extract_bytes" in result.stderr
    assert _snapshot(target) == before
    assert sorted(os.listdir(target)) == ["keep", "replaced"]  # no unpacking directory left


def test_a_tar_inside_a_gzip_inside_a_gzip_is_not_expanded_behind_the_meter(
    tmp_path: Path, target: Path
) -> None:
    import gzip

    archive = tmp_path / "double.gz"
    archive.write_bytes(gzip.compress(_tar({"zeros": bytes(20 * MiB)}, "w:gz")))
    before = _snapshot(target)
    result = _unpack(archive, target, "gzip", max_bytes=MiB)
    assert result.returncode != 0
    assert b"Archive is compressed" in result.stderr
    assert _snapshot(target) == before


def test_too_many_entries_are_stopped_and_removed(target: Path) -> None:
    data = _tar({f"d/f{i:05d}": b"" for i in range(3000)})
    before = _snapshot(target)
    result = _unpack(data, target, max_files=100)
    assert result.returncode == OVER_FILES
    assert b"max_extract_files" in result.stderr
    assert _snapshot(target) == before
    assert sorted(os.listdir(target)) == ["keep", "replaced"]


def test_exactly_the_entry_limit_is_unpacked(target: Path) -> None:
    data = _tar({f"f{i}": b"" for i in range(50)})
    assert _unpack(data, target, max_files=50).returncode == 0
    assert len(list(target.glob("f*"))) == 50


def test_a_damaged_archive_leaves_the_target_as_it_was(tmp_path: Path, target: Path) -> None:
    archive = tmp_path / "cut.tgz"
    archive.write_bytes(_tar({"a": os.urandom(200_000), "b": b"b"}, "w:gz")[:50_000])
    before = _snapshot(target)
    result = _unpack(archive, target, "gzip")
    assert result.returncode != 0
    assert _snapshot(target) == before
    assert sorted(os.listdir(target)) == ["keep", "replaced"]


def test_a_fifo_as_archive_is_refused_without_opening_it(tmp_path: Path, target: Path) -> None:
    os.mkfifo(tmp_path / "fifo")
    result = _unpack(tmp_path / "fifo", target)  # would block in open() if it were opened
    with pytest.raises(BadRequest, match="named pipe"):
        raise unpack_error("fifo", result.returncode, result.stderr.decode())


def test_errors_map_to_the_usual_statuses(tmp_path: Path, target: Path) -> None:
    missing = _unpack(tmp_path / "missing.tar", target)
    assert isinstance(unpack_error("m", missing.returncode, missing.stderr.decode()), NotFound)
    over = unpack_error("a", OVER_BYTES, "tar: Unexpected EOF\nThe archive unpacks to more\n")
    assert isinstance(over, PayloadTooLarge)
    assert over.message == "The archive unpacks to more"


def test_tree_mode_keeps_permissions(target: Path) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        info = tarfile.TarInfo("script")
        info.mode, info.size = 0o750, 2
        archive.addfile(info, io.BytesIO(b"#!"))
    assert _unpack(buffer.getvalue(), target, keep_permissions=True).returncode == 0
    assert (target / "script").stat().st_mode & 0o777 == 0o750


def test_hostile_names_stay_arguments(tmp_path: Path) -> None:
    target = tmp_path / "$(touch CANARY) 'x"
    target.mkdir()
    data = _tar({"f": b"1"})
    assert _unpack(data, target).returncode == 0
    assert (target / "f").read_bytes() == b"1"
    assert not list(tmp_path.rglob("CANARY"))
    assert not Path("CANARY").exists()
