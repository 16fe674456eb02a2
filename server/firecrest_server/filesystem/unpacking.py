"""Unpacking a tar archive on the login node within limits: the defence against archive bombs.

Used by extract (synchronous and as a transfer job) and by tree upload. Without limits a small
archive (a gzip, bzip2 or xz "bomb": gigabytes of zeros compress a thousandfold; or a tar of
millions of empty files) fills the shared file system or its inodes before a timeout or a
quota stops it.

How the limits hold, whatever the archive claims:

- Decompression is never left to tar. The server runs the decompressor the request names as
  its own stage, and tar reads a plain tar stream (GNU tar refuses a compressed archive on a
  pipe: "Archive is compressed"), so no layer of compression can be undone behind the meter.
- The byte meter sits between the decompressor and tar: ``head -c MAX`` passes at most MAX bytes
  of the *uncompressed* stream, then one more byte is read to tell "exactly MAX" from "more".
  tar can only write what it was given (a sparse member adds holes, not blocks), so the data
  written is bounded by MAX whatever the headers say. Over it, the decompressor gets SIGPIPE:
  the CPU spent on a bomb is bounded too.
- The entry counter reads tar's verbose listing (one line per member; GNU tar escapes newlines
  in names) and exits past MAX, so tar dies of SIGPIPE at its next listing write. tar buffers
  that listing, so up to a pipe buffer of names more may be created before it stops; they are
  removed with the rest.
- Everything is unpacked into a fresh 0700 directory inside the target. Only when the archive
  was complete and within both limits are its entries moved into the target: renamed when the
  name is new, else hard-linked (``cp -al``: merges into existing directories and replaces
  files, as tar would; no data is copied), and the directory removed. Over a limit or on any
  failure the directory is removed and the target is as it was.

One exec, as before: the script is a constant, every value reaches it as a positional parameter.
"""

from __future__ import annotations

import secrets

from ..cluster.failures import command_error
from ..errors import ApiError, PayloadTooLarge
from ..models.filesystem import Compression
from .special import refuse_special_exit

# The decompressor for each `compression`; "none" still gets a stage, so the meter is uniform.
DECOMPRESSORS: dict[str, list[str]] = {
    "none": ["cat"],
    "gzip": ["gzip", "-d", "-c"],
    "bzip2": ["bzip2", "-d", "-c"],
    "xz": ["xz", "-d", "-c"],
}

# Exit statuses of UNPACK_SCRIPT for a limit that was hit (96-99: the archive is a special file).
OVER_FILES = 3
OVER_BYTES = 4
_UNPACKING_PREFIX = ".fcunpack-"

# $1 archive ("-": stdin), $2 target directory, $3 name of the unpacking directory in it,
# $4 max bytes, $5 max entries, $6 "p" to keep the archive's permissions, $7...: decompressor.
UNPACK_SCRIPT = r"""
archive=$1 target=$2 max_bytes=$4 max_files=$5 perms=$6; unpack=$2/$3; shift 6
if [ "$archive" != - ]; then
  if [ -p "$archive" ]; then exit 96; elif [ -c "$archive" ]; then exit 97;
  elif [ -b "$archive" ]; then exit 98; elif [ -S "$archive" ]; then exit 99; fi
  exec 0< "$archive" || exit 2
fi
mkdir -m 700 -- "$unpack" || exit 2
discard() {
  find "$unpack" -type d -exec chmod u+rwx -- {} + 2>/dev/null
  rm -rf -- "$unpack"
}
options=(--no-same-owner --delay-directory-restore)
[ "$perms" = p ] && options+=(--preserve-permissions)
"$@" \
  | { head -c "$max_bytes" || exit; [ "$(head -c 1 | wc -c)" -eq 0 ] || exit 4; } \
  | tar -x -v -f - -C "$unpack" "${options[@]}" \
  | awk -v max="$max_files" 'NR > max { exit 3 }'
status=("${PIPESTATUS[@]}")
if [ "${status[3]}" = 3 ]; then
  discard
  echo "The archive has more than $max_files entries," \
    "the limit (data_operation.max_extract_files)" >&2
  exit 3
fi
if [ "${status[1]}" = 4 ]; then
  discard
  echo "The archive unpacks to more than $max_bytes bytes," \
    "the limit (data_operation.max_extract_bytes)" >&2
  exit 4
fi
# tar may stop at the end-of-archive marker before the padding after it: the stages before
# it then die of SIGPIPE (141), which is no failure.
if [ "${status[2]}" != 0 ] || [ "${status[3]}" != 0 ] \
  || { [ "${status[0]}" != 0 ] && [ "${status[0]}" != 141 ]; } \
  || { [ "${status[1]}" != 0 ] && [ "${status[1]}" != 141 ]; }; then
  discard
  for s in "${status[2]}" "${status[0]}" "${status[1]}" "${status[3]}"; do
    if [ "$s" != 0 ]; then exit "$s"; fi
  done
fi
shopt -s dotglob nullglob
for entry in "$unpack"/*; do
  name=${entry##*/}
  if [ -e "$target/$name" ] || [ -L "$target/$name" ]; then
    cp -a -l --remove-destination -- "$entry" "$target/" || { s=$?; discard; exit "$s"; }
  else  # the common case, a new name: one rename
    mv -T -- "$entry" "$target/$name" || { s=$?; discard; exit "$s"; }
  fi
done
discard
"""


def unpacking_name() -> str:
    """A hidden directory name inside the target that cannot collide with an entry."""
    return f"{_UNPACKING_PREFIX}{secrets.token_hex(8)}"


def unpack_argv(
    archive: str,
    target: str,
    *,
    compression: Compression,
    max_bytes: int,
    max_files: int,
    keep_permissions: bool = False,
) -> list[str]:
    """The command that unpacks ``archive`` ("-": stdin) into the directory ``target``."""
    return [
        "bash",
        "-c",
        UNPACK_SCRIPT,
        "bash",  # $0
        archive,
        target,
        unpacking_name(),
        str(max_bytes),
        str(max_files),
        "p" if keep_permissions else "",
        *DECOMPRESSORS[compression],
    ]


def unpack_error(archive: str, exit_status: int, stderr: str) -> ApiError:
    """The API error for an unpack command that failed: 413 over a limit, 400 for a special
    file, otherwise as any command."""
    refuse_special_exit(archive, exit_status)
    if exit_status in (OVER_FILES, OVER_BYTES):
        return PayloadTooLarge(stderr.strip().splitlines()[-1] if stderr.strip() else "")
    return command_error(exit_status, stderr)
