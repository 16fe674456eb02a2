"""The transport against the real stack, one AiiDA contract item at a time (reference/aiida.md
§6.1): what the engine calls during a CalcJob, with the semantics of ``core.ssh_async``."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from .conftest import open_transport, seed

pytestmark = pytest.mark.stack


@pytest.fixture(params=["extensions", "plain"])
async def transport(request, make_computer):
    """Every contract item against this project's server as it is, and as a plain FirecREST
    (no extensions: copies and moves become transfer jobs, trees go by archive or per file)."""
    async with open_transport(make_computer(), plain=request.param == "plain") as instance:
        yield instance


def write(path: Path, text: str = "content\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# --------------------------------------------------------------------------- identity, shell


async def test_whoami_is_the_posix_user(transport) -> None:
    assert await transport.whoami_async() == "alice"


async def test_exec_is_not_available(transport) -> None:
    with pytest.raises(NotImplementedError):
        await transport.exec_command_wait_async("echo -n")


def test_gotocomputer_without_argument_is_not_available(make_computer) -> None:
    transport = make_computer().get_transport()
    with pytest.raises(NotImplementedError):
        transport.gotocomputer_command()
    with pytest.raises(NotImplementedError):
        transport.gotocomputer_command("/home/alice")


def test_no_safe_open_interval(make_computer) -> None:
    assert make_computer().get_transport().get_safe_open_interval() == 0


async def test_open_twice_and_close_twice_are_errors(make_computer) -> None:
    from aiida.common.exceptions import InvalidOperation

    transport = make_computer().get_transport()
    assert not transport.is_open
    await transport.open_async()
    assert transport.is_open
    with pytest.raises(InvalidOperation):
        await transport.open_async()
    await transport.close_async()
    assert not transport.is_open
    with pytest.raises(InvalidOperation):
        await transport.close_async()


async def test_normalize(transport) -> None:
    assert await transport.normalize_async("/home/alice/a/../b/./c") == "/home/alice/b/c"
    with pytest.raises(OSError, match="relative"):
        await transport.normalize_async("relative/path")


# --------------------------------------------------------------------------- existence checks


async def test_path_exists_isdir_isfile_never_raise(transport, remote_dir) -> None:
    await transport.mkdir_async(f"{remote_dir}/d")
    seed(Path(remote_dir, "f"), "x")
    for path in ("", f"{remote_dir}/missing", f"{remote_dir}/f/below-a-file", "/root/secret"):
        assert await transport.path_exists_async(path) is False
        assert await transport.isdir_async(path) is False
        assert await transport.isfile_async(path) is False
    assert await transport.isdir_async(f"{remote_dir}/d")
    assert not await transport.isfile_async(f"{remote_dir}/d")
    assert await transport.isfile_async(f"{remote_dir}/f")
    assert not await transport.isdir_async(f"{remote_dir}/f")
    assert await transport.path_exists_async(f"{remote_dir}/f")


# ---------------------------------------------------------------------------------- mkdir


async def test_mkdir_raises_on_an_existing_path(transport, remote_dir) -> None:
    await transport.mkdir_async(f"{remote_dir}/d")
    assert Path(remote_dir, "d").is_dir()
    with pytest.raises(FileExistsError, match="File exists"):  # an OSError, as AiiDA needs
        await transport.mkdir_async(f"{remote_dir}/d")
    await transport.mkdir_async(f"{remote_dir}/d", ignore_existing=True)
    seed(Path(remote_dir, "file"), "")
    with pytest.raises(FileExistsError):  # an existing file is not an existing directory
        await transport.mkdir_async(f"{remote_dir}/file", ignore_existing=True)


async def test_mkdir_needs_the_parent(transport, remote_dir) -> None:
    with pytest.raises(FileNotFoundError):
        await transport.mkdir_async(f"{remote_dir}/no/such/parent")


async def test_makedirs(transport, remote_dir) -> None:
    await transport.makedirs_async(f"{remote_dir}/a/b/c")
    assert Path(remote_dir, "a/b/c").is_dir()
    with pytest.raises(FileExistsError):
        await transport.makedirs_async(f"{remote_dir}/a/b")
    await transport.makedirs_async(f"{remote_dir}/a/b", ignore_existing=True)
    await transport.makedirs_async(f"{remote_dir}/a/b/c/d", ignore_existing=True)
    assert Path(remote_dir, "a/b/c/d").is_dir()
    # ignore_existing forgives an existing directory, never an existing file.
    await transport.putfile_async(__file__, f"{remote_dir}/a/file")
    with pytest.raises(FileExistsError, match="a/file': File exists"):
        await transport.makedirs_async(f"{remote_dir}/a/file", ignore_existing=True)
    with pytest.raises(FileExistsError, match="a/file': File exists"):
        await transport.makedirs_async(f"{remote_dir}/a/file/below", ignore_existing=True)
    assert Path(remote_dir, "a/file").is_file()


# ------------------------------------------------------------------------------- put / get


async def test_put_and_get_a_file(transport, remote_dir, tmp_path) -> None:
    local = write(tmp_path / "in.txt", "Viva Verdi\n")
    await transport.put_async(local, f"{remote_dir}/remote.txt")
    assert Path(remote_dir, "remote.txt").read_text() == "Viva Verdi\n"
    await transport.get_async(f"{remote_dir}/remote.txt", tmp_path / "back.txt")
    assert (tmp_path / "back.txt").read_text() == "Viva Verdi\n"
    # into an existing directory: keeps its name
    await transport.mkdir_async(f"{remote_dir}/sub")
    await transport.put_async(str(local), f"{remote_dir}/sub")
    assert Path(remote_dir, "sub/in.txt").is_file()
    (tmp_path / "down").mkdir()
    await transport.get_async(f"{remote_dir}/sub/in.txt", str(tmp_path / "down"))
    assert (tmp_path / "down/in.txt").read_text() == "Viva Verdi\n"


async def test_putfile_and_getfile_overwrite(transport, remote_dir, tmp_path) -> None:
    local = write(tmp_path / "a", "one")
    await transport.putfile_async(local, f"{remote_dir}/a")
    write(local, "two")
    await transport.putfile_async(local, f"{remote_dir}/a")
    assert Path(remote_dir, "a").read_text() == "two"
    with pytest.raises(OSError, match="not overwriting"):
        await transport.putfile_async(local, f"{remote_dir}/a", overwrite=False)
    await transport.getfile_async(f"{remote_dir}/a", tmp_path / "b")
    with pytest.raises(OSError, match="not overwriting"):
        await transport.getfile_async(f"{remote_dir}/a", tmp_path / "b", overwrite=False)


async def test_zero_byte_files(transport, remote_dir, tmp_path) -> None:
    local = tmp_path / "empty"
    local.touch()
    await transport.putfile_async(local, f"{remote_dir}/empty")
    remote = Path(remote_dir, "empty")
    assert remote.is_file()
    assert remote.stat().st_size == 0
    await transport.getfile_async(f"{remote_dir}/empty", tmp_path / "empty-back")
    assert (tmp_path / "empty-back").read_bytes() == b""
    (tmp_path / "tree").mkdir()
    (tmp_path / "tree/zero").touch()
    await transport.puttree_async(tmp_path / "tree", f"{remote_dir}/tree")
    assert Path(remote_dir, "tree/zero").stat().st_size == 0
    await transport.gettree_async(f"{remote_dir}/tree", tmp_path / "tree-back")
    assert (tmp_path / "tree-back/zero").read_bytes() == b""


async def test_binary_content_round_trip(transport, remote_dir, tmp_path) -> None:
    data = bytes(range(256)) * 1000 + b"\x00\xff\xfe"
    local = tmp_path / "blob"
    local.write_bytes(data)
    await transport.putfile_async(local, f"{remote_dir}/blob")
    assert Path(remote_dir, "blob").read_bytes() == data
    await transport.getfile_async(f"{remote_dir}/blob", tmp_path / "blob-back")
    assert (tmp_path / "blob-back").read_bytes() == data


async def test_put_get_argument_errors(transport, remote_dir, tmp_path) -> None:
    local = write(tmp_path / "f")
    with pytest.raises(ValueError, match="absolute"):
        await transport.put_async("relative.txt", f"{remote_dir}/x")
    with pytest.raises(ValueError, match="absolute"):
        await transport.putfile_async("relative.txt", f"{remote_dir}/x")
    with pytest.raises(OSError, match="absolute"):
        await transport.put_async(local, "")
    with pytest.raises(FileNotFoundError):
        await transport.putfile_async(tmp_path / "missing", f"{remote_dir}/x")
    with pytest.raises(OSError, match="does not exist"):
        await transport.put_async(tmp_path / "missing", f"{remote_dir}/x")
    await transport.put_async(tmp_path / "missing", f"{remote_dir}/x", ignore_nonexisting=True)
    with pytest.raises(OSError, match="does not exist"):
        await transport.get_async(f"{remote_dir}/missing", tmp_path / "y")
    with pytest.raises(FileNotFoundError):
        await transport.getfile_async(f"{remote_dir}/missing", tmp_path / "y")
    with pytest.raises(OSError, match="not a folder"):
        await transport.gettree_async(f"{remote_dir}/missing", tmp_path / "y")
    await transport.get_async(f"{remote_dir}/missing", tmp_path / "y", ignore_nonexisting=True)
    assert not (tmp_path / "y").exists()
    with pytest.raises(ValueError, match="absolute"):
        await transport.get_async(f"{remote_dir}/x", "relative")
    with pytest.raises(OSError, match="non empty"):
        await transport.get_async("", tmp_path / "y")


def _tree(root: Path) -> None:
    write(root / "a.txt", "a")
    write(root / "sub/b.txt", "b")
    write(root / "sub/deeper/c.txt", "c")
    (root / "empty-dir").mkdir()


def _listing(root: Path) -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        found[rel] = path.read_text() if path.is_file() else None
    return found


EXPECTED_TREE = {
    "a.txt": "a",
    "empty-dir": None,
    "sub": None,
    "sub/b.txt": "b",
    "sub/deeper": None,
    "sub/deeper/c.txt": "c",
}


async def test_puttree_into_missing_and_existing_destinations(transport, remote_dir, tmp_path):
    _tree(tmp_path / "src")
    # missing destination: created, with the contents
    await transport.put_async(tmp_path / "src", f"{remote_dir}/new")
    assert _listing(Path(remote_dir, "new")) == EXPECTED_TREE
    # existing destination: copied into it, under the source's name
    await transport.mkdir_async(f"{remote_dir}/existing")
    await transport.put_async(tmp_path / "src", f"{remote_dir}/existing")
    assert _listing(Path(remote_dir, "existing/src")) == EXPECTED_TREE
    # trailing slash: the contents merge into the existing destination
    await transport.mkdir_async(f"{remote_dir}/merged")
    seed(Path(remote_dir, "merged/kept.txt"), "kept")
    await transport.put_async(f"{tmp_path / 'src'}/", f"{remote_dir}/merged")
    assert _listing(Path(remote_dir, "merged")) == {**EXPECTED_TREE, "kept.txt": "kept"}
    # puttree onto a file, and overwrite=False onto an existing directory
    seed(Path(remote_dir, "a-file"), "")
    with pytest.raises(OSError, match="into a file"):
        await transport.puttree_async(tmp_path / "src", f"{remote_dir}/a-file")
    with pytest.raises(OSError, match="overwrite"):
        await transport.puttree_async(tmp_path / "src", f"{remote_dir}/new", overwrite=False)


async def test_gettree_into_missing_and_existing_destinations(transport, remote_dir, tmp_path):
    _tree(tmp_path / "src")
    await transport.puttree_async(tmp_path / "src", f"{remote_dir}/tree")
    await transport.get_async(f"{remote_dir}/tree", tmp_path / "new")
    assert _listing(tmp_path / "new") == EXPECTED_TREE
    (tmp_path / "existing").mkdir()
    await transport.get_async(f"{remote_dir}/tree", tmp_path / "existing")
    assert _listing(tmp_path / "existing/tree") == EXPECTED_TREE
    (tmp_path / "merged").mkdir()
    write(tmp_path / "merged/kept.txt", "kept")
    await transport.get_async(f"{remote_dir}/tree/", tmp_path / "merged")
    assert _listing(tmp_path / "merged") == {**EXPECTED_TREE, "kept.txt": "kept"}
    write(tmp_path / "a-file")
    with pytest.raises(OSError, match="into a file"):
        await transport.gettree_async(f"{remote_dir}/tree", tmp_path / "a-file")
    with pytest.raises(OSError, match="overwrite"):
        await transport.gettree_async(f"{remote_dir}/tree", tmp_path / "new", overwrite=False)


async def test_put_overwrites_files_in_existing_tree(transport, remote_dir, tmp_path) -> None:
    write(tmp_path / "local/file.txt", "New verdi")
    await transport.makedirs_async(f"{remote_dir}/target/local")
    seed(Path(remote_dir, "target/local/file.txt"), "Old verdi")
    await transport.puttree_async(tmp_path / "local", f"{remote_dir}/target")
    assert Path(remote_dir, "target/local/file.txt").read_text() == "New verdi"


async def test_engine_local_copy_list_pattern(transport, remote_dir, tmp_path) -> None:
    """``put(f'{tmpdir}/', workdir, overwrite=True)``: the engine's local_copy_list."""
    write(tmp_path / "folderdata/x/y.txt", "y")
    await transport.put_async(f"{tmp_path / 'folderdata'}/", remote_dir, overwrite=True)
    assert Path(remote_dir, "x/y.txt").read_text() == "y"


