"""Changing the file tree: rm, mkdir, symlink, chmod and chown.

mkdir, symlink and octal chmod are SFTP requests; rm -r, symbolic chmod and chown need programs.
Modes and owners are validated here, before anything reaches the cluster, so a value the programs
would misread (a leading ``-``, a ``:`` in a name) is a 400 and never an argument.
"""

from __future__ import annotations

import posixpath
import re
import stat as stat_module
from dataclasses import dataclass

import asyncssh

from ..cluster import CheckedPath, Remote
from ..cluster.failures import file_error
from ..cluster.sftp import is_dir, lstat_or_none
from ..config import SystemConfig
from ..diagnostics import Failure
from ..errors import BadRequest
from ..models.filesystem import FileEntry
from .listing import describe

# ---------------------------------------------------------------------------------------- rm


def rm_argv(path: str) -> list[str]:
    return ["rm", "-r", "--interactive=never", "--", path]


def check_removable(system: SystemConfig, path: str) -> None:
    """400 for the root directory or the root of a configured file system."""
    roots = {fs.path for fs in system.file_systems} | {"/"}
    if path in roots:
        raise BadRequest(f"{path} is the root of a file system and cannot be removed")


async def rm(remote: Remote, path: CheckedPath) -> None:
    check_removable(remote.system, path)
    # Not idempotent: a retry after the connection dropped mid-way would report "not found".
    await remote.run(rm_argv(path), idempotent=False)


# ------------------------------------------------------------------------------------- mkdir


async def _mkdir(sftp: asyncssh.SFTPClient, path: str) -> None:
    try:
        await sftp.mkdir(path)
    except asyncssh.SFTPFailure:
        # OpenSSH answers EEXIST with a generic failure: look whether something is there.
        if await lstat_or_none(sftp, path) is not None:
            raise file_error("mkdir", Failure.EXISTS, path) from None
        raise


async def _existing_directory(
    sftp: asyncssh.SFTPClient, path: str, failure: asyncssh.SFTPError
) -> None:
    """After mkdir failed with ``failure``: fine if ``path`` is (a link to) a directory, 400 if
    it is anything else, and ``failure`` itself if nothing is there."""
    if await lstat_or_none(sftp, path) is None:
        raise failure
    try:
        followed = await sftp.stat(path)
    except asyncssh.SFTPNoSuchFile:  # a dangling symbolic link
        followed = None
    if followed is None or not is_dir(followed):
        raise file_error("mkdir", Failure.EXISTS, path) from None


async def _mkdir_parents(sftp: asyncssh.SFTPClient, path: str) -> None:
    """``mkdir -p``: create ``path`` and missing ancestors; an existing directory is fine.

    Tries the leaf first and walks up only on "no such file", so the common case (the parent
    exists) costs one request, not one per path component.
    """
    try:
        await sftp.mkdir(path)
        return
    except asyncssh.SFTPNoSuchFile:
        parent = posixpath.dirname(path)
        if parent == path:
            raise
        await _mkdir_parents(sftp, parent)
    except asyncssh.SFTPFailure as exc:
        await _existing_directory(sftp, path, exc)
        return
    try:
        await sftp.mkdir(path)
    except asyncssh.SFTPFailure as exc:
        await _existing_directory(sftp, path, exc)  # created meanwhile by someone else: fine


async def make_directory(remote: Remote, path: CheckedPath, parent: bool) -> None:
    """``mkdir [-p]``, for a caller that needs no description of the result."""
    create = _mkdir_parents if parent else _mkdir
    await remote.sftp(path, lambda sftp: create(sftp, path), idempotent=parent, action="mkdir")


async def mkdir(remote: Remote, path: CheckedPath, parent: bool) -> FileEntry:
    await make_directory(remote, path, parent)
    return await describe(remote, path)


# ----------------------------------------------------------------------------------- symlink


