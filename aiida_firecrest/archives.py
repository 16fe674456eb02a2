"""AiiDA's ``compress``/``extract`` on top of FirecREST's single-source ``ops/compress`` and
``ops/extract``.

AiiDA means ``tar -c -f DEST -C ROOT_DIR REL...`` (many sources, names relative to ``root_dir``)
and ``tar -x --strip-components N -f SRC -C DEST``. FirecREST offers
``tar -c -C dirname(SRC) basename(SRC)`` (one source, named after itself) and ``tar -x``. So:

* one source directly in ``root_dir``: one ``ops/compress``, names are already right;
* sources under one top-level name (AiiDA's stash: ``ab/cd/uuid/...``): they are staged as
  ``STAGE/ab/cd/uuid/...`` (symbolic links when dereferencing, copies otherwise) and
  ``STAGE/ab`` is compressed;
* sources under several top-level names: staged likewise, ``STAGE`` is archived, and the
  archive is rewritten locally without its first name component;
* extract with ``strip_components`` (or ``overwrite=False``): unpacked into a staging directory
  inside the destination, then its entries at the right depth are moved into place.

Failures are ``OSError`` (never ``NotImplementedError``), which AiiDA's stash step handles.
"""

from __future__ import annotations

import asyncio
import posixpath
from collections.abc import Awaitable, Callable
from pathlib import PurePosixPath

from . import local_tar
from .client.localfiles import scratch_directory
from .client.models import Compression
from .remote import RemoteFileSystem
from .remote_glob import has_magic

FORMATS: dict[str, Compression] = {
    "tar": "none",
    "tar.gz": "gzip",
    "tar.bz2": "bzip2",
    "tar.xz": "xz",
}

GlobFunction = Callable[[str], Awaitable[list[str]]]


# ----------------------------------------------------------------------------------- compress


async def compress(
    fs: RemoteFileSystem,
    glob: GlobFunction,
    format: str,
    sources: list[str],
    destination: str,
    root_dir: str,
    *,
    overwrite: bool = True,
    dereference: bool = False,
) -> None:
    if format not in FORMATS:
        raise ValueError(f"Unsupported compression format: {format}")
    root_dir = posixpath.normpath(root_dir)
    destination = posixpath.normpath(destination)
    root_is_dir, target = await asyncio.gather(
        _is_root_directory(fs, root_dir), fs.stat_or_none(destination)
    )
    if not root_is_dir:
        raise OSError(f"The relative root {root_dir} does not exist, or is not a directory.")
    if target is not None and target.is_dir:
        raise OSError(
            f"The remote destination {destination} is a directory, should include a filename."
        )
    if not overwrite and target is not None:
        raise OSError(f"The remote destination {destination} already exists.")
    compression = FORMATS[format]

    items = await _expand(fs, glob, sources)
    relative = _relative_names(items, root_dir)
    await fs.mkdir(posixpath.dirname(destination) or "/", parents=True)
    try:
        await _compress(fs, relative, root_dir, destination, compression, dereference)
    except OSError as exc:
        raise OSError(f"Error while creating the tar archive: {exc}") from exc


async def _is_root_directory(fs: RemoteFileSystem, root_dir: str) -> bool:
    # "/" is a directory everywhere, though FirecREST answers only for paths inside the system's
    # file systems: archive names relative to "/" (AiiDA's generic example) need no look.
    if not root_dir.strip("/"):  # "/", or "//", which normpath keeps as it is
        return True
    root = await fs.stat_or_none(root_dir)
    return root is not None and root.is_dir


async def _expand(fs: RemoteFileSystem, glob: GlobFunction, sources: list[str]) -> list[str]:
    items: list[str] = []
    for source in sources:
        if has_magic(source):
            matches = await glob(source)
            if not matches:
                raise OSError(
                    f"Either the remote path {source} does not exist, "
                    "or a matching file/folder not found."
                )
            items += matches
        elif await fs.stat_or_none(source, dereference=False) is None:
            raise OSError(f"The remote path {source} does not exist")
        else:
            items.append(source)
    return items


def _relative_names(items: list[str], root_dir: str) -> list[str]:
    """Names relative to ``root_dir``, without duplicates or names inside other names (tar
    would store those twice)."""
    names: list[str] = []
    for item in items:
        # ValueError for a source outside root_dir, as tar -C would not find it either.
        name = PurePosixPath(posixpath.normpath(item)).relative_to(root_dir).as_posix()
        if name not in names:
            names.append(name)
    return [
        n
        for n in names
        if not any(n != other and (other == "." or n.startswith(other + "/")) for other in names)
    ]


async def _compress(
    fs: RemoteFileSystem,
    names: list[str],
    root_dir: str,
    destination: str,
    compression: Compression,
    dereference: bool,
) -> None:
    tops = {name.split("/")[0] for name in names}
    if len(names) == 1 and "/" not in names[0] and names[0] != ".":
        await fs.compress(
            posixpath.join(root_dir, names[0]),
            destination,
            compression=compression,
            dereference=dereference,
        )
        return
    await fs.ensure_staging_directory()
    stage = fs.staging_path(destination)
    await fs.mkdir(stage)
    try:
        await _stage(fs, names, root_dir, stage, destination, dereference)
        if len(tops) == 1 and "." not in tops:
            (top,) = tops
            await fs.compress(
                posixpath.join(stage, top),
                destination,
                compression=compression,
                dereference=dereference,
            )
        else:
            await _compress_via_local_repack(fs, stage, destination, compression, dereference)
    finally:
        await fs.remove_quietly(stage)