async def test_get_with_glob(transport, remote_dir, tmp_path) -> None:
    for name in ("a.txt", "b.tmp", "c.txt"):
        seed(Path(remote_dir, name), name)
    dest = tmp_path / "dest"
    dest.mkdir()
    await transport.get_async(f"{remote_dir}/*.txt", dest)
    assert sorted(os.listdir(dest)) == ["a.txt", "c.txt"]
    await transport.get_async(f"{remote_dir}/*.tmp", tmp_path / "single")
    assert (tmp_path / "single").read_text() == "b.tmp"
    with pytest.raises(OSError, match="not a directory"):  # several files onto one file
        await transport.get_async(f"{remote_dir}/*.txt", tmp_path / "single")
    await transport.get_async(f"{remote_dir}/*.nothing", dest)  # no match: nothing happens


async def test_put_with_glob(transport, remote_dir, tmp_path) -> None:
    for name in ("a.txt", "b.tmp", "c.txt"):
        write(tmp_path / "src" / name, name)
    await transport.put_async(tmp_path / "src/*.txt", remote_dir)
    assert sorted(os.listdir(remote_dir)) == ["a.txt", "c.txt"]
    with pytest.raises(OSError, match="not a directory"):
        await transport.put_async(tmp_path / "src/*.txt", f"{remote_dir}/a.txt")


