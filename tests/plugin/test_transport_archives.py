"""compress/extract with AiiDA's semantics (root_dir, globs, overwrite, dereference, all four tar
formats, strip_components) on top of the server's single-source ops/compress and ops/extract."""

from __future__ import annotations

import dataclasses
import os
import tarfile
from pathlib import Path

import pytest

from .conftest import seed

pytestmark = pytest.mark.stack

FORMATS = ["tar", "tar.gz", "tar.bz2", "tar.xz"]


@pytest.fixture(params=["extensions", "plain"])
async def server_kind(request, transport) -> str:
    """Run against this project's server as it is, and as a plain FirecREST (no extensions)."""
    if request.param == "plain":
        info = await transport.fs.info()
        transport.fs._info = dataclasses.replace(info, capabilities=frozenset())
    return request.param


def members(archive: Path) -> set[str]:
    with tarfile.open(archive, "r:*") as tar:
        return {m.name for m in tar.getmembers()}


def make_root(remote_dir: str) -> Path:
    root = Path(remote_dir, "root")
    seed(root / "a.txt", "a")
    seed(root / "sub/b.txt", "b")
    seed(root / "sub/deeper/c.txt", "c")
    seed(root / ".hidden", "h")
    os.symlink("a.txt", root / "link")
    os.lchown(root / "link", *_alice())
    return root


def _alice() -> tuple[int, int]:
    import pwd

    account = pwd.getpwnam("alice")
    return account.pw_uid, account.pw_gid


@pytest.mark.parametrize("dereference", [False, True])
@pytest.mark.parametrize("fmt", FORMATS)
async def test_compress_glob_of_several_names_and_extract(
    transport, remote_dir, server_kind, fmt, dereference
) -> None:
    root = make_root(remote_dir)
    archive = f"{remote_dir}/out/archive.{fmt}"
    await transport.compress_async(fmt, [f"{root}/*"], archive, str(root), dereference=dereference)
    names = members(Path(archive))
    assert names == {"a.txt", "sub", "sub/b.txt", "sub/deeper", "sub/deeper/c.txt", "link"}
    with tarfile.open(archive, "r:*") as tar:
        link = tar.getmember("link")
        assert link.issym() != dereference
    if fmt != "tar":
        assert Path(archive).read_bytes()[:2] != b"a."  # really compressed, not a plain tar
    await transport.extract_async(archive, f"{remote_dir}/extracted")
    out = Path(remote_dir, "extracted")
    assert (out / "sub/deeper/c.txt").read_text() == "c"
    assert (out / "link").is_symlink() != dereference
    assert (out / "link").read_text() == "a"
    assert not (out / ".hidden").exists()  # `*` does not match hidden names


@pytest.mark.parametrize("fmt", FORMATS)
async def test_compress_one_directory_in_root_dir(transport, remote_dir, server_kind, fmt):
    root = make_root(remote_dir)
    archive = f"{remote_dir}/sub.{fmt}"
    await transport.compress_async(fmt, f"{root}/sub", archive, str(root))
    assert members(Path(archive)) == {"sub", "sub/b.txt", "sub/deeper", "sub/deeper/c.txt"}


async def test_compress_like_aiida_stash_and_unstash(transport, remote_dir, server_kind) -> None:
    """Stash: sources ``workdir/ab/cd/uuid/...`` relative to the AiiDA work root; unstash:
    ``extract(..., strip_components=3)`` into a fresh directory."""
    root = Path(remote_dir, "aiida")
    calc = root / "ab/cd/ef01"
    seed(calc / "aiida.out", "out")
    seed(calc / "results/data.xml", "<xml/>")
    seed(calc / "ignored.tmp", "")
    archive = f"{remote_dir}/stash/1234.tar.gz"
    await transport.compress_async(
        "tar.gz",
        [str(calc / "aiida.out"), str(calc / "results")],
        archive,
        str(root),
        overwrite=False,
    )
    names = members(Path(archive))
    assert {"ab/cd/ef01/aiida.out", "ab/cd/ef01/results/data.xml"} <= names
    assert not any(n.startswith(("./", ".aiida-firecrest")) for n in names)
    assert "ab/cd/ef01/ignored.tmp" not in names
    await transport.mkdir_async(f"{remote_dir}/unstashed")
    seed(Path(remote_dir, "unstashed/results/existing.txt"), "kept")
    await transport.extract_async(archive, f"{remote_dir}/unstashed", strip_components=3)
    out = Path(remote_dir, "unstashed")
    assert (out / "aiida.out").read_text() == "out"
    assert (out / "results/data.xml").read_text() == "<xml/>"
    assert (out / "results/existing.txt").read_text() == "kept"  # directories merge
    assert sorted(os.listdir(out)) == ["aiida.out", "results"]  # no staging left behind