async def _stage(
    fs: RemoteFileSystem,
    names: list[str],
    root_dir: str,
    stage: str,
    destination: str,
    dereference: bool,
) -> None:
    """Recreate ``root_dir/NAME`` as ``stage/NAME`` for each name: links when tar will follow
    links anyway, exact copies when it must keep them."""
    if names == ["."]:
        # Everything in root_dir, except what this very operation is writing there.
        own = {posixpath.basename(stage), posixpath.basename(destination)}
        names = [e.name for e in await fs.listdir(root_dir) if e.name not in own]
    parents = sorted({posixpath.dirname(n) for n in names if "/" in n})
    for parent in parents:
        await fs.mkdir(posixpath.join(stage, parent), parents=True)
    for name in names:
        source, staged = posixpath.join(root_dir, name), posixpath.join(stage, name)
        if dereference:
            await fs.symlink(source, staged)
        else:
            await fs.cp(source, staged, dereference=False)


async def _compress_via_local_repack(
    fs: RemoteFileSystem,
    stage: str,
    destination: str,
    compression: Compression,
    dereference: bool,
) -> None:
    """Several top-level names: the server can only name members after one directory, so the
    stage is archived as a whole and the archive rewritten here without that first name."""
    async with scratch_directory() as scratch:
        fetched, rewritten = scratch / "stage.tar", scratch / "archive.tar"
        if await fs.has_tree_transfer():
            await fs.tree_download(stage, fetched, dereference=dereference)
            strip = 0  # members are ./NAME..., and "./" is not a component
        else:
            staged_archive = fs.staging_path(destination, ".tar")
            try:
                await fs.compress(
                    stage, staged_archive, compression="none", dereference=dereference
                )
                await fs.download(staged_archive, fetched)
            finally:
                await fs.remove_quietly(staged_archive)
            strip = 1
        await asyncio.to_thread(
            local_tar.repack, fetched, rewritten, compression=compression, strip_components=strip
        )
        await fs.upload(rewritten, destination)


# ------------------------------------------------------------------------------------ extract


async def extract(
    fs: RemoteFileSystem,
    source: str,
    destination: str,
    *,
    overwrite: bool = True,
    strip_components: int = 0,
) -> None:
    source = posixpath.normpath(source)
    destination = posixpath.normpath(destination)
    if strip_components < 0:
        raise ValueError("strip_components must not be negative")
    if await fs.stat_or_none(source) is None:
        raise OSError(f"The remote path {source} does not exist")
    await fs.mkdir(destination, parents=True)
    try:
        compression = await fs.compression_of(source)
        if strip_components == 0 and overwrite:
            await fs.extract(source, destination, compression=compression)
            return
        await _extract_via_stage(fs, source, destination, compression, overwrite, strip_components)
    except FileExistsError:
        raise
    except OSError as exc:
        raise OSError(f"Error while extracting the tar archive: {exc}") from exc


async def _extract_via_stage(
    fs: RemoteFileSystem,
    source: str,
    destination: str,
    compression: Compression,
    overwrite: bool,
    strip_components: int,
) -> None:
    # Inside the destination, so that moving entries into place is a rename, not a copy.
    stage = posixpath.join(destination, posixpath.basename(fs.staging_path(destination)))
    await fs.mkdir(stage)
    try:
        await fs.extract(source, stage, compression=compression)
        entries = await fs.walk(stage, dereference=False)
        children: dict[str, list[str]] = {}
        kinds: dict[str, bool] = {}
        for entry in entries:
            parent = posixpath.dirname(entry.name)
            children.setdefault(parent, []).append(entry.name)
            kinds[entry.name] = entry.is_dir
        depth = strip_components
        level = [name for name in kinds if name.count("/") == depth]
        for name in level:
            target = posixpath.join(destination, posixpath.basename(name))
            await _merge(fs, stage, name, target, children, kinds, overwrite)
    finally:
        await fs.remove_quietly(stage)


async def _merge(
    fs: RemoteFileSystem,
    stage: str,
    name: str,
    target: str,
    children: dict[str, list[str]],
    kinds: dict[str, bool],
    overwrite: bool,
) -> None:
    """Move ``stage/name`` to ``target`` the way ``tar -x`` would have written it there:
    directories merge, files replace (or, without ``overwrite``, refuse)."""
    source = posixpath.join(stage, name)
    existing = await fs.stat_or_none(target, dereference=False)
    if existing is None:
        await fs.mv(source, target)
        return
    if kinds[name] and existing.is_dir:
        for child in children.get(name, []):
            child_target = posixpath.join(target, posixpath.basename(child))
            await _merge(fs, stage, child, child_target, children, kinds, overwrite)
        return
    if not overwrite:
        raise FileExistsError(f"{target} already exists and overwrite is False")
    await fs.rm(target)
    await fs.mv(source, target)