# ------------------------------------------------------------------------------------ glob


async def test_glob(transport, remote_dir) -> None:
    for name in ("a.txt", "b.txt", ".hidden.txt", "sub/c.txt", "sub2/d.txt", "other/e.dat"):
        seed(Path(remote_dir, name))
    assert sorted(await transport.glob_async(f"{remote_dir}/*.txt")) == [
        f"{remote_dir}/a.txt",
        f"{remote_dir}/b.txt",
    ]
    assert await transport.glob_async(f"{remote_dir}/.h*") == [f"{remote_dir}/.hidden.txt"]
    assert sorted(await transport.glob_async(f"{remote_dir}/sub*/*.txt")) == [
        f"{remote_dir}/sub/c.txt",
        f"{remote_dir}/sub2/d.txt",
    ]
    assert await transport.glob_async(f"{remote_dir}/[a]?txt") == [f"{remote_dir}/a.txt"]
    assert await transport.glob_async(f"{remote_dir}/*.nothing") == []
    assert await transport.glob_async(f"{remote_dir}/missing/*") == []
    assert await transport.glob_async(f"{remote_dir}/a.txt") == [f"{remote_dir}/a.txt"]
    assert await transport.glob_async(f"{remote_dir}/missing") == []


# ------------------------------------------------------------------------------ listing