async def test_compress_root_dir_itself(transport, remote_dir) -> None:
    root = make_root(remote_dir)
    archive = f"{remote_dir}/all.tar"
    await transport.compress_async("tar", [str(root)], archive, str(root))
    names = {n.removeprefix("./") for n in members(Path(archive))} - {".", ""}
    assert names == {"a.txt", ".hidden", "link", "sub", "sub/b.txt", "sub/deeper",
                     "sub/deeper/c.txt"}  # fmt: skip


async def test_compress_relative_to_the_root_of_the_file_tree(transport, remote_dir) -> None:
    """root_dir "/" (names are absolute paths without their "/"), although "/" itself is not
    on a file system the API looks at."""
    root = make_root(remote_dir)
    archive = f"{remote_dir}/from-root.tar.gz"
    await transport.compress_async("tar.gz", [f"{root}/a.txt", f"{root}/sub"], archive, "/")
    relative = str(root).lstrip("/")
    assert members(Path(archive)) >= {
        f"{relative}/a.txt",
        f"{relative}/sub/b.txt",
        f"{relative}/sub/deeper/c.txt",
    }
    assert not any(name.startswith("/") for name in members(Path(archive)))


async def test_an_unknown_format_is_refused_before_anything_is_asked(
    transport, remote_dir, requests_made
) -> None:
    with pytest.raises(ValueError, match="Unsupported compression format"):
        await transport.compress_async("zip", [f"{remote_dir}/a"], f"{remote_dir}/x.zip", "/")
    assert requests_made == []


async def test_compress_errors(transport, remote_dir) -> None:
    root = make_root(remote_dir)
    with pytest.raises(OSError, match="does not exist, or is not a directory"):
        await transport.compress_async("tar", [f"{root}/a.txt"], f"{remote_dir}/x.tar",
                                       f"{remote_dir}/missing")  # fmt: skip
    with pytest.raises(OSError, match="is a directory, should include a filename"):
        await transport.compress_async("tar", [f"{root}/a.txt"], str(root), str(root))
    with pytest.raises(ValueError, match="Unsupported compression format"):
        await transport.compress_async("zip", [f"{root}/a.txt"], f"{remote_dir}/x", str(root))
    with pytest.raises(OSError, match="does not exist"):
        await transport.compress_async("tar", [f"{root}/missing"], f"{remote_dir}/x", str(root))
    with pytest.raises(OSError, match="matching file/folder not found"):
        await transport.compress_async("tar", [f"{root}/*.none"], f"{remote_dir}/x", str(root))
    seed(Path(remote_dir, "exists.tar"), "")
    with pytest.raises(OSError, match="already exists"):
        await transport.compress_async(
            "tar", [f"{root}/a.txt"], f"{remote_dir}/exists.tar", str(root), overwrite=False
        )
    await transport.compress_async("tar", [f"{root}/a.txt"], f"{remote_dir}/exists.tar",
                                   str(root))  # fmt: skip
    assert members(Path(remote_dir, "exists.tar")) == {"a.txt"}


async def test_extract_errors(transport, remote_dir) -> None:
    with pytest.raises(OSError, match="does not exist"):
        await transport.extract_async(f"{remote_dir}/missing.tar", f"{remote_dir}/out")
    seed(Path(remote_dir, "not-an-archive.tar"), "just text")
    with pytest.raises(OSError, match="Error while extracting"):
        await transport.extract_async(f"{remote_dir}/not-an-archive.tar", f"{remote_dir}/out")


async def test_extract_without_overwrite_refuses_existing_files(transport, remote_dir) -> None:
    root = make_root(remote_dir)
    archive = f"{remote_dir}/a.tar.gz"
    await transport.compress_async("tar.gz", [f"{root}/a.txt"], archive, str(root))
    await transport.extract_async(archive, f"{remote_dir}/out", overwrite=False)
    assert Path(remote_dir, "out/a.txt").read_text() == "a"
    with pytest.raises(FileExistsError):
        await transport.extract_async(archive, f"{remote_dir}/out", overwrite=False)
    await transport.extract_async(archive, f"{remote_dir}/out")  # overwrite=True: fine
