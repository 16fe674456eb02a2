"""Moving the *contents* of a directory between AiiDA's machine and the cluster.

Three ways, best first:

1. ``stream``: the server has the ``filesystem.tree`` extension; the tree goes as one tar
   stream in one request, whatever its size.
2. ``archive``: many entries, small enough together for a direct transfer; one archive is made
   on one side, transferred, and unpacked on the other (``ops/compress``/``ops/extract`` on the
   cluster), so a tree costs a handful of requests instead of one per file.
3. ``per-file``: few entries, or too big for one direct transfer; every file is its own
   request, many at a time (the client caps how many).

Both ends must already be directories; the caller has done AiiDA's "copy into or as" logic.
"""

from __future__ import annotations

import asyncio
import logging
import os
import posixpath
from pathlib import Path

from . import local_tar
from .client import FileEntry
from .client.localfiles import scratch_directory
from .client.models import Compression
from .remote import RemoteFileSystem

log = logging.getLogger(__name__)

# Below this many entries, per-file requests cost about as much as making an archive.
ARCHIVE_MIN_ENTRIES = 8
_TAR_BLOCK = 512
_TAR_END = 10240


def archive_fits(entries: int, size: int, limit: int) -> bool:
    """Whether a tar archive of ``entries`` with ``size`` content bytes surely fits ``limit``
    (a header and padding per entry; gzip may grow incompressible data a little)."""
    estimate = (size + 2 * _TAR_BLOCK * (entries + 1) + _TAR_END) * 1.01 + 1024
    return estimate < limit


def choose(*, stream: bool, entries: int, size: int, limit: int) -> str:
    if stream:
        return "stream"
    if entries >= ARCHIVE_MIN_ENTRIES and archive_fits(entries, size, limit):
        return "archive"
    return "per-file"


# ------------------------------------------------------------------------------------ upload


async def put_contents(
    fs: RemoteFileSystem,
    local_dir: str,
    remote_dir: str,
    *,
    dereference: bool = True,
    create: bool = False,
) -> None:
    """With ``create``, ``remote_dir`` does not exist yet and is made here: by the tree
    request itself where the server can (``filesystem.tree.create``), else by a ``mkdir``
    first; ``FileExistsError`` if something is there, ``FileNotFoundError`` if its parent is
    missing."""
    size = await asyncio.to_thread(local_tar.measure, local_dir, dereference=dereference)
    how = choose(
        stream=await fs.has_tree_transfer(),
        entries=size.entries,
        size=size.bytes,
        limit=(await fs.info()).max_ops_file_size,
    )
    log.debug("put %s -> %s: %d entries, %s", local_dir, remote_dir, size.entries, how)
    create_by_tree = create and how == "stream" and size.entries and await fs.has_tree_create()
    if create and not create_by_tree:
        await fs.mkdir(remote_dir)
    if size.entries == 0:
        return
    if how == "per-file":
        await _put_files(fs, local_dir, remote_dir, dereference=dereference)
        return
    async with scratch_directory() as scratch:
        archive = scratch / "tree.tar"
        compression: Compression = "none" if how == "stream" else "gzip"
        await asyncio.to_thread(
            local_tar.build, local_dir, archive, dereference=dereference, compression=compression
        )
        if how == "stream":
            await fs.tree_upload(remote_dir, archive, create=bool(create_by_tree))
            return
        await fs.ensure_staging_directory()
        staged = fs.staging_path(posixpath.join(remote_dir, "x"), ".tar.gz")
        try:
            await fs.upload(archive, staged)
            await fs.extract(staged, remote_dir, compression="gzip")
        finally:
            await fs.remove_quietly(staged)


