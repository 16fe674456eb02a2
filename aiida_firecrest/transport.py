"""AiiDA transport ``firecrest``: files on an HPC system through a FirecREST v2 API.

The semantics are AiiDA's (those of ``core.ssh_async``): ``put``/``get`` copy a directory *into*
an existing destination and *as* a missing one, and a source ending in ``/`` merges its contents;
``mkdir`` fails on an existing path; ``copy``, ``symlink`` and ``get`` expand globs; ``compress``
and ``extract`` speak tar with a root directory. How each is done on the server is decided in
``remote`` (which requests exist) and ``trees`` (how whole directories move).

There is no shell: ``exec_command_wait`` and ``gotocomputer_command`` raise
``NotImplementedError``, which AiiDA treats as "not available". Jobs go through the ``firecrest``
scheduler, which uses this transport's ``client``.

Failures are ``OSError`` subclasses, except that ``mkdir``, ``copy``, ``compress`` and ``extract``
raise ``FirecrestUnavailableError`` when the API could not be used at all (see there).
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import glob as local_glob
import os
import posixpath
import stat
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, ParamSpec, TypeVar

from aiida.common.exceptions import InvalidOperation
from aiida.transports import AsyncTransport, Transport
from aiida.transports.transport import TransportInternalError, TransportPath
from aiida.transports.util import FileAttribute

from . import archives, remote_glob, trees
from .client import FileEntry, FirecrestClient
from .client.errors import FirecrestFileNotFoundError, is_unavailable
from .options import AUTH_OPTIONS, DEFAULT_SAFE_INTERVAL, SHELL_OPTIONS, TransportSettings
from .remote import RemoteFileSystem
from .remote_glob import has_magic
from .reuse import ComputerReuse, reuse_for

_P = ParamSpec("_P")
_T = TypeVar("_T")


def _str(path: TransportPath) -> str:
    return str(path)


class FirecrestUnavailableError(TransportInternalError):
    """The API could not be used at all (unreachable, the connection broke, no answer in time,
    or 424/429/502/503/504 after the client's own retries).

    Deliberately not an ``OSError``, where AiiDA's engine reads an ``OSError`` as an answer about
    the files: from ``mkdir`` as "the directory exists" (it then moves the calculation's
    directory to lost+found), from ``compress``/``extract``/``copy`` in stashing and unstashing
    as "cannot be done" (it then logs and skips them, and the calculation finishes without its
    stash). Any other exception makes the engine retry the step with its exponential backoff,
    which is what an outage needs, and what happens when an SSH connection drops.
    """


@contextlib.contextmanager
def _unavailable_is_not_an_answer(operation: str) -> Iterator[None]:
    try:
        yield
    except OSError as exc:
        if is_unavailable(exc):
            raise FirecrestUnavailableError(f"{operation}: {exc}") from exc
        raise


class FirecrestTransport(AsyncTransport):
    """Files on an HPC system through a FirecREST v2 compatible API (no shell)."""

    _DEFAULT_SAFE_OPEN_INTERVAL = DEFAULT_SAFE_INTERVAL
    _valid_auth_options = AUTH_OPTIONS
    # aiida-core's own use_login_shell and safe_interval, replaced by versions that are not
    # prompted for: accepted so that configurations written for other transports work.
    _common_auth_options = SHELL_OPTIONS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # No network I/O here: AiiDA constructs transports synchronously inside its event loop.
        self.settings = TransportSettings.pop_from(kwargs)
        # aiida-core's Transport.__init__ has no annotations.
        super().__init__(*args, safe_interval=self.settings.safe_interval, **kwargs)  # type: ignore[no-untyped-call]
        self._client: FirecrestClient | None = None
        self._fs: RemoteFileSystem | None = None
        self._username: str | None = None
        self._reuse: ComputerReuse | None = None

    def run_command_blocking(
        self, func: Callable[_P, Awaitable[_T]], *args: _P.args, **kwargs: _P.kwargs
    ) -> _T:
        """aiida-core's, typed: the scheduler runs the client's coroutines through it."""
        # aiida-core's Transport.run_command_blocking has no annotations.
        result: _T = super().run_command_blocking(func, *args, **kwargs)  # type: ignore[no-untyped-call]
        return result

    @classmethod
    def _get_use_login_shell_suggestion_string(cls, computer: Any) -> None:
        return None  # aiida-core suggests True, which would store a meaningless setting

    def __str__(self) -> str:
        state = "OPEN" if self._is_open else "CLOSED"
        return (
            f"{state} [FirecrestTransport {self.settings.url} "
            f"system={self.settings.compute_resource}]"
        )

    # ---------------------------------------------------------------------------- identity

    @property
    def compute_resource(self) -> str:
        return self.settings.compute_resource

    @property
    def billing_account(self) -> str | None:
        return self.settings.billing_account

    @property
    def client(self) -> FirecrestClient:
        """The HTTP client (for the scheduler); only while the transport is open."""
        if self._client is None:
            raise TransportInternalError("The FirecREST transport is not open")
        return self._client

    @property
    def fs(self) -> RemoteFileSystem:
        if self._fs is None:
            raise TransportInternalError("The FirecREST transport is not open")
        return self._fs

    # ------------------------------------------------------------------------ open / close

    async def open_async(self) -> FirecrestTransport:
        if self._is_open:
            raise InvalidOperation("Cannot open the transport twice")
        settings = self.settings
        # The token, the system's capabilities and the user name of the last open (reuse.py).
        self._reuse = reuse = reuse_for(settings)
        self._client = FirecrestClient(
            settings.url,
            reuse.token,
            max_concurrent=settings.max_io_allowed,
        )
        info = reuse.system_info()
        if info is not None:
            self._client.know_system(info)
        self._fs = RemoteFileSystem(
            self._client,
            settings.compute_resource,
            account=settings.billing_account,
            temp_directory=settings.temp_directory,
            checksum_check=settings.checksum_check,
            info=info,
            on_info=lambda info: reuse.remember("system_info", info),
        )
        self._username = reuse.username()
        self._is_open = True
        return self

    async def close_async(self) -> None:
        if not self._is_open:
            raise InvalidOperation("Cannot close the transport: it is already closed")
        client, self._client, self._fs = self._client, None, None
        self._is_open = False
        if client is not None:
            await client.aclose()

    # ------------------------------------------------------------------------------ no shell

    async def exec_command_wait_async(
        self,
        command: str,
        stdin: str | None = None,
        encoding: str = "utf-8",
        workdir: TransportPath | None = None,
        **kwargs: Any,
    ) -> tuple[int, str, str]:
        raise NotImplementedError("The firecrest transport cannot run commands (no shell)")

    def gotocomputer_command(self, remotedir: TransportPath | None = None) -> str:
        raise NotImplementedError("The firecrest transport has no shell to go to")

    # ---------------------------------------------------------------------------- identity

    async def whoami_async(self) -> str:
        if self._username is None:
            self._username = (await self.client.userinfo(self.compute_resource)).name
            if self._reuse is not None:
                self._reuse.remember("username", self._username)
        return self._username

    async def normalize_async(self, path: TransportPath = ".") -> str:
        path = _str(path)
        if not path.startswith("/"):
            raise OSError(f"Cannot resolve the relative path {path!r}: give an absolute path")
        return posixpath.normpath(path)

    # ------------------------------------------------------------------------------ looking

    async def path_exists_async(self, path: TransportPath) -> bool:
        path = _str(path)
        return bool(path) and await self.fs.exists(path)

    async def isdir_async(self, path: TransportPath) -> bool:
        path = _str(path)
        return bool(path) and await self.fs.isdir(path)

    async def isfile_async(self, path: TransportPath) -> bool:
        path = _str(path)
        return bool(path) and await self.fs.isfile(path)

    async def get_attribute_async(self, path: TransportPath) -> FileAttribute:
        found = await self.fs.stat(_str(path), dereference=False)  # lstat, as core.ssh_async
        attributes = FileAttribute()
        attributes["st_size"] = found.size
        attributes["st_uid"] = found.uid
        attributes["st_gid"] = found.gid
        attributes["st_mode"] = found.mode
        attributes["st_atime"] = found.atime
        attributes["st_mtime"] = found.mtime
        return attributes

    async def listdir_async(self, path: TransportPath, pattern: str | None = None) -> list[str]:
        path = _str(path)
        if pattern and "/" in pattern:
            base = path.rstrip("/") + "/"
            matches = await self.glob_async(posixpath.join(path, pattern))
            return [m[len(base) :] if m.startswith(base) else m for m in matches]
        return _matching([e.name for e in await self.fs.listdir(path)], pattern)

    async def listdir_withattributes_async(
        self, path: TransportPath, pattern: str | None = None
    ) -> list[dict[str, Any]]:
        """Names with attributes from one ``ls`` (uid/gid numeric); ``ls`` reports no access
        time, so ``st_atime`` is the modification time."""
        path = _str(path)
        entries = await self.fs.listdir(path, numeric_uid=True)
        wanted = set(_matching([e.name for e in entries], pattern))
        result = []
        for entry in entries:
            if entry.name not in wanted:
                continue
            is_dir = entry.is_dir or (
                entry.is_link and await self.fs.isdir(posixpath.join(path, entry.name))
            )
            result.append({"name": entry.name, "attributes": _attributes(entry), "isdir": is_dir})
        return result

    async def glob_async(self, pathname: TransportPath) -> list[str]:
        return await remote_glob.glob(self.fs, _str(pathname))

    # ----------------------------------------------------------------------------- creating

    async def mkdir_async(self, path: TransportPath, ignore_existing: bool = False) -> None:
        path = _str(path)
        with _unavailable_is_not_an_answer(f"mkdir {path}"):
            try:
                await self.fs.mkdir(path)
            except FileExistsError:
                if ignore_existing and await self.fs.isdir(path):
                    return
                raise

    async def makedirs_async(self, path: TransportPath, ignore_existing: bool = False) -> None:
        path = _str(path)
        if ignore_existing:
            # `mkdir -p` is exactly that, in one request: an existing directory is fine, an
            # existing file is an error. (AiiDA makes every calculation's shard directories
            # this way, so it is one request per calculation instead of two.)
            await self.fs.mkdir(path, parents=True)
            return
        try:
            await self.fs.mkdir(path)  # the usual case: the parent exists, one request
            return
        except FileNotFoundError:
            pass
        await self.fs.mkdir(path, parents=True)

    async def symlink_async(
        self, remotesource: TransportPath, remotedestination: TransportPath
    ) -> None:
        source, destination = _str(remotesource), _str(remotedestination)
        if not has_magic(source):
            await self.fs.symlink(source, destination)
            return
        if has_magic(destination):
            raise ValueError("`remotedestination` cannot have patterns")
        for match in await self.glob_async(source):
            await self.fs.symlink(match, posixpath.join(destination, posixpath.basename(match)))

    async def chmod_async(
        self, path: TransportPath, mode: int, follow_symlinks: bool = True
    ) -> None:
        path = _str(path)
        if not path:
            raise OSError("Input path is an empty argument.")
        await self.fs.chmod(path, mode)

    # ----------------------------------------------------------------------------- removing

    async def remove_async(self, path: TransportPath) -> None:
        path = _str(path)
        found = await self.fs.stat(path, dereference=False)
        if found.is_dir:
            raise IsADirectoryError(f"The path {path} is a directory")
        await self.fs.rm(path)

    async def rmdir_async(self, path: TransportPath) -> None:
        path = _str(path)
        if await self.fs.listdir(path):
            raise OSError(f"Error while removing directory {path}: directory is not empty")
        await self.fs.rm(path)

    async def rmtree_async(self, path: TransportPath) -> None:
        await self.fs.rm(_str(path))

    async def rename_async(self, oldpath: TransportPath, newpath: TransportPath) -> None:
        old, new = _str(oldpath), _str(newpath)
        if not old or not new:
            raise ValueError("oldpath and newpath must be non-empty strings")
        if await self.fs.stat_or_none(new, dereference=False) is not None:
            raise OSError(f"Cannot rename {old} to {new}: destination exists")
        await self.fs.mv(old, new)

    # ------------------------------------------------------------------------ remote copies

    async def copy_async(
        self,
        remotesource: TransportPath,
        remotedestination: TransportPath,
        dereference: bool = False,
        recursive: bool = True,
        preserve: bool = False,
    ) -> None:
        source, destination = _str(remotesource), _str(remotedestination)
        if not destination:
            raise ValueError("remotedestination must be a non empty string")
        if not source:
            raise ValueError("remotesource must be a non empty string")
        if has_magic(destination):
            raise ValueError("Pathname patterns are not allowed in the destination")
        with _unavailable_is_not_an_answer(f"copy {source} to {destination}"):
            await self._copy(source, destination, dereference, recursive)

    async def _copy(
        self, source: str, destination: str, dereference: bool, recursive: bool
    ) -> None:
        if not has_magic(source):
            await self._copy_one(source, destination, dereference, recursive)
            return
        matches = await self.glob_async(source)
        if not matches:
            raise FileNotFoundError(f"No remote path matches {source}")
        if len(matches) > 1 and not await self.fs.isdir(destination):
            raise OSError("Can't copy more than one file in the same destination file")
        for match in matches:
            await self._copy_one(match, destination, dereference, recursive)

    async def _copy_one(
        self, source: str, destination: str, dereference: bool, recursive: bool
    ) -> None:
        if not recursive and await self.fs.isdir(source):
            raise IsADirectoryError(f"{source} is a directory; copy it with recursive=True")
        await self.fs.cp(source, destination, dereference=dereference)

    async def copyfile_async(
        self,
        remotesource: TransportPath,
        remotedestination: TransportPath,
        dereference: bool = False,
        preserve: bool = False,
    ) -> None:
        await self.copy_async(remotesource, remotedestination, dereference, recursive=False)

    async def copytree_async(
        self,
        remotesource: TransportPath,
        remotedestination: TransportPath,
        dereference: bool = False,
        preserve: bool = False,
    ) -> None:
        await self.copy_async(remotesource, remotedestination, dereference, recursive=True)

    async def copy_from_remote_to_remote_async(
        self,
        transportdestination: Transport,
        remotesource: TransportPath,
        remotedestination: TransportPath,
        **kwargs: Any,
    ) -> None:
        """Through a local sandbox: get from here, put there."""
        from aiida.common.folders import SandboxFolder

        get_options = {"dereference": kwargs.pop("dereference", True), "overwrite": True}
        put_options = {
            "dereference": True,
            "overwrite": kwargs.pop("overwrite", True),
            "ignore_nonexisting": kwargs.pop("ignore_nonexisting", False),
        }
        kwargs.pop("callback", None)
        if kwargs:
            self.logger.error(f"Unknown parameters passed to copy_from_remote_to_remote: {kwargs}")
        with SandboxFolder() as sandbox:
            local = str(sandbox.abspath)
            await self.get_async(remotesource, local, **get_options)
            for name in sandbox.get_content_list():
                await transportdestination.put_async(
                    os.path.join(local, name), remotedestination, **put_options
                )

    # ------------------------------------------------------------------------------ upload

    async def put_async(
        self,
        localpath: TransportPath,
        remotepath: TransportPath,
        dereference: bool = True,
        overwrite: bool = True,
        ignore_nonexisting: bool = False,
        *args: Any,
        **kwargs: Any,
    ) -> None:
        local, remote = _str(localpath), _str(remotepath)
        if not os.path.isabs(local):
            raise ValueError("The localpath must be an absolute path")
        if not os.path.isabs(remote):
            raise OSError("The remotepath must be an absolute path")
        if has_magic(local):
            if has_magic(remote):
                raise ValueError("Pathname patterns are not allowed in the destination")
            matches = await asyncio.to_thread(local_glob.glob, local)
            into_directory = False
            if len(matches) > 1:
                if await self.fs.isfile(remote):
                    raise OSError("Remote destination is not a directory")
                if not await self.fs.exists(remote):
                    raise OSError("Remote directory does not exist")
                into_directory = True
            for match in matches:
                if await _local_kind(match) == "file":
                    if into_directory or await self.fs.isdir(remote):
                        target = posixpath.join(remote, os.path.basename(match))
                    else:
                        target = remote
                    await self.putfile_async(match, target, dereference, overwrite)
                else:
                    await self.puttree_async(match, remote, dereference, overwrite)
            return
        kind = await _local_kind(local)
        if kind == "dir":
            await self.puttree_async(local, remote, dereference, overwrite)
        elif kind == "file" and overwrite:
            await self.fs.put_file(local, posixpath.normpath(remote))
        elif kind == "file":
            if await self.fs.isdir(remote):
                remote = posixpath.join(remote, os.path.basename(local))
            await self.putfile_async(local, remote, dereference, overwrite)
        elif not ignore_nonexisting:
            raise OSError(f"The local path {local} does not exist")

    async def putfile_async(
        self,
        localpath: TransportPath,
        remotepath: TransportPath,
        dereference: bool = True,
        overwrite: bool = True,
        *args: Any,
        **kwargs: Any,
    ) -> None:
        local, remote = _str(localpath), _str(remotepath)
        if not os.path.isabs(local):
            raise ValueError("The localpath must be an absolute path")
        if not os.path.isabs(remote):
            raise OSError("The remotepath must be an absolute path")
        if not await asyncio.to_thread(os.path.isfile, local):
            raise FileNotFoundError(f"The local file {local} does not exist")
        if not overwrite and await self.fs.isfile(remote):
            raise OSError("Destination already exists: not overwriting it")
        await self.fs.upload(local, posixpath.normpath(remote))

    async def puttree_async(
        self,
        localpath: TransportPath,
        remotepath: TransportPath,
        dereference: bool = True,
        overwrite: bool = True,
        *args: Any,
        **kwargs: Any,
    ) -> None:
        local, remote = _str(localpath), _str(remotepath)
        if not os.path.isabs(local):
            raise ValueError("The localpath must be an absolute path")
        kind = await _local_kind(local)
        if kind is None:
            raise OSError("The localpath does not exists")
        if kind != "dir":
            raise ValueError(f"Input localpath is not a folder: {local}")
        if not remote:
            raise OSError("remotepath must be a non empty string")
        if not os.path.isabs(remote):
            raise OSError("The remotepath must be an absolute path")
        # Creating the target is the usual case and answers whether it existed: one request
        # instead of a stat and a mkdir, and none at all where the server makes the directory
        # with the tree request itself (AiiDA puts every calculation's .aiida folder this way).
        try:
            if await self.fs.has_tree_create():
                await trees.put_contents(
                    self.fs, local, posixpath.normpath(remote), dereference=dereference, create=True
                )
                return
            await self.fs.mkdir(posixpath.normpath(remote))
            existing = None
        except FileNotFoundError:  # a parent is missing too
            await self.makedirs_async(remote)
            existing = None
        except FileExistsError:
            existing = await self.fs.stat_or_none(remote)
            if existing is None:  # gone again meanwhile
                await self.makedirs_async(remote)
        if existing is not None and not overwrite:
            raise OSError("Can't overwrite existing files")
        if existing is not None and not existing.is_dir:
            raise OSError("Cannot copy a directory into a file")
        if existing is not None:
            # Into an existing directory: as dest/basename(src); a source ending in "/" has an
            # empty basename, so its contents merge into dest (os.path.split semantics).
            remote = posixpath.join(remote, os.path.split(local)[1])
            await self.makedirs_async(remote, ignore_existing=overwrite)
        await trees.put_contents(
            self.fs, local, posixpath.normpath(remote), dereference=dereference
        )

    # ---------------------------------------------------------------------------- download

    async def get_async(
        self,
        remotepath: TransportPath,
        localpath: TransportPath,
        dereference: bool = True,
        overwrite: bool = True,
        ignore_nonexisting: bool = False,
        *args: Any,
        **kwargs: Any,
    ) -> None:
        remote, local = _str(remotepath), _str(localpath)
        if not os.path.isabs(local):
            raise ValueError("The localpath must be an absolute path")
        if not remote:
            raise OSError("The remotepath must be a non empty string")
        if has_magic(remote):
            if has_magic(local):
                raise ValueError("Pathname patterns are not allowed in the destination")
            matches = await self.glob_async(remote)
            into_directory = False
            if len(matches) > 1:
                kind = await _local_kind(local)
                if kind == "file":
                    raise OSError("Local destination is not a directory")
                if kind is None:
                    raise OSError("Local directory does not exist")
                into_directory = True
            for match in matches:
                if await self.fs.isfile(match):
                    target = (
                        os.path.join(local, posixpath.basename(match)) if into_directory else local
                    )
                    await self.getfile_async(match, target, dereference, overwrite)
                else:
                    await self.gettree_async(match, local, dereference, overwrite)
            return
        if overwrite and not remote.endswith("/"):
            # A file is the usual case: download it straight away, without a stat first.
            target = local
            if await _local_kind(local) == "dir":
                target = os.path.join(local, posixpath.basename(remote))
            try:
                await self.fs.get_file(posixpath.normpath(remote), target)
                return
            except FirecrestFileNotFoundError:
                if ignore_nonexisting:
                    return
                raise OSError(f"The remote path {remote} does not exist") from None
            except IsADirectoryError:
                await self.gettree_async(remote, local, dereference, overwrite)
                return
        found = await self.fs.stat_or_none(remote)
        if found is not None and found.is_dir:
            await self.gettree_async(remote, local, dereference, overwrite)
        elif found is not None:
            if await _local_kind(local) == "dir":
                local = os.path.join(local, posixpath.basename(remote.rstrip("/")))
            await self.getfile_async(remote, local, dereference, overwrite, size=found.size)
        elif not ignore_nonexisting:
            raise OSError(f"The remote path {remote} does not exist")

    async def getfile_async(
        self,
        remotepath: TransportPath,
        localpath: TransportPath,
        dereference: bool = True,
        overwrite: bool = True,
        *args: Any,
        size: int | None = None,
        **kwargs: Any,
    ) -> None:
        remote, local = _str(remotepath), _str(localpath)
        if not os.path.isabs(local):
            raise ValueError("localpath must be an absolute path")
        if not remote:
            raise OSError("The remotepath must be a non empty string")
        if not overwrite and await _local_kind(local) == "file":
            raise OSError("Destination already exists: not overwriting it")
        await self.fs.download(posixpath.normpath(remote), local, size=size)

    async def gettree_async(
        self,
        remotepath: TransportPath,
        localpath: TransportPath,
        dereference: bool = True,
        overwrite: bool = True,
        *args: Any,
        **kwargs: Any,
    ) -> None:
        remote, local = _str(remotepath), _str(localpath)
        if not remote:
            raise OSError("Remotepath must be a non empty string")
        if not local:
            raise ValueError("Localpaths must be a non empty string")
        if not os.path.isabs(local):
            raise ValueError("Localpaths must be an absolute path")
        if not await self.fs.isdir(remote):
            raise OSError(f"Input remotepath is not a folder: {remote}")
        kind = await _local_kind(local)
        if kind is not None and not overwrite:
            raise OSError("Can't overwrite existing files")
        if kind == "file":
            raise OSError("Cannot copy a directory into a file")
        if kind != "dir":
            await asyncio.to_thread(os.makedirs, local, exist_ok=True)
        else:
            # Into an existing directory, as local/basename(remote); "dir/" merges its contents.
            local = os.path.join(local, posixpath.split(remote)[1])
            await asyncio.to_thread(os.makedirs, local, exist_ok=overwrite)
        await trees.get_contents(
            self.fs, posixpath.normpath(remote), local, dereference=dereference
        )

    # ----------------------------------------------------------------------------- archives

    async def compress_async(
        self,
        format: str,
        remotesources: TransportPath | list[TransportPath],
        remotedestination: TransportPath,
        root_dir: TransportPath,
        overwrite: bool = True,
        dereference: bool = False,
    ) -> None:
        sources = (
            list(remotesources) if isinstance(remotesources, list | tuple) else [remotesources]
        )
        with _unavailable_is_not_an_answer(f"compress to {remotedestination}"):
            await archives.compress(
                self.fs,
                self.glob_async,
                format,
                [_str(s) for s in sources],
                _str(remotedestination),
                _str(root_dir),
                overwrite=overwrite,
                dereference=dereference,
            )

    async def extract_async(
        self,
        remotesource: TransportPath,
        remotedestination: TransportPath,
        overwrite: bool = True,
        strip_components: int = 0,
    ) -> None:
        with _unavailable_is_not_an_answer(f"extract {remotesource}"):
            await archives.extract(
                self.fs,
                _str(remotesource),
                _str(remotedestination),
                overwrite=overwrite,
                strip_components=strip_components,
            )


async def _local_kind(path: str) -> str | None:
    """ "dir", "file", "other" or None (missing) for a local path, following symlinks; asked
    in a thread, as local file systems can be slow network mounts."""

    def kind() -> str | None:
        try:
            mode = os.stat(path).st_mode
        except (FileNotFoundError, NotADirectoryError):
            return None
        if stat.S_ISDIR(mode):
            return "dir"
        return "file" if stat.S_ISREG(mode) else "other"

    return await asyncio.to_thread(kind)


def _matching(names: list[str], pattern: str | None) -> list[str]:
    """``names`` matching a shell pattern, hidden names only for a pattern starting with ``.``
    (as ``ls PATTERN`` in a shell)."""
    if not pattern:
        return names
    if not pattern.startswith("."):
        names = [n for n in names if not n.startswith(".")]
    return [n for n in names if fnmatch.fnmatchcase(n, pattern)]


def _attributes(entry: FileEntry) -> FileAttribute:
    attributes = FileAttribute()
    attributes["st_size"] = entry.size
    attributes["st_uid"] = int(entry.user) if entry.user.isdigit() else None
    attributes["st_gid"] = int(entry.group) if entry.group.isdigit() else None
    attributes["st_mode"] = entry.mode
    attributes["st_mtime"] = entry.mtime or 0
    attributes["st_atime"] = entry.mtime or 0
    return attributes
