"""ls and stat, answered over SFTP: no process is spawned on the login node.

The output matches FirecREST v2's ``ls -l`` based shapes. Times are UTC. ``stat`` reports what
SFTP version 3 carries (mode, uid, gid, size, atime, mtime); ``ino``, ``dev``, ``nlink`` and
``ctime`` are not part of that protocol and are reported as 0.
"""

from __future__ import annotations

import asyncio
import posixpath
import stat as stat_module
import time
from collections import deque
from collections.abc import Sequence

import asyncssh

from ..cluster import CheckedPath, Remote
from ..cluster.sftp import is_dir, sftp_text
from ..errors import PayloadTooLarge
from ..models.filesystem import FileEntry, StatResult

# A recursive listing beyond this many entries is refused rather than built in memory.
MAX_ENTRIES = 100_000

_TYPE_CHARS = {
    stat_module.S_IFDIR: "d",
    stat_module.S_IFREG: "-",
    stat_module.S_IFLNK: "l",
    stat_module.S_IFBLK: "b",
    stat_module.S_IFCHR: "c",
    stat_module.S_IFIFO: "p",
    stat_module.S_IFSOCK: "s",
}


def file_type(mode: int) -> str:
    return _TYPE_CHARS.get(stat_module.S_IFMT(mode), "?")


def permission_string(mode: int) -> str:
    """``rwxr-xr-x`` (with s/S/t/T for setuid, setgid and sticky), as ``ls -l`` prints it."""
    return stat_module.filemode(mode)[1:]


def timestamp(epoch: float | None) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch or 0))


def make_entry(
    name: str,
    attrs: asyncssh.SFTPAttrs,
    *,
    user: str,
    group: str,
    link_target: str | None = None,
) -> FileEntry:
    mode = attrs.permissions or 0
    return FileEntry(
        name=name,
        type=file_type(mode),
        link_target=link_target,
        user=user,
        group=group,
        permissions=permission_string(mode),
        last_modified=timestamp(attrs.mtime),
        size=str(attrs.size or 0),
    )


def stat_result(attrs: asyncssh.SFTPAttrs) -> StatResult:
    return StatResult(
        mode=attrs.permissions or 0,
        ino=0,
        dev=0,
        nlink=attrs.nlink or 0,
        uid=attrs.uid or 0,
        gid=attrs.gid or 0,
        size=attrs.size or 0,
        atime=int(attrs.atime or 0),
        mtime=int(attrs.mtime or 0),
        ctime=int(attrs.ctime or 0),
    )


def _is_link(attrs: asyncssh.SFTPAttrs) -> bool:
    return stat_module.S_ISLNK(attrs.permissions or 0)


async def stat(remote: Remote, path: CheckedPath, dereference: bool = False) -> StatResult:
    attrs = await remote.sftp(
        path, lambda sftp: sftp.stat(path) if dereference else sftp.lstat(path), action="stat"
    )
    return stat_result(attrs)


async def describe(remote: Remote, path: str, name: str | None = None) -> FileEntry:
    """The ``ls -ld`` entry of one path (used for mkdir/symlink/chmod/chown answers)."""

    async def lookup(sftp: asyncssh.SFTPClient) -> tuple[asyncssh.SFTPAttrs, str | None]:
        attrs = await sftp.lstat(path)
        target = await sftp.readlink(path) if _is_link(attrs) else None
        return attrs, target

    attrs, target = await remote.sftp(path, lookup, action="ls")
    entries = await _named(remote, [(name or path, attrs, target)], numeric=False)
    return entries[0]


