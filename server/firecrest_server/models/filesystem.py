from typing import Literal

from pydantic import AliasChoices, Field

from .base import CamelModel


class FileEntry(CamelModel):
    """One line of ``ls -l``, as FirecREST v2 reports it."""

    name: str
    type: str  # d, -, l, b, c, p, s
    link_target: str | None = None
    user: str
    group: str
    permissions: str  # rwxr-xr-x
    last_modified: str  # 2024-10-23T09:06:00 (UTC)
    size: str


class ListResponse(CamelModel):
    output: list[FileEntry]


class FileEntryResponse(CamelModel):
    output: FileEntry


class StatResult(CamelModel):
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


class StatResponse(CamelModel):
    output: StatResult


class FileContent(CamelModel):
    content: str
    content_type: Literal["lines", "bytes"]
    start_position: int
    end_position: int


class FileContentResponse(CamelModel):
    output: FileContent


class TextResponse(CamelModel):
    output: str


class Checksum(CamelModel):
    algorithm: str = "SHA256"
    checksum: str


class ChecksumResponse(CamelModel):
    output: Checksum


class PathRequest(CamelModel):
    # FirecREST v2 documents this as `sourcePath` (also reading `source_path` and `path`), and
    # pyfirecrest sends `sourcePath` for mkdir, symlink and compress, `path` for the others.
    path: str = Field(validation_alias=AliasChoices("sourcePath", "source_path", "path"))


class MkdirRequest(PathRequest):
    parent: bool = False


class SymlinkRequest(PathRequest):
    link_path: str


class ChmodRequest(PathRequest):
    mode: str


class ChownRequest(PathRequest):
    owner: str | None = None
    group: str | None = None


Compression = Literal["none", "gzip", "bzip2", "xz"]


class CompressRequest(PathRequest):
    target_path: str
    match_pattern: str | None = None
    dereference: bool = False
    compression: Compression = "gzip"


class ExtractRequest(PathRequest):
    target_path: str
    compression: Compression = "gzip"