async def test_listdir_with_pattern(transport, remote_dir) -> None:
    for name in ("1", "-f a&", "as", "a2", "a4f"):
        await transport.mkdir_async(f"{remote_dir}/{name}")
    for name in ("a", "b", ".dot"):
        seed(Path(remote_dir, name))
    assert sorted(await transport.listdir_async(remote_dir)) == sorted(
        ["1", "-f a&", "as", "a2", "a4f", "a", "b", ".dot"]
    )
    assert sorted(await transport.listdir_async(remote_dir, "a*")) == ["a", "a2", "a4f", "as"]
    assert sorted(await transport.listdir_async(remote_dir, "a?")) == ["a2", "as"]
    assert sorted(await transport.listdir_async(remote_dir, "a[2-4]*")) == ["a2", "a4f"]
    assert await transport.listdir_async(remote_dir, ".d*") == [".dot"]
    with pytest.raises(NotADirectoryError):
        await transport.listdir_async(f"{remote_dir}/a")
    with pytest.raises(FileNotFoundError):
        await transport.listdir_async(f"{remote_dir}/missing")


async def test_listdir_follows_a_symlinked_directory(transport, remote_dir) -> None:
    await transport.mkdir_async(f"{remote_dir}/real")
    seed(Path(remote_dir, "real/inside"), "")
    await transport.symlink_async(f"{remote_dir}/real", f"{remote_dir}/link")
    assert await transport.listdir_async(f"{remote_dir}/link") == ["inside"]


