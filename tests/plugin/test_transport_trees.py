"""Whole trees up and down, by each of the three ways (one tar stream, one archive through
ops/compress|extract, file by file), with the same result; and cp/mv/rm as a plain FirecREST
does them (transfer jobs)."""

from __future__ import annotations

import dataclasses
import os
import stat
from pathlib import Path

import pytest

from aiida_firecrest import trees

from .conftest import seed

pytestmark = pytest.mark.stack


@pytest.fixture(params=["stream", "archive", "per-file"])
async def way(request, transport, monkeypatch) -> str:
    """Force one way of moving trees; the requests made are all real."""
    info = await transport.fs.info()
    if request.param != "stream":
        transport.fs._info = dataclasses.replace(info, capabilities=frozenset())
    if request.param == "per-file":
        monkeypatch.setattr(trees, "ARCHIVE_MIN_ENTRIES", 10**9)
    else:
        monkeypatch.setattr(trees, "ARCHIVE_MIN_ENTRIES", 1)
    return request.param


def make_tree(root: Path) -> dict[str, str | None]:
    files = {
        "a.txt": "a",
        "empty": "",
        "sub/b.bin": "\x00\x01 binary",
        "sub/deeper/c.txt": "c" * 5000,
        ".hidden": "h",
        "odd name & 'quotes'.txt": "odd",
    }
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    (root / "empty-dir").mkdir()
    (root / "run.sh").write_text("#!/bin/sh\n")
    (root / "run.sh").chmod(0o755)
    return listing(root)


def listing(root: Path) -> dict[str, str | None]:
    return {
        p.relative_to(root).as_posix(): (p.read_text() if p.is_file() else None)
        for p in sorted(root.rglob("*"))
    }


def no_staging_left(*directories: str | Path) -> None:
    for directory in directories:
        if Path(directory).exists():
            leftovers = [n for n in os.listdir(directory) if n.startswith(".aiida-firecrest-")]
            assert leftovers == [], f"staging left in {directory}: {leftovers}"


async def test_put_and_get_tree(transport, remote_dir, tmp_path, way) -> None:
    expected = make_tree(tmp_path / "src")
    await transport.puttree_async(tmp_path / "src", f"{remote_dir}/up")
    assert listing(Path(remote_dir, "up")) == expected
    await transport.gettree_async(f"{remote_dir}/up", tmp_path / "down")
    assert listing(tmp_path / "down") == expected
    no_staging_left(remote_dir, f"{remote_dir}/up", transport.settings.temp_directory)


async def test_trees_keep_symlinks_unless_dereferenced(transport, remote_dir, tmp_path, way):
    src = tmp_path / "src"
    (src / "dir").mkdir(parents=True)
    (src / "dir/target.txt").write_text("t")
    os.symlink("dir/target.txt", src / "link")
    os.symlink("dir", src / "dirlink")
    await transport.puttree_async(src, f"{remote_dir}/deref")  # dereference=True, the default
    assert not Path(remote_dir, "deref/link").is_symlink()
    assert Path(remote_dir, "deref/link").read_text() == "t"
    assert Path(remote_dir, "deref/dirlink/target.txt").read_text() == "t"
    await transport.puttree_async(src, f"{remote_dir}/links", dereference=False)
    assert Path(remote_dir, "links/link").is_symlink()
    assert Path(remote_dir, "links/link").resolve() == Path(remote_dir, "links/dir/target.txt")
    if way != "per-file":  # ops/symlink takes absolute targets only: per file, they are made so
        assert os.readlink(Path(remote_dir, "links/link")) == "dir/target.txt"
    await transport.gettree_async(f"{remote_dir}/links", tmp_path / "back", dereference=False)
    assert (tmp_path / "back/link").is_symlink()
    assert os.readlink(tmp_path / "back/link") == os.readlink(Path(remote_dir, "links/link"))
    await transport.gettree_async(f"{remote_dir}/links", tmp_path / "back-deref")
    assert not (tmp_path / "back-deref/link").is_symlink()
    assert (tmp_path / "back-deref/link").read_text() == "t"


async def test_executable_bit_survives_the_round_trip(transport, remote_dir, tmp_path, way):
    make_tree(tmp_path / "src")
    await transport.puttree_async(tmp_path / "src", f"{remote_dir}/up")
    if way != "per-file":  # a single-file upload does not carry modes (as SFTP put)
        assert os.stat(Path(remote_dir, "up/run.sh")).st_mode & stat.S_IXUSR
    await transport.chmod_async(f"{remote_dir}/up/run.sh", 0o755)
    await transport.gettree_async(f"{remote_dir}/up", tmp_path / "down")
    if way != "per-file":
        assert os.stat(tmp_path / "down/run.sh").st_mode & stat.S_IXUSR


async def test_many_files(transport, remote_dir, tmp_path, way) -> None:
    src = tmp_path / "many"
    for i in range(60):
        (src / f"d{i % 6}").mkdir(parents=True, exist_ok=True)
        (src / f"d{i % 6}" / f"f{i}").write_text(str(i))
    await transport.puttree_async(src, f"{remote_dir}/many")
    await transport.gettree_async(f"{remote_dir}/many", tmp_path / "back")
    assert listing(tmp_path / "back") == listing(src)


# ------------------------------------------------------------ plain FirecREST: transfer jobs


@pytest.fixture
async def plain(transport) -> None:
    info = await transport.fs.info()
    transport.fs._info = dataclasses.replace(info, capabilities=frozenset())


async def test_copy_and_rename_through_transfer_jobs(transport, remote_dir, plain) -> None:
    seed(Path(remote_dir, "src/a"), "a")
    await transport.copy_async(f"{remote_dir}/src", f"{remote_dir}/copy")
    assert Path(remote_dir, "copy/a").read_text() == "a"
    await transport.rename_async(f"{remote_dir}/copy", f"{remote_dir}/moved")
    assert Path(remote_dir, "moved/a").read_text() == "a"
    assert not Path(remote_dir, "copy").exists()
    with pytest.raises(FileNotFoundError):
        await transport.copy_async(f"{remote_dir}/missing", f"{remote_dir}/x")


async def test_gettree_of_an_unreadable_file_fails_loudly(transport, remote_dir, tmp_path, way):
    """Never a silently incomplete copy: whichever way, a file that cannot be read is an
    error."""
    seed(Path(remote_dir, "tree/ok.txt"), "ok")
    unreadable = seed(Path(remote_dir, "tree/sub/secret.txt"), "secret")
    for i in range(10):  # enough entries for the archive way
        seed(Path(remote_dir, f"tree/more/{i}"), str(i))
    unreadable.chmod(0)
    try:
        with pytest.raises(OSError):  # noqa: PT011 (the way decides which OSError)
            await transport.gettree_async(f"{remote_dir}/tree", tmp_path / "down")
    finally:
        unreadable.chmod(0o600)
    no_staging_left(remote_dir, transport.settings.temp_directory)
