"""Tar archives on the local side (AiiDA's machine), built and unpacked in a worker thread.

Used when a whole tree crosses the API as one archive: the archive is made or unpacked here, the
server does the same on the cluster. Every function is blocking and is meant to be called with
``asyncio.to_thread``.
"""

from __future__ import annotations

import logging
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from .client.models import Compression

log = logging.getLogger(__name__)

# tarfile.open's mode for writing each compression.
_WRITE_MODES: dict[Compression, Literal["w:", "w:gz", "w:bz2", "w:xz"]] = {
    "none": "w:",
    "gzip": "w:gz",
    "bzip2": "w:bz2",
    "xz": "w:xz",
}


@dataclass(frozen=True)
class TreeSize:
    files: int
    directories: int
    bytes: int

    @property
    def entries(self) -> int:
        return self.files + self.directories


def walk_entries(directory: Path, dereference: bool) -> list[tuple[Path, str]]:
    """(path, archive name) for everything under ``directory``, parents before children.

    With ``dereference``, symbolic links are followed and broken ones are left out (there is
    nothing to send); without, links are kept as links.
    """
    found: list[tuple[Path, str]] = []
    for root, dirs, files in os.walk(directory, followlinks=dereference):
        dirs.sort()
        relative = os.path.relpath(root, directory)
        for name in [*sorted(dirs), *sorted(files)]:
            path = Path(root, name)
            if dereference and path.is_symlink() and not path.exists():
                log.warning("skipping broken symbolic link %s", path)
                continue
            arcname = name if relative == "." else f"{relative}/{name}"
            found.append((path, arcname))
        if not dereference:
            # os.walk lists links to directories among `dirs`; they are kept as links, so
            # must not be descended into.
            dirs[:] = [d for d in dirs if not Path(root, d).is_symlink()]
    return found


def measure(directory: str | Path, *, dereference: bool = True) -> TreeSize:
    files = directories = size = 0
    for path, _ in walk_entries(Path(directory), dereference):
        if path.is_dir() and (dereference or not path.is_symlink()):
            directories += 1
        else:
            files += 1
            size += path.stat().st_size if path.exists() else 0
    return TreeSize(files=files, directories=directories, bytes=size)


def build(
    directory: str | Path,
    archive: str | Path,
    *,
    dereference: bool = True,
    compression: Compression = "none",
) -> None:
    """An archive of the *contents* of ``directory``: members ``a``, ``sub/b`` ..."""
    with tarfile.open(archive, _WRITE_MODES[compression], dereference=dereference) as tar:
        for path, arcname in walk_entries(Path(directory), dereference):
            tar.add(path, arcname=arcname, recursive=False)


def build_single(path: str | Path, archive: str | Path, arcname: str) -> None:
    """An archive of the one file ``path`` (followed if a link), named ``arcname``."""
    with tarfile.open(archive, "w", dereference=True) as tar:
        tar.add(path, arcname=arcname, recursive=False)


def _strip(name: str, components: int) -> str:
    parts = [p for p in name.split("/") if p not in ("", ".")]
    return "/".join(parts[components:])


def extract(archive: str | Path, directory: str | Path, *, strip_components: int = 0) -> None:
    """Unpack ``archive`` (any compression) into ``directory``, dropping ``strip_components``
    leading path components (``./`` does not count as one)."""
    with tarfile.open(archive, "r:*") as tar:
        members = []
        for member in tar:
            name = _strip(member.name, strip_components)
            if not name:
                continue
            if member.islnk():
                member.linkname = _strip(member.linkname, strip_components)
            member.name = name
            members.append(member)
        _extract_safely(tar, directory, members)


def _extract_safely(
    tar: tarfile.TarFile, directory: str | Path, members: list[tarfile.TarInfo]
) -> None:
    """Extract without letting a member name escape ``directory``. Symlinks are kept as they
    were on the cluster, whatever they point to (as ``get`` without dereference does)."""
    if hasattr(tarfile, "tar_filter"):  # Python >= 3.11.4
        tar.extractall(directory, members=members, filter="tar")
        return
    root = os.path.realpath(directory)
    for member in members:
        target = os.path.realpath(os.path.join(root, member.name))
        if os.path.isabs(member.name) or os.path.commonpath([root, target]) != root:
            raise OSError(f"refusing to extract {member.name!r} outside {directory}")
    tar.extractall(directory, members=members)  # noqa: S202 (names checked above)


def repack(
    source: str | Path,
    target: str | Path,
    *,
    compression: Compression,
    strip_components: int = 1,
) -> None:
    """Copy the archive ``source`` to ``target`` with leading components removed from names."""
    with (
        tarfile.open(source, "r:*") as src,
        tarfile.open(target, _WRITE_MODES[compression]) as dst,
    ):
        for member in src:
            name = _strip(member.name, strip_components)
            if not name:
                continue
            member.name = name
            if member.islnk():
                member.linkname = _strip(member.linkname, strip_components)
            dst.addfile(member, src.extractfile(member) if member.isfile() else None)
