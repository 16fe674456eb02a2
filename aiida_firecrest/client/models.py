"""Typed views of the FirecREST v2 JSON the client reads.

Parsing is lenient where servers differ (FirecREST's own versions, this project's server): unknown
keys are ignored, and both camelCase and snake_case are read where servers have used both.
"""

from __future__ import annotations

import calendar
import stat as stat_module
import time
from dataclasses import dataclass, field
from typing import Any, Literal

# tar's compressions, as FirecREST names them.
Compression = Literal["none", "gzip", "bzip2", "xz"]

# pyfirecrest's fixed direct-transfer limit, for servers that do not advertise theirs.
DEFAULT_MAX_OPS_FILE_SIZE = 1024 * 1024

# Extensions of this project's server, advertised in /status/systems.
CAPABILITY_OPS_CP = "filesystem.ops.cp"
CAPABILITY_OPS_MV = "filesystem.ops.mv"
CAPABILITY_TREE = "filesystem.tree"
# PUT ops/tree?create=true: the directory is made by the same request.
CAPABILITY_TREE_CREATE = "filesystem.tree.create"


def pick(mapping: dict[str, Any] | None, *keys: str, default: Any = None) -> Any:
    """The first of ``keys`` present (and not None) in ``mapping``."""
    if not mapping:
        return default
    for key in keys:
        value = mapping.get(key)
        if value is not None:
            return value
    return default


@dataclass(frozen=True)
class SystemInfo:
    """One entry of ``GET /status/systems``: what the client needs to choose how to do things."""

    name: str
    capabilities: frozenset[str] = frozenset()
    max_ops_file_size: int = DEFAULT_MAX_OPS_FILE_SIZE
    default_work_dirs: tuple[str, ...] = ()
    server_version: str | None = None

    @classmethod
    def from_wire(cls, raw: dict[str, Any]) -> SystemInfo:
        server = raw.get("server") or {}
        data_operation = pick(raw, "dataOperation", "data_operation", default={})
        limit = pick(data_operation, "maxOpsFileSize", "max_ops_file_size")
        file_systems = pick(raw, "fileSystems", "file_systems", default=[])
        capabilities = [c for c in server.get("capabilities") or [] if isinstance(c, str)]
        return cls(
            name=raw["name"],
            capabilities=frozenset(capabilities),
            max_ops_file_size=(
                int(limit) if isinstance(limit, int) and limit > 0 else DEFAULT_MAX_OPS_FILE_SIZE
            ),
            default_work_dirs=tuple(
                fs["path"]
                for fs in file_systems
                if isinstance(fs, dict) and pick(fs, "defaultWorkDir", "default_work_dir")
            ),
            server_version=server.get("version"),
        )

    def supports(self, capability: str) -> bool:
        return capability in self.capabilities


_TYPE_BITS = {
    "d": stat_module.S_IFDIR,
    "-": stat_module.S_IFREG,
    "l": stat_module.S_IFLNK,
    "b": stat_module.S_IFBLK,
    "c": stat_module.S_IFCHR,
    "p": stat_module.S_IFIFO,
    "s": stat_module.S_IFSOCK,
}


def permission_bits(permissions: str) -> int:
    """``rwxr-sr-t`` → 0o3755: the inverse of ``ls -l``'s permission column."""
    if len(permissions) < 9:
        return 0
    bits = 0
    for i, char in enumerate(permissions[:9]):
        shift = 8 - i
        if char in "rwxst":
            bits |= 1 << shift
    specials = {2: stat_module.S_ISUID, 5: stat_module.S_ISGID, 8: stat_module.S_ISVTX}
    for position, flag in specials.items():
        if permissions[position] in "sStT":
            bits |= flag
    return bits


def parse_timestamp(text: str | None) -> float | None:
    """``2024-10-23T09:06:00`` (UTC, as FirecREST's ls prints it) → epoch seconds."""
    if not text:
        return None
    try:
        return float(calendar.timegm(time.strptime(text[:19], "%Y-%m-%dT%H:%M:%S")))
    except ValueError:
        return None


@dataclass(frozen=True)
class FileEntry:
    """One line of ``ops/ls``."""

    name: str
    type: str  # d, -, l, b, c, p, s
    link_target: str | None
    user: str
    group: str
    permissions: str
    last_modified: str
    size: int

    @classmethod
    def from_wire(cls, raw: dict[str, Any]) -> FileEntry:
        size = raw.get("size")
        try:
            size_value = int(size) if size is not None else 0
        except ValueError:
            size_value = 0
        return cls(
            name=raw["name"],
            type=raw.get("type") or "-",
            link_target=pick(raw, "linkTarget", "link_target"),
            user=str(raw.get("user", "")),
            group=str(raw.get("group", "")),
            permissions=raw.get("permissions") or "",
            last_modified=pick(raw, "lastModified", "last_modified", default=""),
            size=size_value,
        )

    @property
    def is_dir(self) -> bool:
        return self.type == "d"

    @property
    def is_link(self) -> bool:
        return self.type == "l"

    @property
    def is_file(self) -> bool:
        return self.type == "-"

    @property
    def mode(self) -> int:
        return _TYPE_BITS.get(self.type, 0) | permission_bits(self.permissions)

    @property
    def mtime(self) -> float | None:
        return parse_timestamp(self.last_modified)


@dataclass(frozen=True)
class StatResult:
    """``ops/stat``: the fields of ``os.stat_result`` that FirecREST reports."""

    mode: int
    ino: int
    dev: int
    nlink: int
    uid: int
    gid: int
    size: int
    atime: int
    mtime: int
    ctime: int

    @classmethod
    def from_wire(cls, raw: dict[str, Any]) -> StatResult:
        return cls(**{name: int(raw.get(name) or 0) for name in cls.__dataclass_fields__})

    @property
    def is_dir(self) -> bool:
        return stat_module.S_ISDIR(self.mode)

    @property
    def is_file(self) -> bool:
        return stat_module.S_ISREG(self.mode)

    @property
    def is_link(self) -> bool:
        return stat_module.S_ISLNK(self.mode)


@dataclass(frozen=True)
class TransferJob:
    """The ``transferJob`` of a /filesystem/{system}/transfer/* answer."""

    job_id: str
    system: str
    working_directory: str | None
    output_log: str | None
    error_log: str | None

    @classmethod
    def from_wire(cls, raw: dict[str, Any]) -> TransferJob:
        logs = raw.get("logs") or {}
        return cls(
            job_id=str(pick(raw, "jobId", "job_id")),
            system=raw["system"],
            working_directory=pick(raw, "workingDirectory", "working_directory"),
            output_log=pick(logs, "outputLog", "output_log"),
            error_log=pick(logs, "errorLog", "error_log"),
        )


@dataclass(frozen=True)
class UserInfo:
    name: str
    uid: str
    group: str
    groups: tuple[str, ...] = field(default=())

    @classmethod
    def from_wire(cls, raw: dict[str, Any]) -> UserInfo:
        user = raw.get("user") or {}
        group = raw.get("group") or {}
        return cls(
            name=str(user.get("name", "")),
            uid=str(user.get("id", "")),
            group=str(group.get("name", "")),
            groups=tuple(str(g.get("name", "")) for g in raw.get("groups") or []),
        )