async def test_listdir_withattributes(transport, remote_dir) -> None:
    await transport.mkdir_async(f"{remote_dir}/dir")
    seed(Path(remote_dir, "file"), "12345")
    await transport.symlink_async(f"{remote_dir}/dir", f"{remote_dir}/dirlink")
    found = {e["name"]: e for e in await transport.listdir_withattributes_async(remote_dir)}
    assert set(found) == {"dir", "file", "dirlink"}
    assert [found[n]["isdir"] for n in ("dir", "dirlink", "file")] == [True, True, False]
    assert found["file"]["attributes"]["st_size"] == 5
    assert stat.S_ISREG(found["file"]["attributes"]["st_mode"])
    assert stat.S_ISLNK(found["dirlink"]["attributes"]["st_mode"])
    assert found["file"]["attributes"]["st_uid"] == os.stat(Path(remote_dir, "file")).st_uid
    on_disk = os.stat(Path(remote_dir, "file")).st_mtime
    assert abs(found["file"]["attributes"]["st_mtime"] - on_disk) < 2
    only = await transport.listdir_withattributes_async(remote_dir, "fi*")
    assert [e["name"] for e in only] == ["file"]


async def test_get_attribute(transport, remote_dir) -> None:
    seed(Path(remote_dir, "f"), "hello")
    os.chmod(Path(remote_dir, "f"), 0o640)
    attributes = await transport.get_attribute_async(f"{remote_dir}/f")
    on_disk = os.lstat(Path(remote_dir, "f"))
    assert attributes.st_size == 5
    assert attributes.st_mode == on_disk.st_mode
    assert attributes.st_uid == on_disk.st_uid
    assert attributes.st_gid == on_disk.st_gid
    assert attributes.st_mtime == int(on_disk.st_mtime)
    assert await transport.get_mode_async(f"{remote_dir}/f") == 0o640
    with pytest.raises(FileNotFoundError):
        await transport.get_attribute_async(f"{remote_dir}/missing")


