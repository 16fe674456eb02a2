"""How a failed remote command or SFTP request becomes an API error: the one table.

Clients key on these: pyfirecrest looks for "No such file or directory" in 404 messages and
falls back to transfer jobs on 408.
"""

from __future__ import annotations

import asyncssh

from .. import diagnostics
from ..diagnostics import Failure, framed
from ..errors import ApiError, BadRequest, Conflict, Forbidden, NotFound, RequestTimeout
from .commands import TIMEOUT_EXIT

# How a failed remote command maps to HTTP, first match wins (FirecREST v2's table, extended).
_STDERR_STATUS: tuple[tuple[str, type[ApiError]], ...] = (
    ("No such file or directory", NotFound),
    ("Permission denied", Forbidden),
    ("Operation not permitted", Forbidden),
    ("File exists", BadRequest),
    ("invalid user", BadRequest),
    ("invalid group", BadRequest),
    ("Not a directory", BadRequest),
    ("Is a directory", BadRequest),
    ("Directory not empty", BadRequest),
    ("invalid mode", BadRequest),
    # extract of something that is not an archive in the stated compression (tar, gzip, bzip2, xz)
    ("does not look like a tar archive", BadRequest),
    ("not in gzip format", BadRequest),
    ("is not a bzip2 file", BadRequest),
    ("File format not recognized", BadRequest),
    # a compressed archive with compression "none", or compressed twice: tar will not undo it
    ("Archive is compressed", BadRequest),
    # requests that can never succeed as asked: the client must change them
    ("File name too long", BadRequest),
    ("Too many levels of symbolic links", BadRequest),
    ("Argument list too long", BadRequest),
    ("are the same file", BadRequest),  # cp/mv onto itself
    ("into itself", BadRequest),  # cp of a directory into itself
    ("to a subdirectory of itself", BadRequest),  # mv of a directory into itself
    ("cannot overwrite", BadRequest),  # cp/mv: a directory by a file, or the other way round
    ("invalid number of", BadRequest),  # head/tail counts beyond what they can represent
    ("failed to compile regular expression", BadRequest),  # compress matchPattern
    # tar: something else wrote to the tree while it was archived; trying again may succeed
    ("file changed as we read it", Conflict),
)


def command_error(exit_status: int, stderr: str) -> ApiError:
    """The API error for a remote command that exited with ``exit_status``."""
    message = framed(exit_status, stderr)
    if exit_status == TIMEOUT_EXIT:
        return RequestTimeout(message)
    for needle, error in _STDERR_STATUS:
        if needle in stderr:
            return error(message)
    return ApiError(message)


# The status of each file-system failure (as _STDERR_STATUS maps the same words).
_FAILURE_STATUS: dict[Failure, type[ApiError]] = {
    Failure.NOT_FOUND: NotFound,
    Failure.PERMISSION_DENIED: Forbidden,
    Failure.NOT_PERMITTED: Forbidden,
    Failure.EXISTS: BadRequest,
    Failure.NOT_A_DIRECTORY: BadRequest,
    Failure.IS_A_DIRECTORY: BadRequest,
    Failure.NOT_EMPTY: BadRequest,
    Failure.NAME_TOO_LONG: BadRequest,
}


def file_error(operation: str, failure: Failure, path: str) -> ApiError:
    """The API error for ``operation`` failing on ``path``, worded as the program FirecREST v2
    runs for it would have worded it (see ``diagnostics``)."""
    return _FAILURE_STATUS[failure](diagnostics.message(operation, failure, path))


def _sftp_failure(exc: Exception) -> Failure | None:
    for kind, failure in (
        (asyncssh.SFTPNoSuchFile, Failure.NOT_FOUND),
        (asyncssh.SFTPPermissionDenied, Failure.PERMISSION_DENIED),
        (asyncssh.SFTPFileAlreadyExists, Failure.EXISTS),
        (asyncssh.SFTPNotADirectory, Failure.NOT_A_DIRECTORY),
        (asyncssh.SFTPFileIsADirectory, Failure.IS_A_DIRECTORY),
        (asyncssh.SFTPDirNotEmpty, Failure.NOT_EMPTY),
    ):
        if isinstance(exc, kind):
            return failure
    return None


def sftp_error(exc: Exception, path: str, operation: str | None = None) -> ApiError:
    """The API error for a failed SFTP request on ``path``, made for ``operation`` (worded as
    its program would word it; without one, as ``path: reason``)."""
    failure = _sftp_failure(exc)
    if failure is None and isinstance(exc, asyncssh.SFTPBadMessage):
        # OpenSSH's sftp-server answers a name longer than NAME_MAX, or a read at an offset
        # beyond any file, with SSH_FX_BAD_MESSAGE: a request that cannot succeed as asked.
        if operation is None:
            return BadRequest(f"{path}: Invalid argument or file name too long")
        failure = Failure.NAME_TOO_LONG
    if failure is not None:
        if operation is not None:
            return file_error(operation, failure, path)
        return _FAILURE_STATUS[failure](f"{path}: {failure.value}")
    reason = getattr(exc, "reason", "") or type(exc).__name__
    return ApiError(f"{path}: {reason}")
