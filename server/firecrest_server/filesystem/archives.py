"""compress and extract: tar archives made and unpacked on the login node.

These can take long. They run under the system's command timeout, and a timeout is a 408, on
which pyfirecrest retries the operation as a transfer job.

With ``matchPattern`` the file list comes from ``find -regex``, piped into tar. That needs a
pipe, hence a shell; the script is a constant and every user value reaches it as a positional
parameter ("$1", "$2", ...), never as script text.

tar writes the archive under a temporary name next to the target, renamed over it only when tar
succeeded: a failed or interrupted compress never leaves a truncated archive at `targetPath`, nor
destroys the file that was there before.

Extract unpacks within the system's ``data_operation.max_extract_bytes`` and
``max_extract_files`` (``unpacking``: an archive bomb gets 413 and leaves the target as it was).
"""

from __future__ import annotations

import posixpath

from ..cluster import CheckedPath, Remote
from ..config import DataOperation
from ..errors import BadRequest
from ..models.filesystem import Compression
from .direct_transfer import temporary_name
from .unpacking import unpack_argv, unpack_error

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

# $1: the temporary name tar writes; $2: the target; $3...: the command that writes $1.
# mv -T: a directory at the target is an error (400), never a directory to move the archive into.
WRITE_THEN_RENAME_SCRIPT = (
    'partial=$1; target=$2; shift 2; "$@" && mv -f -T -- "$partial" "$target" && exit 0; '
    'status=$?; rm -f -- "$partial"; exit "$status"'
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
    """The command that archives ``source`` into ``target`` (both normalised absolute paths)."""
    if match_pattern and "\x00" in match_pattern:
        raise BadRequest("`matchPattern` must not contain NUL characters")
    if target == source or target.startswith(source.rstrip("/") + "/"):
        # tar would read its own growing output: the archive cannot be complete.
        raise BadRequest(
            f"`targetPath` {target!r} is inside `sourcePath` {source!r}, the directory being "
            "archived; write the archive elsewhere"
        )
    directory, name = split_source(source)
    target_directory, target_name = posixpath.split(target)
    partial = posixpath.join(target_directory, temporary_name(target_name))
    tar_options = ["-c", *COMPRESSION_FLAGS[compression]]
    if dereference:
        tar_options.append("--dereference")
    tar_options += ["-f", partial]
    if not match_pattern:
        writer = ["tar", *tar_options, "-C", directory, "--", name]
    else:
        # Members are ./NAME/..., as in FirecREST v2, whose find runs from the parent directory.
        follow = "-L" if dereference else "-P"
        writer = [
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
    return ["bash", "-c", WRITE_THEN_RENAME_SCRIPT, "bash", partial, target, *writer]


def extract_argv(
    source: str, target: str, limits: DataOperation, compression: Compression = "gzip"
) -> list[str]:
    return unpack_argv(
        source,
        target,
        compression=compression,
        max_bytes=limits.max_extract_bytes,
        max_files=limits.max_extract_files,
    )


async def compress(
    remote: Remote,
    source: CheckedPath,
    target: CheckedPath,
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
    remote: Remote, source: CheckedPath, target: CheckedPath, compression: Compression = "gzip"
) -> None:
    argv = extract_argv(source, target, remote.system.data_operation, compression)
    result = await remote.run(argv, check=False)
    if result.exit_status != 0:
        raise unpack_error(source, result.exit_status, result.stderr_text)
