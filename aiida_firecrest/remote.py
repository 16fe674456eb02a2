"""The cluster's file system as the transport sees it: one place that knows *how* each operation
is done on the server at hand.

A server that advertises an extension (``filesystem.ops.cp``/``mv``, ``filesystem.tree``) gets
the fast synchronous request; a plain FirecREST gets the standard way (a transfer job for cp and
mv). A synchronous operation that times out on the login node (HTTP 408) is retried as a transfer
job, as pyfirecrest does. A file travels directly when it is below the server's direct-transfer
limit; above it, as a tar stream (``filesystem.tree``) or staged through S3 (``upload``,
``download``: the one place that chooses).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import posixpath
import uuid
from collections.abc import Callable
from pathlib import Path

from . import local_tar
from .client import (
    CAPABILITY_OPS_CP,
    CAPABILITY_OPS_MV,
    CAPABILITY_TREE,
    CAPABILITY_TREE_CREATE,
    FileEntry,
    FirecrestClient,
    FirecrestError,
    StatResult,
    SystemInfo,
    staging,
)
from .client.errors import is_unavailable
from .client.localfiles import file_size, read_bytes, scratch_directory, sha256_of
from .client.models import Compression

log = logging.getLogger(__name__)

# Errors that mean "there is nothing (reachable) at this path".
ABSENT = (FileNotFoundError, NotADirectoryError, PermissionError)


def _refused(exc: FirecrestError) -> bool:
    """The server answered the request with an error (rather than not answering at all)."""
    return exc.status_code is not None and not is_unavailable(exc)


class RemoteFileSystem:
    def __init__(
        self,
        client: FirecrestClient,
        system: str,
        *,
        account: str | None = None,
        temp_directory: str | None = None,
        checksum_check: bool = False,
        s3_parallel_parts: int = 4,
        info: SystemInfo | None = None,
        on_info: Callable[[SystemInfo], None] | None = None,
    ) -> None:
        self.client = client
        self.system = system
        self.account = account
        self.temp_directory = temp_directory
        self.checksum_check = checksum_check
        self.s3_parallel_parts = s3_parallel_parts
        self._info = info  # known already (reuse.py), else asked on first use
        self._on_info = on_info  # told what the server answered when asked

    async def info(self) -> SystemInfo:
        if self._info is None:
            self._info = await self.client.system_info(self.system)
            if self._on_info is not None:
                self._on_info(self._info)
        return self._info

    async def supports(self, capability: str) -> bool:
        return (await self.info()).supports(capability)

    # ------------------------------------------------------------------------------ looking

    async def stat(self, path: str, *, dereference: bool = True) -> StatResult:
        return await self.client.stat(self.system, path, dereference=dereference)

    async def stat_or_none(self, path: str, *, dereference: bool = True) -> StatResult | None:
        """None for a path that is not there, or that the API will not look at (a 400 for a
        path outside the system's file systems): for the transport, neither exists."""
        try:
            return await self.stat(path, dereference=dereference)
        except ABSENT:
            return None
        except FirecrestError as exc:
            if exc.status_code == 400:
                return None
            raise

    async def exists(self, path: str) -> bool:
        return await self.stat_or_none(path) is not None

    async def isdir(self, path: str) -> bool:
        found = await self.stat_or_none(path)
        return found is not None and found.is_dir

    async def isfile(self, path: str) -> bool:
        found = await self.stat_or_none(path)
        return found is not None and found.is_file

    async def listdir(self, path: str, *, numeric_uid: bool = False) -> list[FileEntry]:
        """The entries of directory ``path`` (following ``path`` itself if it is a symlink)."""
        entries = await self.client.ls(self.system, path, numeric_uid=numeric_uid)
        if len(entries) == 1 and entries[0].name == path:
            only = entries[0]
            if only.is_link and only.link_target:
                # `ls -l LINK` describes the link: list what it points to instead.
                target = posixpath.join(posixpath.dirname(path), only.link_target)
                return await self.listdir(posixpath.normpath(target), numeric_uid=numeric_uid)
            if not only.is_dir:
                raise NotADirectoryError(f"{path}: Not a directory")
        return entries

    async def walk(self, path: str, *, dereference: bool = True) -> list[FileEntry]:
        """Every entry below ``path``, names relative to it, in one request."""
        entries = await self.client.ls(self.system, path, recursive=True, dereference=dereference)
        # Some FirecREST versions name recursive entries by their full path.
        prefix = path.rstrip("/") + "/"
        return [
            dataclasses.replace(e, name=e.name[len(prefix) :]) if e.name.startswith(prefix) else e
            for e in entries
        ]

    # ----------------------------------------------------------------------------- changing

    async def mkdir(self, path: str, *, parents: bool = False) -> None:
        await self.client.mkdir(self.system, path, parents=parents)

    async def rm(self, path: str) -> None:
        """``rm -r``; as a transfer job when it takes too long on the login node."""
        try:
            await self.client.rm(self.system, path)
        except TimeoutError:
            log.info("rm %s timed out on the login node; running it as a transfer job", path)
            job = await self.client.transfer_rm(self.system, path, account=self.account)
            await self.client.wait_for_transfer(job)

    async def cp(self, source: str, target: str, *, dereference: bool = False) -> None:
        """``cp -R`` (so ``target`` may be an existing directory to copy into)."""
        if await self.supports(CAPABILITY_OPS_CP):
            try:
                await self.client.ops_cp(self.system, source, target, dereference=dereference)
                return
            except TimeoutError:
                log.info("cp %s timed out on the login node; using a transfer job", source)
        job = await self.client.transfer_cp(
            self.system, source, target, dereference=dereference, account=self.account
        )
        await self.client.wait_for_transfer(job)

    async def mv(self, source: str, target: str) -> None:
        if await self.supports(CAPABILITY_OPS_MV):
            try:
                await self.client.ops_mv(self.system, source, target)
                return
            except TimeoutError:
                log.info("mv %s timed out on the login node; using a transfer job", source)
        job = await self.client.transfer_mv(self.system, source, target, account=self.account)
        await self.client.wait_for_transfer(job)

    async def symlink(self, target: str, link_path: str) -> None:
        await self.client.symlink(self.system, target, link_path)

    async def chmod(self, path: str, mode: int) -> None:
        await self.client.chmod(self.system, path, mode)

    # ----------------------------------------------------------------------------- archives

    async def compress(
        self,
        source: str,
        target: str,
        *,
        compression: Compression,
        dereference: bool = False,
    ) -> None:
        try:
            await self.client.compress(
                self.system, source, target, compression=compression, dereference=dereference
            )
        except TimeoutError:
            log.info("compress %s timed out on the login node; using a transfer job", source)
            job = await self.client.transfer_compress(
                self.system,
                source,
                target,
                compression=compression,
                dereference=dereference,
                account=self.account,
            )
            await self.client.wait_for_transfer(job)

    async def extract(self, source: str, target: str, *, compression: Compression) -> None:
        try:
            await self.client.extract(self.system, source, target, compression=compression)
        except TimeoutError:
            log.info("extract %s timed out on the login node; using a transfer job", source)
            job = await self.client.transfer_extract(
                self.system, source, target, compression=compression, account=self.account
            )
            await self.client.wait_for_transfer(job)

    async def compression_of(self, path: str) -> Compression:
        """The compression of a tar archive on the cluster, from ``file``'s description."""
        description = (await self.client.file_type(self.system, path)).lower()
        markers: tuple[tuple[str, Compression], ...] = (
            ("gzip", "gzip"),
            ("bzip2", "bzip2"),
            ("xz", "xz"),
        )
        for marker, compression in markers:
            if marker in description:
                return compression
        return "none"

    # ---------------------------------------------------------------------------- transfers

    async def upload(self, local_path: str | Path, remote_path: str) -> None:
        """A file up: directly when small; above the direct-transfer limit, as a one-file tar
        stream when the server has ``filesystem.tree``, else through FirecREST's S3 staging."""
        info = await self.info()
        size = await file_size(local_path)
        directory, name = posixpath.split(remote_path)
        if size < info.max_ops_file_size:
            data = await read_bytes(local_path)
            await self.client.upload_bytes(self.system, directory, name, data)
        elif info.supports(CAPABILITY_TREE):
            async with scratch_directory() as scratch:
                archive = scratch / "file.tar"
                await asyncio.to_thread(local_tar.build_single, local_path, archive, name)
                await self.tree_upload(directory or "/", archive)
        else:
            staged = await self.client.transfer_upload(
                self.system, remote_path, size, account=self.account
            )
            await staging.send_parts(
                self.client.session, staged, local_path, size, parallel=self.s3_parallel_parts
            )
            await self.client.wait_for_transfer(staged.job)
        if self.checksum_check:
            await self._verify(local_path, remote_path)

    async def put_file(self, local_path: str | Path, remote_path: str) -> str:
        """Upload a file to ``remote_path`` or, when that is a directory, into it (as ``cp``
        does); returns where it went. A small file is sent without asking first, which saves a
        ``stat`` request in the usual case; only a refused upload looks for a directory."""
        into_directory = posixpath.join(remote_path, posixpath.basename(str(local_path)))
        if await file_size(local_path) >= (await self.info()).max_ops_file_size:
            # A large transfer costs too much to try blindly: ask first.
            target = into_directory if await self.isdir(remote_path) else remote_path
            await self.upload(local_path, target)
            return target
        try:
            await self.upload(local_path, remote_path)
            return remote_path
        except FirecrestError as exc:
            # Servers word "that is a directory" differently (ours: 400 "Is a directory").
            if not _refused(exc) or not await self.isdir(remote_path):
                raise
        await self.upload(local_path, into_directory)
        return into_directory

    async def get_file(self, remote_path: str, local_path: str | Path) -> None:
        """Download ``remote_path`` without asking what it is first (the usual file saves a
        ``stat`` request). FileNotFoundError when nothing is there, IsADirectoryError when it
        is a directory; the local file is only created once the server sends a file."""
        try:
            await self.download(remote_path, local_path)
        except FirecrestError as exc:
            if not _refused(exc) or isinstance(exc, FileNotFoundError):
                raise
            # Servers word "that is a directory" differently (ours: 400 "Is a directory").
            found = await self.stat_or_none(remote_path)
            if found is not None and found.is_dir:
                raise IsADirectoryError(f"{remote_path} is a directory") from exc
            raise

    async def download(
        self, remote_path: str, local_path: str | Path, *, size: int | None = None
    ) -> None:
        """A file down: directly when small, else staged through S3.

        With ``size`` (the caller listed the file) the way is chosen up front; without, the
        direct download is tried first and a 413 (too large) switches to staging, which saves
        a ``stat`` request for the usual, small file.
        """
        if size is None or size < (await self.info()).max_ops_file_size:
            try:
                await self.client.download_to(self.system, remote_path, local_path)
            except FirecrestError as exc:
                if size is not None or exc.status_code != 413:
                    raise
                await self._download_staged(remote_path, local_path)
        else:
            await self._download_staged(remote_path, local_path)
        if self.checksum_check:
            await self._verify(local_path, remote_path)

    async def _download_staged(self, remote_path: str, local_path: str | Path) -> None:
        staged = await self.client.transfer_download(self.system, remote_path, account=self.account)
        await self.client.wait_for_transfer(staged.job)
        await staging.fetch(self.client.session, staged, local_path)

    async def _verify(self, local_path: str | Path, remote_path: str) -> None:
        local, remote = await asyncio.gather(
            sha256_of(local_path), self.client.checksum(self.system, remote_path)
        )
        if local != remote:
            raise FirecrestError(
                f"Checksum mismatch between {local_path} (sha256 {local}) "
                f"and {remote_path} (sha256 {remote})"
            )

    async def has_tree_transfer(self) -> bool:
        return await self.supports(CAPABILITY_TREE)

    async def tree_download(self, path: str, local_tar: str | Path, *, dereference: bool) -> None:
        await self.client.tree_download(self.system, path, local_tar, dereference=dereference)

    async def has_tree_create(self) -> bool:
        return await self.supports(CAPABILITY_TREE_CREATE)

    async def tree_upload(self, path: str, local_tar: str | Path, *, create: bool = False) -> None:
        await self.client.tree_upload(self.system, path, local_tar, create=create)

    # ------------------------------------------------------------------------------ staging

    def staging_path(self, near: str, suffix: str = "") -> str:
        """A fresh name for a staging file or directory: in ``temp_directory`` when configured,
        else next to ``near`` (a place the caller is writing to anyway)."""
        base = self.temp_directory or posixpath.dirname(near.rstrip("/")) or "/"
        return posixpath.join(base, f".aiida-firecrest-{uuid.uuid4().hex}{suffix}")

    async def ensure_staging_directory(self) -> None:
        if self.temp_directory:
            await self.mkdir(self.temp_directory, parents=True)

    async def remove_quietly(self, path: str) -> None:
        """Clean-up that must not hide the error being reported."""
        try:
            await self.rm(path)
        except OSError as exc:
            log.warning("could not remove staging path %s: %s", path, exc)
