"""Refusing to read the bytes of FIFOs, sockets and device nodes.

Opening a FIFO blocks until a writer appears, and OpenSSH's sftp-server answers one request at
a time: one SFTP open of a FIFO hangs the request and every later SFTP operation of that user
on the channel. ``/dev/zero`` and ``/dev/urandom`` never end, so a checksum or a tail of one
burns a login-node CPU until the command timeout. None of them has content a client could mean
to fetch, so every operation that reads a file's bytes refuses them with 400 before opening.

Two guards, each at no extra request where the operation already has one to piggyback on:

- SFTP: the file type from the ``stat`` the operation makes before it opens the file
  (``refuse_special``); stat follows symlinks, so a link to ``/dev/zero`` counts as the device.
- Commands (head, tail, sha256sum, tar's archive): the same exec runs ``bash`` with a constant
  test in front of the program (``guarded_argv``), which ``exec``s the program when the path is
  not special. The path reaches bash as ``$1``, never as script text.
"""

from __future__ import annotations

import stat as stat_module
from collections.abc import Sequence

from ..errors import BadRequest

# Exit statuses of GUARD_SCRIPT for each kind; no program it runs exits with these.
SPECIAL_EXITS = {
    96: "a named pipe (FIFO)",
    97: "a character device",
    98: "a block device",
    99: "a socket",
}

# $1: the path; $2...: the program to run on it. `test` follows symlinks, as open() would.
GUARD_SCRIPT = (
    'if [ -p "$1" ]; then exit 96; elif [ -c "$1" ]; then exit 97; '
    'elif [ -b "$1" ]; then exit 98; elif [ -S "$1" ]; then exit 99; fi; '
    'shift; exec "$@"'
)


class SpecialFile(BadRequest):
    def __init__(self, path: str, kind: str) -> None:
        super().__init__(
            f"{path}: Not a regular file ({kind}); its content cannot be read through the API"
        )


def special_kind(mode: int) -> str | None:
    """What kind of special file ``mode`` is, or None for a file, directory or symlink."""
    if stat_module.S_ISFIFO(mode):
        return SPECIAL_EXITS[96]
    if stat_module.S_ISCHR(mode):
        return SPECIAL_EXITS[97]
    if stat_module.S_ISBLK(mode):
        return SPECIAL_EXITS[98]
    if stat_module.S_ISSOCK(mode):
        return SPECIAL_EXITS[99]
    return None


def refuse_special(path: str, mode: int | None) -> None:
    """400 if ``mode`` (from a stat that followed symlinks) is a FIFO, socket or device."""
    kind = special_kind(mode or 0)
    if kind is not None:
        raise SpecialFile(path, kind)


def guarded_argv(path: str, argv: Sequence[str]) -> list[str]:
    """``argv`` run only if ``path`` is not special; otherwise the exit status names its kind."""
    return ["bash", "-c", GUARD_SCRIPT, "bash", path, *argv]


def refuse_special_exit(path: str, exit_status: int) -> None:
    """400 if a guarded command exited because ``path`` is special."""
    kind = SPECIAL_EXITS.get(exit_status)
    if kind is not None:
        raise SpecialFile(path, kind)