async def _put_files(
    fs: RemoteFileSystem, local_dir: str, remote_dir: str, *, dereference: bool
) -> None:
    entries = await asyncio.to_thread(local_tar.walk_entries, Path(local_dir), dereference)
    directories: dict[int, list[str]] = {}
    links: list[tuple[str, str]] = []
    files: list[tuple[Path, str]] = []
    for path, arcname in entries:
        remote = posixpath.join(remote_dir, arcname)
        if path.is_symlink() and not dereference:
            links.append((os.readlink(path), remote))
        elif path.is_dir():
            directories.setdefault(arcname.count("/"), []).append(remote)
        else:
            files.append((path, remote))
    # Parents before children; each level in parallel.
    for depth in sorted(directories):
        await asyncio.gather(*(fs.mkdir(d, parents=True) for d in directories[depth]))
    await asyncio.gather(*(fs.upload(path, remote) for path, remote in files))
    for target, link in links:
        if await fs.stat_or_none(link, dereference=False) is not None:
            await fs.rm(link)  # replaced, as an upload replaces a file
        # FirecREST accepts only absolute link targets: a relative one is anchored at the
        # link's directory, which points at the same file.
        absolute = posixpath.normpath(posixpath.join(posixpath.dirname(link), target))
        await fs.symlink(absolute, link)


# ---------------------------------------------------------------------------------- download


async def get_contents(
    fs: RemoteFileSystem, remote_dir: str, local_dir: str, *, dereference: bool = True
) -> None:
    if await fs.has_tree_transfer():
        log.debug("get %s -> %s: stream", remote_dir, local_dir)
        async with scratch_directory() as scratch:
            archive = scratch / "tree.tar"
            await fs.tree_download(remote_dir, archive, dereference=dereference)
            await asyncio.to_thread(local_tar.extract, archive, local_dir)
        return
    entries = await fs.walk(remote_dir, dereference=dereference)
    how = choose(
        stream=False,
        entries=len(entries),
        size=sum(e.size for e in entries if e.is_file),
        limit=(await fs.info()).max_ops_file_size,
    )
    log.debug("get %s -> %s: %d entries, %s", remote_dir, local_dir, len(entries), how)
    if how == "archive":
        try:
            await _get_archive(fs, remote_dir, local_dir, dereference=dereference)
            return
        except PermissionError as exc:
            # No place to stage the archive (a read-only parent directory): go file by file.
            log.info("cannot stage an archive of %s (%s); getting file by file", remote_dir, exc)
    await _get_files(fs, remote_dir, local_dir, entries, dereference=dereference)


async def _get_archive(
    fs: RemoteFileSystem, remote_dir: str, local_dir: str, *, dereference: bool
) -> None:
    await fs.ensure_staging_directory()
    staged = fs.staging_path(remote_dir, ".tar.gz")
    try:
        await fs.compress(remote_dir, staged, compression="gzip", dereference=dereference)
        async with scratch_directory() as scratch:
            archive = scratch / "tree.tar.gz"
            await fs.download(staged, archive)
            # ops/compress names members after the directory: drop that first component.
            await asyncio.to_thread(local_tar.extract, archive, local_dir, strip_components=1)
    finally:
        await fs.remove_quietly(staged)


async def _get_files(
    fs: RemoteFileSystem,
    remote_dir: str,
    local_dir: str,
    entries: list[FileEntry],
    *,
    dereference: bool,
) -> None:
    directories = [os.path.join(local_dir, e.name) for e in entries if e.is_dir]
    await asyncio.to_thread(_make_directories, directories)
    downloads = []
    for entry in entries:
        local = os.path.join(local_dir, entry.name)
        if entry.is_link:
            if dereference:  # still a link after dereferencing: it points nowhere
                log.warning("skipping broken symbolic link %s/%s", remote_dir, entry.name)
            elif entry.link_target:
                await asyncio.to_thread(_replace_with_symlink, entry.link_target, local)
        elif entry.is_file:
            remote = posixpath.join(remote_dir, entry.name)
            downloads.append(fs.download(remote, local, size=entry.size))
        elif not entry.is_dir:
            log.warning("skipping special file %s/%s (type %s)", remote_dir, entry.name, entry.type)
    await asyncio.gather(*downloads)


def _make_directories(paths: list[str]) -> None:
    for path in paths:
        os.makedirs(path, exist_ok=True)


def _replace_with_symlink(target: str, path: str) -> None:
    if os.path.lexists(path):
        os.remove(path)
    os.symlink(target, path)