async def list_path(
    remote: Remote,
    path: CheckedPath,
    *,
    show_hidden: bool = False,
    numeric_uid: bool = False,
    recursive: bool = False,
    dereference: bool = False,
) -> list[FileEntry]:
    """``ls -l [-A] [-n] [-R] [-L] -- path``."""

    async def walk(sftp: asyncssh.SFTPClient) -> list[tuple[str, asyncssh.SFTPAttrs, str | None]]:
        # The top path is usually a directory: its lstat and its listing are sent together,
        # saving a round trip. The listing is only used once lstat says it is what `ls` shows.
        top, first = await asyncio.gather(
            sftp.lstat(path), sftp.readdir(path), return_exceptions=True
        )
        if isinstance(top, BaseException):
            raise top
        if _is_link(top) and dereference:
            top = await sftp.stat(path)
        if not is_dir(top):
            # `ls -l FILE` (or a symlink, without -L) prints one line named as given.
            target = await sftp.readlink(path) if _is_link(top) else None
            return [(path, top, target)]
        if isinstance(first, BaseException):
            raise first
        rows: list[tuple[str, asyncssh.SFTPAttrs, str | None]] = []
        pending: deque[tuple[str, str]] = deque([(path, "")])
        listed: Sequence[asyncssh.SFTPName] | None = first
        while pending:
            directory, prefix = pending.popleft()
            names = listed if listed is not None else await sftp.readdir(directory)
            listed = None
            names = [
                n
                for n in names
                if sftp_text(n.filename) not in (".", "..")
                and (show_hidden or not sftp_text(n.filename).startswith("."))
            ]
            names.sort(key=lambda n: sftp_text(n.filename))
            # Only symlinks need another request each (readlink, or stat with -L); resolve
            # those concurrently, everything else is answered by the listing itself.
            links = [i for i, n in enumerate(names) if _is_link(n.attrs)]
            resolved: dict[int, tuple[asyncssh.SFTPAttrs, str | None]] = {}
            if links:
                results = await asyncio.gather(
                    *(
                        _resolve_entry(
                            sftp,
                            posixpath.join(directory, sftp_text(names[i].filename)),
                            names[i],
                            dereference,
                        )
                        for i in links
                    )
                )
                resolved = dict(zip(links, results, strict=True))
            learn = remote.names.learn
            for i, n in enumerate(names):
                attrs, target = resolved.get(i, (n.attrs, None))
                filename = sftp_text(n.filename)
                learn(n.attrs.uid, n.attrs.gid, sftp_text(n.longname or ""))
                rows.append((prefix + filename, attrs, target))
                if recursive and is_dir(attrs):
                    pending.append((posixpath.join(directory, filename), f"{prefix}{filename}/"))
            if len(rows) > MAX_ENTRIES:
                raise PayloadTooLarge(
                    f"Listing of {path} has more than {MAX_ENTRIES} entries; list subdirectories"
                )
        return rows

    rows = await remote.sftp(path, walk, action="ls")
    return await _named(remote, rows, numeric=numeric_uid)


async def _resolve_entry(
    sftp: asyncssh.SFTPClient, full_path: str, name: asyncssh.SFTPName, dereference: bool
) -> tuple[asyncssh.SFTPAttrs, str | None]:
    attrs = name.attrs
    if not _is_link(attrs):
        return attrs, None
    if dereference:
        try:
            return await sftp.stat(full_path), None
        except asyncssh.SFTPError:
            pass  # a dangling link: `ls -L` shows the link itself
    try:
        return attrs, await sftp.readlink(full_path)
    except asyncssh.SFTPError:
        return attrs, None


async def _named(
    remote: Remote,
    rows: list[tuple[str, asyncssh.SFTPAttrs, str | None]],
    *,
    numeric: bool,
) -> list[FileEntry]:
    if numeric:
        return [
            make_entry(name, attrs, user=str(attrs.uid), group=str(attrs.gid), link_target=target)
            for name, attrs, target in rows
        ]
    names = remote.names
    uids = [a.uid for _, a, _ in rows if a.uid is not None]
    gids = [a.gid for _, a, _ in rows if a.gid is not None]
    await names.resolve(remote.runner, uids, gids)
    return [
        make_entry(
            name,
            attrs,
            user=names.user(attrs.uid or 0),
            group=names.group(attrs.gid or 0),
            link_target=target,
        )
        for name, attrs, target in rows
    ]