# ----------------------------------------------------------------------- chmod and removing


async def test_chmod(transport, remote_dir) -> None:
    await transport.mkdir_async(f"{remote_dir}/d")
    await transport.chmod_async(f"{remote_dir}/d", 0o777)
    assert stat.S_IMODE(os.stat(Path(remote_dir, "d")).st_mode) == 0o777
    await transport.chmod_async(f"{remote_dir}/d", 0o511)
    assert await transport.get_mode_async(f"{remote_dir}/d") == 0o511
    seed(Path(remote_dir, "exe"), "#!/bin/sh\n")
    await transport.chmod_async(f"{remote_dir}/exe", 0o755)  # PortableCode
    assert stat.S_IMODE(os.stat(Path(remote_dir, "exe")).st_mode) == 0o755
    with pytest.raises(OSError, match="empty"):
        await transport.chmod_async("", 0o777)
    with pytest.raises(FileNotFoundError):
        await transport.chmod_async(f"{remote_dir}/missing", 0o777)
    await transport.chmod_async(f"{remote_dir}/d", 0o755)


async def test_remove_rmdir_rmtree(transport, remote_dir) -> None:
    await transport.makedirs_async(f"{remote_dir}/tree/sub")
    seed(Path(remote_dir, "tree/sub/file"), "")
    with pytest.raises(OSError, match="not empty"):
        await transport.rmdir_async(f"{remote_dir}/tree")
    with pytest.raises(IsADirectoryError):
        await transport.remove_async(f"{remote_dir}/tree")
    await transport.remove_async(f"{remote_dir}/tree/sub/file")
    assert not Path(remote_dir, "tree/sub/file").exists()
    await transport.rmdir_async(f"{remote_dir}/tree/sub")
    assert not Path(remote_dir, "tree/sub").exists()
    await transport.makedirs_async(f"{remote_dir}/tree/a/b")
    await transport.rmtree_async(f"{remote_dir}/tree")
    assert not Path(remote_dir, "tree").exists()
    with pytest.raises(FileNotFoundError):
        await transport.rmtree_async(f"{remote_dir}/tree")


async def test_rename(transport, remote_dir) -> None:
    seed(Path(remote_dir, "old"), "x")
    await transport.rename_async(f"{remote_dir}/old", f"{remote_dir}/new")
    assert Path(remote_dir, "new").read_text() == "x"
    assert not Path(remote_dir, "old").exists()
    seed(Path(remote_dir, "other"), "")
    with pytest.raises(OSError, match="destination exists"):  # never over an existing path
        await transport.rename_async(f"{remote_dir}/new", f"{remote_dir}/other")
    with pytest.raises(FileNotFoundError):
        await transport.rename_async(f"{remote_dir}/missing", f"{remote_dir}/x")
    with pytest.raises(ValueError, match="non-empty"):
        await transport.rename_async("", f"{remote_dir}/x")


# -------------------------------------------------------------------------- remote copies


