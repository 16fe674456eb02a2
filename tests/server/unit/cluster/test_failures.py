"""How failed remote commands and SFTP requests map to HTTP statuses."""

from __future__ import annotations

import asyncssh
import pytest

from firecrest_server.cluster.failures import command_error, file_error, sftp_error
from firecrest_server.diagnostics import Failure, program_stderr
from firecrest_server.errors import ApiError, BadRequest, Forbidden, NotFound, RequestTimeout


@pytest.mark.parametrize(
    ("stderr", "error"),
    [
        ("ls: cannot access '/x': No such file or directory", NotFound),
        ("rm: cannot remove '/x': Permission denied", Forbidden),
        # Requests that can never succeed as asked are the client's to change: 400, not 500.
        ("sha256sum: /home/alice/aaaa: File name too long", BadRequest),
        (
            "head: cannot open '/a/loop/x' for reading: Too many levels of symbolic links",
            BadRequest,
        ),
        ("/bin/bash: Argument list too long", BadRequest),
        ("mv: '/a/x' and '/a/x' are the same file", BadRequest),
        ("cp: cannot copy a directory, '/a/d', into itself, '/a/d/d'", BadRequest),
        ("mv: cannot move '/a/d' to a subdirectory of itself, '/a/d/sub'", BadRequest),
        ("mv: cannot overwrite directory '/a/d' with non-directory", BadRequest),
        ("cp: cannot overwrite non-directory '/a/f' with directory '/a/d'", BadRequest),
        (
            "head: invalid number of bytes: '1180591620717411303424': "
            "Value too large for defined data type",
            BadRequest,
        ),
        ("tail: invalid number of lines: '+1000000000000000000000000000000': ...", BadRequest),
        ("find: failed to compile regular expression '[': Invalid regular expression", BadRequest),
        ("find: failed to compile regular expression '\\': Trailing backslash", BadRequest),
    ],
)
def test_stderr_decides_the_status(stderr: str, error: type[ApiError]) -> None:
    assert type(command_error(1, stderr)) is error


def test_unknown_failures_stay_server_errors() -> None:
    assert type(command_error(1, "something unexpected")) is ApiError
    assert command_error(1, "x").status_code == 500


def test_remote_timeout_is_408() -> None:
    assert isinstance(command_error(124, "File name too long"), RequestTimeout)


@pytest.mark.parametrize(
    ("exc", "status"),
    [
        (asyncssh.SFTPNoSuchFile("x"), 404),
        (asyncssh.SFTPPermissionDenied("x"), 403),
        # OpenSSH answers ENAMETOOLONG (and reads at impossible offsets) with BAD_MESSAGE
        (asyncssh.SFTPBadMessage("Bad message"), 400),
        (asyncssh.SFTPFailure("Failure"), 500),
    ],
)
def test_sftp_errors(exc: Exception, status: int) -> None:
    error = sftp_error(exc, "/home/alice/x")
    assert error.status_code == status
    assert error.message.startswith("/home/alice/x")


@pytest.mark.parametrize(
    ("exc", "operation", "status", "stderr"),
    [
        (asyncssh.SFTPNoSuchFile("x"), "stat", 404, "stat: cannot statx '/a/x': No such file"),
        (asyncssh.SFTPNoSuchFile("x"), "ls", 404, "ls: cannot access '/a/x': No such file"),
        (asyncssh.SFTPNoSuchFile("x"), "view", 404, "dd: failed to open '/a/x': No such file"),
        (asyncssh.SFTPPermissionDenied("x"), "ls", 403, "ls: cannot open directory '/a/x'"),
        (asyncssh.SFTPFileAlreadyExists("x"), "mkdir", 400, "directory '/a/x': File exists"),
        (asyncssh.SFTPNotADirectory("x"), "stat", 400, "statx '/a/x': Not a directory"),
        (asyncssh.SFTPBadMessage("x"), "stat", 400, "statx '/a/x': File name too long"),
    ],
)
def test_sftp_errors_of_an_operation_use_its_programs_words(
    exc: Exception, operation: str, status: int, stderr: str
) -> None:
    error = sftp_error(exc, "/a/x", operation)
    assert error.status_code == status
    assert error.message.startswith("Remote process failed with exit status:")
    assert stderr in error.message


def test_file_errors_keep_the_status_of_their_words() -> None:
    # The same words through command_error (a program's stderr) give the same status.
    for failure in Failure:
        made = file_error("stat", failure, "/a/x")
        assert type(command_error(1, program_stderr("stat", failure, "/a/x"))) is type(made)
