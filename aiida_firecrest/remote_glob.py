"""``glob`` over the API: the standard library's algorithm, with one ``ls`` per directory level.

Semantics follow ``glob.glob`` (not recursive: ``**`` is ``*``): a name starting with ``.`` is
matched only by a pattern starting with ``.``; a pattern ending in ``/`` matches directories
only; a path without wildcards is returned if it exists (broken symlinks included). Nothing
matching gives ``[]``.
"""

from __future__ import annotations

import asyncio
import fnmatch
import posixpath
import re

from .client import FirecrestError
from .remote import ABSENT, RemoteFileSystem

_MAGIC = re.compile(r"[*?[]")


def has_magic(path: str) -> bool:
    return _MAGIC.search(path) is not None


async def glob(fs: RemoteFileSystem, pathname: str) -> list[str]:
    if not pathname.startswith("/"):
        raise ValueError(f"glob patterns must be absolute paths: {pathname}")
    return await _glob(fs, pathname, dironly=False)


async def _glob(fs: RemoteFileSystem, pathname: str, *, dironly: bool) -> list[str]:
    dirname, basename = posixpath.split(pathname)
    if not has_magic(pathname):
        if basename:
            return [pathname] if await _lexists(fs, pathname) else []
        return [pathname] if await fs.isdir(dirname) else []
    if dirname != pathname and has_magic(dirname):
        directories = await _glob(fs, dirname, dironly=True)
    else:
        directories = [dirname]
    if has_magic(basename):
        matches = await asyncio.gather(
            *(_matching_names(fs, d, basename, dironly) for d in directories)
        )
    else:
        matches = await asyncio.gather(*(_literal_name(fs, d, basename) for d in directories))
    return [
        posixpath.join(directory, name)
        for directory, names in zip(directories, matches, strict=True)
        for name in names
    ]


async def _lexists(fs: RemoteFileSystem, path: str) -> bool:
    return await fs.stat_or_none(path, dereference=False) is not None


async def _matching_names(
    fs: RemoteFileSystem, directory: str, pattern: str, dironly: bool
) -> list[str]:
    try:
        # Dereferenced, so that a symlink to a directory counts as a directory.
        entries = await fs.client.ls(fs.system, directory or "/", dereference=True)
    except ABSENT:
        return []
    except FirecrestError as exc:
        if exc.status_code == 400:  # outside the system's file systems: nothing matches there
            return []
        raise
    if len(entries) == 1 and entries[0].name == directory and not entries[0].is_dir:
        return []  # `directory` is a file
    names = [e.name for e in entries if not dironly or e.is_dir]
    if not pattern.startswith("."):
        names = [n for n in names if not n.startswith(".")]
    return [n for n in names if fnmatch.fnmatchcase(n, pattern)]


async def _literal_name(fs: RemoteFileSystem, directory: str, name: str) -> list[str]:
    if not name:  # a pattern ending in "/": directories only
        return [name] if await fs.isdir(directory) else []
    return [name] if await _lexists(fs, posixpath.join(directory, name)) else []