async def test_copy_files_and_directories(transport, remote_dir) -> None:
    for name in ("a.txt", "b.tmp", "c.txt"):
        seed(Path(remote_dir, "local", name), name)
    await transport.copy_async(f"{remote_dir}/local/*.txt", remote_dir)  # glob into a dir
    assert sorted(os.listdir(remote_dir)) == ["a.txt", "c.txt", "local"]
    await transport.copy_async(f"{remote_dir}/local", f"{remote_dir}/prova")  # dir as new name
    assert sorted(os.listdir(Path(remote_dir, "prova"))) == ["a.txt", "b.tmp", "c.txt"]
    await transport.copy_async(f"{remote_dir}/local", f"{remote_dir}/prova")  # into existing
    assert Path(remote_dir, "prova/local/b.tmp").is_file()
    await transport.copy_async(f"{remote_dir}/local/*.tmp", f"{remote_dir}/single")  # 1 match
    assert Path(remote_dir, "single").read_text() == "b.tmp"
    with pytest.raises(OSError, match="more than one file"):  # several matches onto one file
        await transport.copy_async(f"{remote_dir}/local/*.txt", f"{remote_dir}/single")
    await transport.copyfile_async(f"{remote_dir}/local/a.txt", f"{remote_dir}/copied")
    assert Path(remote_dir, "copied").read_text() == "a.txt"
    with pytest.raises(IsADirectoryError):
        await transport.copyfile_async(f"{remote_dir}/local", f"{remote_dir}/x")
    await transport.copytree_async(f"{remote_dir}/local", f"{remote_dir}/tree-copy")
    assert Path(remote_dir, "tree-copy/c.txt").is_file()
    with pytest.raises(ValueError, match="non empty"):
        await transport.copy_async(f"{remote_dir}/local", "")
    with pytest.raises(ValueError, match="non empty"):
        await transport.copy_async("", f"{remote_dir}/x")


async def test_copy_engine_remote_copy_list(transport, remote_dir) -> None:
    """aiida-shell's RemoteData input: ``copy('…/remote/*', workdir/'.')``."""
    seed(Path(remote_dir, "remote/in1"), "1")
    seed(Path(remote_dir, "remote/sub/in2"), "2")
    await transport.mkdir_async(f"{remote_dir}/workdir")
    await transport.copy_async(f"{remote_dir}/remote/*", f"{remote_dir}/workdir/.")
    assert Path(remote_dir, "workdir/in1").read_text() == "1"
    assert Path(remote_dir, "workdir/sub/in2").read_text() == "2"


async def test_copy_of_a_missing_source_is_file_not_found(transport, remote_dir) -> None:
    with pytest.raises(FileNotFoundError):
        await transport.copy_async(f"{remote_dir}/missing", f"{remote_dir}/x")
    with pytest.raises(FileNotFoundError):
        await transport.copy_async(f"{remote_dir}/missing*", f"{remote_dir}/x")


async def test_copy_keeps_mode(transport, remote_dir) -> None:
    await transport.mkdir_async(f"{remote_dir}/d")
    await transport.chmod_async(f"{remote_dir}/d", 0o750)
    await transport.copy_async(f"{remote_dir}/d", f"{remote_dir}/d2")
    assert stat.S_IMODE(os.stat(Path(remote_dir, "d2")).st_mode) == 0o750


# ---------------------------------------------------------------------------- symlinks


async def test_symlink_single_and_glob(transport, remote_dir) -> None:
    seed(Path(remote_dir, "src/a"), "a")
    seed(Path(remote_dir, "src/b"), "b")
    await transport.symlink_async(f"{remote_dir}/src/a", f"{remote_dir}/link-a")
    assert os.readlink(Path(remote_dir, "link-a")) == f"{remote_dir}/src/a"
    await transport.mkdir_async(f"{remote_dir}/links")
    await transport.symlink_async(f"{remote_dir}/src/*", f"{remote_dir}/links")
    assert sorted(os.listdir(Path(remote_dir, "links"))) == ["a", "b"]
    assert os.readlink(Path(remote_dir, "links/b")) == f"{remote_dir}/src/b"
    with pytest.raises(ValueError, match="patterns"):
        await transport.symlink_async(f"{remote_dir}/src/*", f"{remote_dir}/links/*")


# ------------------------------------------------------------------------ remote to remote


async def test_copy_from_remote_to_remote(transport, remote_dir, make_computer) -> None:
    seed(Path(remote_dir, "from/x.txt"), "x")
    destination = make_computer().get_transport()
    await destination.open_async()
    try:
        await transport.copy_from_remote_to_remote_async(
            destination, f"{remote_dir}/from", f"{remote_dir}/to"
        )
    finally:
        await destination.close_async()
    assert Path(remote_dir, "to/x.txt").read_text() == "x"