async def symlink(remote: Remote, target: CheckedPath, link_path: CheckedPath) -> FileEntry:
    """``ln -s target link_path``; the answer describes the link."""

    async def create(sftp: asyncssh.SFTPClient) -> None:
        try:
            # asyncssh sends OpenSSH's (non-standard) argument order; this is os.symlink's.
            await sftp.symlink(target, link_path)
        except asyncssh.SFTPFailure:
            if await lstat_or_none(sftp, link_path) is not None:
                raise file_error("symlink", Failure.EXISTS, link_path) from None
            raise

    await remote.sftp(link_path, create, idempotent=False, action="symlink")
    return await describe(remote, link_path)


# ------------------------------------------------------------------------------------- chmod

_SETID = stat_module.S_ISUID | stat_module.S_ISGID
# chmod(1) octal modes (matched whole: fullmatch, as `$` would let a newline through); a fifth
# digit (a leading 0) clears a directory's set-id bits.
_OCTAL = re.compile(r"[0-7]{1,4}|0[0-7]{4}")
# chmod(1) symbolic modes: [ugoa]*([-+=]([rwxXst]*|[ugo]))+ or [-+=]OCTAL, comma separated.
_CLAUSE = r"(?:[ugoa]*(?:[-+=](?:[rwxXst]*|[ugo]))+|[-+=][0-7]{1,4})"
_SYMBOLIC = re.compile(rf"{_CLAUSE}(?:,{_CLAUSE})*")


@dataclass(frozen=True)
class Mode:
    text: str
    octal: bool

    @classmethod
    def parse(cls, text: str) -> Mode:
        if _OCTAL.fullmatch(text):
            return cls(text, True)
        if _SYMBOLIC.fullmatch(text):
            return cls(text, False)
        raise BadRequest(
            f"Invalid mode {text!r}: give an octal mode such as 755 or 0644, "
            "or a symbolic one such as u+x,g-w"
        )

    def bits(self, current: int) -> int:
        """The permission bits an octal mode sets on a file whose mode is ``current``."""
        bits = int(self.text, 8)
        # chmod(1) keeps a directory's set-user/group-id bits unless the mode has 5 digits.
        if stat_module.S_ISDIR(current) and len(self.text) < 5:
            bits |= current & _SETID
        return bits

    def argv(self, path: str) -> list[str]:
        # After `--`, so a mode such as `-w` is read as a mode and not as an option.
        return ["chmod", "--", self.text, path]


async def chmod(remote: Remote, path: CheckedPath, mode: Mode) -> FileEntry:
    if mode.octal:

        async def apply(sftp: asyncssh.SFTPClient) -> None:
            current = await sftp.stat(path)  # chmod follows symbolic links, so does this
            try:
                await sftp.chmod(path, mode.bits(current.permissions or 0))
            except asyncssh.SFTPPermissionDenied:
                # The path was found, so this is EPERM (not the owner), as chmod(1) words it.
                raise file_error("chmod", Failure.NOT_PERMITTED, path) from None

        await remote.sftp(path, apply, action="chmod")
    else:
        await remote.run(mode.argv(path))
    return await describe(remote, path)


# ------------------------------------------------------------------------------------- chown

# User and group names as useradd and most directories allow them, or numeric ids.
_ACCOUNT = re.compile(r"[0-9]+|[A-Za-z_][A-Za-z0-9_.@-]{0,255}")


def owner_spec(owner: str | None, group: str | None) -> str | None:
    """The ``OWNER[:GROUP]`` argument of chown, or None when neither is to change."""
    for kind, value in (("owner", owner), ("group", group)):
        if value and not _ACCOUNT.fullmatch(value):
            raise BadRequest(f"Invalid {kind} {value!r}: give a user or group name, or a number")
    if owner and group:
        return f"{owner}:{group}"
    if owner:
        return owner
    if group:
        return f":{group}"
    return None


def chown_argv(spec: str, path: str) -> list[str]:
    return ["chown", spec, "--", path]


async def chown(
    remote: Remote, path: CheckedPath, owner: str | None, group: str | None
) -> FileEntry:
    spec = owner_spec(owner, group)
    if spec is not None:  # `chown : PATH` changes nothing: neither do we
        await remote.run(chown_argv(spec, path))
    return await describe(remote, path)
