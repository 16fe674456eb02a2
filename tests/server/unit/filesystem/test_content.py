"""head/tail arguments and positions, view limits, and parsing of sha256sum and file output."""

from __future__ import annotations

import pytest

from firecrest_server.cluster import CommandResult
from firecrest_server.errors import ApiError, BadRequest, Forbidden, NotFound
from firecrest_server.filesystem.content import (
    DEFAULT_VIEW_SIZE,
    MAX_OFFSET,
    Slice,
    file_type,
    parse_file_type,
    parse_sha256sum,
    view_size,
)

DIGEST = "e5b00209ffdf76f4db2895a419bd49cbfdf9350eb9546b73019413a41acd9455"


# -------------------------------------------------------------------------------- head/tail


def test_bytes_and_lines_together_are_refused() -> None:
    with pytest.raises(BadRequest, match="Only one of `bytes` or `lines`"):
        Slice.of(file_bytes=5, lines=2, skip=False)


def test_neither_means_ten_lines_and_ignores_skip() -> None:
    part = Slice.of(None, None, skip=True)
    assert part == Slice("lines", 10, False)
    assert part.head_argv("/p") == ["head", "--lines=10", "--", "/p"]
    assert part.head_positions() == (0, 10)
    assert part.tail_positions() == (-10, -1)


@pytest.mark.parametrize(
    ("file_bytes", "lines", "skip", "argv", "positions"),
    [
        (None, 3, False, ["head", "--lines=3", "--", "/p"], (0, 3)),
        (None, 3, True, ["head", "--lines=-3", "--", "/p"], (0, -3)),
        (8, None, False, ["head", "--bytes=8", "--", "/p"], (0, 8)),
        (8, None, True, ["head", "--bytes=-8", "--", "/p"], (0, -8)),
        (0, None, False, ["head", "--bytes=0", "--", "/p"], (0, 0)),
    ],
)
def test_head(file_bytes, lines, skip, argv, positions) -> None:
    part = Slice.of(file_bytes, lines, skip)
    assert part.head_argv("/p") == argv
    assert part.head_positions() == positions


@pytest.mark.parametrize(
    ("file_bytes", "lines", "skip", "argv", "positions"),
    [
        (None, 3, False, ["tail", "--lines=3", "--", "/p"], (-3, -1)),
        (None, 3, True, ["tail", "--lines=+3", "--", "/p"], (3, -1)),
        (8, None, False, ["tail", "--bytes=8", "--", "/p"], (-8, -1)),
        (8, None, True, ["tail", "--bytes=+8", "--", "/p"], (8, -1)),
    ],
)
def test_tail(file_bytes, lines, skip, argv, positions) -> None:
    part = Slice.of(file_bytes, lines, skip)
    assert part.tail_argv("/p") == argv
    assert part.tail_positions() == positions


def test_unit_follows_what_was_given() -> None:
    assert Slice.of(4, None, False).unit == "bytes"
    assert Slice.of(None, 4, False).unit == "lines"


def test_path_is_always_after_double_dash() -> None:
    argv = Slice.of(None, 1, False).head_argv("/home/a/-n")
    assert argv[-2:] == ["--", "/home/a/-n"]


# -------------------------------------------------------------------------------------- view


def test_view_size_defaults_to_5_mib_capped_by_the_limit() -> None:
    assert view_size(None, 0, limit=10 * DEFAULT_VIEW_SIZE) == DEFAULT_VIEW_SIZE
    assert view_size(None, 0, limit=1000) == 1000


def test_view_size_within_the_limit() -> None:
    assert view_size(1000, 5, limit=1000) == 1000
    assert view_size(1, 0, limit=1000) == 1


@pytest.mark.parametrize(
    ("size", "offset", "message"),
    [
        (1001, 0, "`size` value must be less than 1000 bytes"),
        (0, 0, "`size` value must be an integer value greater than 0"),
        (-5, 0, "`size` value must be an integer value greater than 0"),
        (10, -1, "`offset` value must be an integer value equal or greater than 0"),
    ],
)
def test_view_size_refusals(size, offset, message) -> None:
    with pytest.raises(BadRequest) as excinfo:
        view_size(size, offset, limit=1000)
    assert excinfo.value.message == message


# ---------------------------------------------------------------------------------- checksum


def test_view_offsets_beyond_any_file_are_refused() -> None:
    # SFTP encodes offsets in 64 bits: a larger one used to fail inside asyncssh with a 500.
    assert view_size(10, MAX_OFFSET, limit=1000) == 10
    for offset in (MAX_OFFSET + 1, 2**64, 2**70):
        with pytest.raises(BadRequest, match="offset"):
            view_size(10, offset, limit=1000)


def test_sha256sum_output() -> None:
    assert parse_sha256sum(f"{DIGEST}  /home/a/test.dat\n") == DIGEST


def test_sha256sum_escaped_name() -> None:
    # coreutils prefixes the line with a backslash when the name has a newline or backslash.
    assert parse_sha256sum(f"\\{DIGEST}  /home/a/new\\nline\n") == DIGEST


@pytest.mark.parametrize("stdout", ["", "garbage", f"{DIGEST[:-1]}  x", f"{DIGEST.upper()}  x"])
def test_sha256sum_unexpected_output_is_a_server_error(stdout: str) -> None:
    with pytest.raises(Exception, match="Unexpected sha256sum output") as excinfo:
        parse_sha256sum(stdout)
    assert excinfo.value.status_code == 500


# -------------------------------------------------------------------------------------- file


def test_file_type_is_stripped() -> None:
    assert parse_file_type("ASCII text\n") == "ASCII text"
    assert parse_file_type("directory\n") == "directory"


def test_file_cannot_open_missing_is_404() -> None:
    with pytest.raises(NotFound, match="No such file or directory"):
        parse_file_type("cannot open `/home/a/x' (No such file or directory)\n")


def test_file_cannot_open_denied_is_403() -> None:
    with pytest.raises(Forbidden, match="Permission denied"):
        parse_file_type("cannot open `/home/b/x' (Permission denied)\n")


def test_file_type_mentioning_cannot_open_in_a_name_is_not_an_error() -> None:
    assert parse_file_type("ASCII text, cannot open (x)") == "ASCII text, cannot open (x)"


class _FileRemote:
    """Answers `file` as file 5.44 does for a long path it cannot open; SFTP says why."""

    def __init__(self, stdout: bytes, exit_status: int, sftp_error: Exception | None) -> None:
        self.stdout, self.exit_status, self.sftp_error = stdout, exit_status, sftp_error

    async def run(self, argv, **kwargs):
        return CommandResult(tuple(argv), self.exit_status, self.stdout, b"")

    async def sftp(self, path, operation, action=None):
        if self.sftp_error is not None:
            raise self.sftp_error


@pytest.mark.parametrize(
    ("sftp_error", "status"),
    [(NotFound("x: No such file or directory"), 404), (BadRequest("x: too long"), 400)],
)
async def test_file_on_a_long_path_it_cannot_open_is_not_a_server_error(sftp_error, status):
    remote = _FileRemote(b"ERROR: Output buffer space exceeded 3048+0\n", 1, sftp_error)
    with pytest.raises(ApiError) as raised:
        await file_type(remote, "/home/alice/" + "a" * 3000)  # type: ignore[arg-type]
    assert raised.value.status_code == status


async def test_file_type_of_a_readable_file() -> None:
    remote = _FileRemote(b"ASCII text\n", 0, None)
    assert await file_type(remote, "/home/alice/x") == "ASCII text"  # type: ignore[arg-type]
