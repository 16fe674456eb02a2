"""compress and extract: tar archives made and unpacked on the login node.

These can take long. They run under the system's command timeout, and a timeout is a 408, on
which pyfirecrest retries the operation as a transfer job.

With ``matchPattern`` the file list comes from ``find -regex``, piped into tar. That needs a
pipe, hence a shell; the script is a constant and every user value reaches it as a positional
parameter ("$1", "$2", ...), never as script text.
"""

from __future__ import annotations

import posixpath

from ..errors import BadRequest
from ..models.filesystem import Compression
from ..remote import Remote

COMPRESSION_FLAGS: dict[str, list[str]] = {
    "none": [],
    "gzip": ["-z"],
    "bzip2": ["-j"],
    "xz": ["-J"],
}

# $1: directory to work in; $2: find's -P (links as links) or -L (follow them); $3: ./NAME to
# search; $4: the regex; $5...: tar's own arguments. With pipefail, an unreadable subdirectory
# fails the request rather than silently leaving files out.
MATCHING_FILES_SCRIPT = (
    'set -o pipefail; cd -- "$1" || exit; '
    'find "$2" "$3" -type f -regex "$4" -print0 | tar --null -T - "${@:5}"'
)


def split_source(path: str) -> tuple[str, str]:
    """``-C DIRECTORY NAME`` for tar, so the archive holds NAME/... rather than absolute paths."""
    directory, name = posixpath.split(path)
    return directory or "/", name or "."


def compress_argv(
    source: str,
    target: str,
    *,
    compression: Compression = "gzip",
    dereference: bool = False,
    match_pattern: str | None = None,
) -> list[str]:
    if match_pattern and "\x00" in match_pattern:
        raise BadRequest("`matchPattern` must not contain NUL characters")
    directory, name = split_source(source)
    tar_options = ["-c", *COMPRESSION_FLAGS[compression]]
    if dereference:
        tar_options.append("--dereference")
    tar_options += ["-f", target]
    if not match_pattern:
        return ["tar", *tar_options, "-C", directory, "--", name]
    # Members are ./NAME/..., as in FirecREST v2, whose find runs from the parent directory.
    follow = "-L" if dereference else "-P"
    return [
        "bash",
        "-c",
        MATCHING_FILES_SCRIPT,
        "bash",  # $0
        directory,
        follow,
        f"./{name}",
        match_pattern,
        *tar_options,
    ]


def extract_argv(source: str, target: str, compression: Compression = "gzip") -> list[str]:
    return ["tar", "-x", *COMPRESSION_FLAGS[compression], "-f", source, "-C", target]


async def compress(
    remote: Remote,
    source: str,
    target: str,
    *,
    compression: Compression = "gzip",
    dereference: bool = False,
    match_pattern: str | None = None,
) -> None:
    argv = compress_argv(
        source,
        target,
        compression=compression,
        dereference=dereference,
        match_pattern=match_pattern,
    )
    await remote.run(argv)


async def extract(
    remote: Remote, source: str, target: str, compression: Compression = "gzip"
) -> None:
    await remote.run(extract_argv(source, target, compression))
