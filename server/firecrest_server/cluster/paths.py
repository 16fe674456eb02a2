"""Which paths a request may name: absolute, normalised, on a configured file system.

``CheckedPath`` is a path this check has passed. Operations that act on a path the caller named
take a ``CheckedPath``, so the type checker, not a convention, sees to it that every such path
went through ``checked_path`` first. A ``CheckedPath`` is a ``str`` at run time (no cost), and
only this module makes one (tests/server/unit/cluster/test_paths.py checks that).
"""

from __future__ import annotations

import posixpath
from typing import NewType

from ..config import SystemConfig
from ..errors import BadRequest

CheckedPath = NewType("CheckedPath", str)


def checked_path(system: SystemConfig, path: str | None, field: str = "path") -> CheckedPath:
    """The normalised form of ``path``, or 400 if it may not be used on ``system``.

    The operation then acts on the normalised path, so what was checked is what is used:
    ``/home/alice/link/../../etc`` is checked and used as ``/home/etc``, never resolved through
    ``link`` by the kernel. Symlinks inside an allowed file system can still point elsewhere;
    Unix permissions on the cluster remain the final guard.
    """
    if not path:
        raise BadRequest(f"`{field}` is required")
    if "\x00" in path:
        raise BadRequest(f"`{field}` must not contain NUL characters")
    if not path.startswith("/"):
        raise BadRequest(f"`{field}` must be an absolute path: {path!r}")
    normal = posixpath.normpath(path)
    if normal.startswith("//"):  # POSIX lets normpath keep exactly two leading slashes
        normal = "/" + normal.lstrip("/")
    if system.file_systems and not any(
        normal == fs.path or normal.startswith(fs.path.rstrip("/") + "/")
        for fs in system.file_systems
    ):
        allowed = ", ".join(fs.path for fs in system.file_systems)
        raise BadRequest(f"`{field}` {path!r} is not on a file system of {system.name} ({allowed})")
    return CheckedPath(normal)
