"""Reading what is in a file: head, tail, view, checksum and file type.

``view`` reads its byte range over SFTP; head and tail by lines, sha256sum and ``file`` need a
program on the login node. Positions in head/tail answers follow FirecREST v2: a count of lines or
bytes from the start (positive) or from the end (negative), ``-1`` meaning "to the end".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

import asyncssh

from ..cluster import CheckedPath, CommandResult, Remote
from ..cluster.failures import command_error, file_error
from ..cluster.sftp import is_dir
from ..diagnostics import Failure
from ..errors import ApiError, BadRequest
from ..models.filesystem import Checksum, FileContent
from .special import guarded_argv, refuse_special, refuse_special_exit

# What head and tail print when given neither bytes nor lines.
DEFAULT_LINES = 10
# What view returns when no size is asked for (FirecREST v2's default), capped by the system limit.
DEFAULT_VIEW_SIZE = 5 * 1024 * 1024
# The largest file offset (off_t is a signed 64-bit integer); SFTP cannot even encode more.
MAX_OFFSET = 2**63 - 1

_SHA256 = re.compile(r"[0-9a-f]{64}")
# `file -b` reports an unreadable path on stdout, with exit status 0: "cannot open `P' (REASON)".
_FILE_CANNOT_OPEN = re.compile(r"^cannot open .*\((?P<reason>[^()]*)\)$", re.DOTALL)


@dataclass(frozen=True)
class Slice:
    """Which part of a file head or tail prints, and how FirecREST v2 reports it."""

    unit: Literal["lines", "bytes"]
    count: int
    skip: bool  # head: all but the last `count`; tail: from unit number `count` on

    @classmethod
    def of(cls, file_bytes: int | None, lines: int | None, skip: bool) -> Slice:
        if file_bytes is not None and lines is not None:
            raise BadRequest("Only one of `bytes` or `lines` can be specified.")
        if file_bytes is not None:
            return cls("bytes", file_bytes, skip)
        if lines is not None:
            return cls("lines", lines, skip)
        # Neither: the programs' default of 10 lines; "skip" has nothing to apply to.
        return cls("lines", DEFAULT_LINES, False)

    def head_argv(self, path: str) -> list[str]:
        sign = "-" if self.skip else ""
        return ["head", f"--{self.unit}={sign}{self.count}", "--", path]

    def tail_argv(self, path: str) -> list[str]:
        sign = "+" if self.skip else ""
        return ["tail", f"--{self.unit}={sign}{self.count}", "--", path]

    def head_positions(self) -> tuple[int, int]:
        return 0, -self.count if self.skip else self.count

    def tail_positions(self) -> tuple[int, int]:
        return (self.count if self.skip else -self.count), -1


async def _read_with(remote: Remote, path: str, argv: list[str]) -> CommandResult:
    """Run a program that reads ``path``'s bytes, refusing FIFOs, sockets and devices first
    (in the same exec: no extra request)."""
    result = await remote.run(guarded_argv(path, argv), check=False)
    if result.exit_status != 0:
        refuse_special_exit(path, result.exit_status)
        raise command_error(result.exit_status, result.stderr_text)
    return result


async def head(remote: Remote, path: CheckedPath, part: Slice) -> FileContent:
    result = await _read_with(remote, path, part.head_argv(path))
    start, end = part.head_positions()
    return FileContent(
        content=result.stdout_text,
        content_type=part.unit,
        start_position=start,
        end_position=end,
    )


async def tail(remote: Remote, path: CheckedPath, part: Slice) -> FileContent:
    result = await _read_with(remote, path, part.tail_argv(path))
    start, end = part.tail_positions()
    return FileContent(
        content=result.stdout_text,
        content_type=part.unit,
        start_position=start,
        end_position=end,
    )


def view_size(size: int | None, offset: int, limit: int) -> int:
    """The number of bytes view reads, or 400 for a range the request may not ask for."""
    if offset < 0:
        raise BadRequest("`offset` value must be an integer value equal or greater than 0")
    if offset > MAX_OFFSET:
        raise BadRequest(f"`offset` value must be at most {MAX_OFFSET}")
    if size is None:
        size = min(DEFAULT_VIEW_SIZE, limit)
    if size <= 0:
        raise BadRequest("`size` value must be an integer value greater than 0")
    if size > limit:
        raise BadRequest(f"`size` value must be less than {limit} bytes")
    return size


async def view(remote: Remote, path: CheckedPath, size: int, offset: int) -> str:
    """``size`` bytes from ``offset``, as text (invalid UTF-8 replaced, as FirecREST v2 does).

    The stat before the open is what keeps a FIFO from hanging the user's SFTP channel (and a
    device from being read): one SFTP request more than open + read.
    """

    async def read(sftp: asyncssh.SFTPClient) -> bytes:
        attrs = await sftp.stat(path)
        refuse_special(path, attrs.permissions)
        if is_dir(attrs):
            raise file_error("view", Failure.IS_A_DIRECTORY, path)
        async with sftp.open(path, "rb") as f:
            try:
                return await f.read(size, offset)
            except asyncssh.SFTPFailure:
                # OpenSSH opens a directory but fails the read with a generic failure.
                if is_dir(await f.stat()):
                    raise file_error("view", Failure.IS_A_DIRECTORY, path) from None
                raise

    data = await remote.sftp(path, read, action="view")
    return data.decode("utf-8", errors="replace")


def parse_sha256sum(stdout: str) -> str:
    """The digest from ``sha256sum`` output (which escapes odd names with a leading backslash)."""
    fields = stdout.split(maxsplit=1)
    digest = fields[0].removeprefix("\\") if fields else ""
    if not _SHA256.fullmatch(digest):
        raise ApiError(f"Unexpected sha256sum output: {stdout[:200]!r}")
    return digest


async def checksum(remote: Remote, path: CheckedPath) -> Checksum:
    result = await _read_with(remote, path, ["sha256sum", "--", path])
    return Checksum(algorithm="SHA256", checksum=parse_sha256sum(result.stdout_text))


def parse_file_type(stdout: str) -> str:
    """The type ``file -b`` printed; an unreadable path becomes the matching API error."""
    text = stdout.strip()
    cannot_open = _FILE_CANNOT_OPEN.match(text)
    if cannot_open:
        # Same message and status as if `file` had failed: 404 for a missing path, 403 denied.
        raise command_error(1, f"file: {text}")
    return text


# `file` echoes the name of a path it cannot open into a fixed buffer; a long one overflows it
# and `file` fails with this on stdout (exit status 1, nothing on stderr).
_FILE_OVERFLOW = "Output buffer space exceeded"


async def file_type(remote: Remote, path: CheckedPath) -> str:
    result = await remote.run(["file", "-b", "--", path], check=False)
    if result.exit_status != 0:
        if _FILE_OVERFLOW in result.stdout_text:
            # The path could not be opened: SFTP tells why, as the usual 404, 403 or 400.
            await remote.sftp(path, lambda sftp: sftp.stat(path), action="file")
        raise command_error(result.exit_status, result.stderr_text or result.stdout_text)
    return parse_file_type(result.stdout_text)
