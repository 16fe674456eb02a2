"""``FirecrestClient``: typed methods for the FirecREST v2 endpoints the AiiDA plugin uses.

Each method is one endpoint (a request, or a submit with its recovery when the answer was lost;
``wait_for_job`` and ``wait_for_transfer`` poll one) and returns typed values or raises an
``OSError`` subclass (see ``errors``). How a file travels (direct, tar stream or staged) is
chosen above this layer, in ``RemoteFileSystem``. The client is async,
shares one HTTP session, and is safe to use from many coroutines at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from pathlib import Path
from typing import Any

import httpx

from .auth import TokenSource
from .errors import (
    FirecrestError,
    FirecrestFileExistsError,
    FirecrestFileNotFoundError,
    FirecrestTimeoutError,
    JobNotFoundError,
    answer_lost,
)
from .jobs import TRANSFER_SUCCESS_PHRASES, job_in_directory, poll_intervals, transfer_failure
from .localfiles import file_range, file_size, save_chunks
from .models import Compression, FileEntry, StatResult, SystemInfo, TransferJob, UserInfo
from .retry import RetryPolicy
from .session import DEFAULT_MAX_CONCURRENT, DEFAULT_TIMEOUT, ApiSession
from .slurm import is_final_state, job_state
from .staging import StagedDownload, StagedUpload

log = logging.getLogger(__name__)

# After a submit whose answer was lost, the job listing is read after these waits (seconds) for
# a job in the submit's working directory: an sbatch already running when its replica died
# reaches Slurm within a second or two (unless slurmctld makes it wait); only when none shows
# in 7 s is the submit sent again.
LOST_SUBMIT_LOOKUPS = (1.0, 2.0, 4.0)


class FirecrestClient:
    """An async client for one FirecREST v2 server (all systems behind it)."""

    def __init__(
        self,
        url: str,
        auth: TokenSource,
        *,
        max_concurrent: int = DEFAULT_MAX_CONCURRENT,
        retry: RetryPolicy | None = None,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        verify: bool | str = True,
        transport: httpx.AsyncBaseTransport | None = None,
        job_not_found_timeout: float = 20.0,
        max_poll_interval: float = 5.0,
        lost_submit_lookups: tuple[float, ...] = LOST_SUBMIT_LOOKUPS,
    ) -> None:
        self.session = ApiSession(
            url,
            auth,
            max_concurrent=max_concurrent,
            retry=retry,
            timeout=timeout,
            verify=verify,
            transport=transport,
        )
        self.job_not_found_timeout = job_not_found_timeout
        self.max_poll_interval = max_poll_interval
        self.lost_submit_lookups = lost_submit_lookups
        self._systems: dict[str, SystemInfo] | None = None

    @property
    def url(self) -> str:
        return self.session.base_url

    async def aclose(self) -> None:
        await self.session.aclose()

    async def __aenter__(self) -> FirecrestClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # -------------------------------------------------------------------------------- status

    async def systems(self) -> list[dict[str, Any]]:
        response = await self.session.request("GET", "/status/systems", idempotent=True)
        systems: list[dict[str, Any]] = response.json()["systems"]
        return systems

    async def system_info(self, system: str, *, refresh: bool = False) -> SystemInfo:
        """Capabilities and limits of ``system``, asked once per client."""
        if self._systems is None or refresh or system not in self._systems:
            self._systems = {raw["name"]: SystemInfo.from_wire(raw) for raw in await self.systems()}
        try:
            return self._systems[system]
        except KeyError:
            known = ", ".join(sorted(self._systems)) or "none"
            raise FirecrestError(
                f"System {system!r} is not served by {self.url} (systems: {known})"
            ) from None

    def know_system(self, info: SystemInfo) -> None:
        """Take ``info`` as the answer about its system (what an earlier client was told)."""
        self._systems = {**(self._systems or {}), info.name: info}

    async def userinfo(self, system: str) -> UserInfo:
        response = await self.session.request("GET", f"/status/{system}/userinfo", idempotent=True)
        return UserInfo.from_wire(response.json())

    # ------------------------------------------------------------------- filesystem: reading

    def _ops(self, system: str, operation: str) -> str:
        return f"/filesystem/{system}/ops/{operation}"

    async def ls(
        self,
        system: str,
        path: str,
        *,
        show_hidden: bool = True,
        recursive: bool = False,
        numeric_uid: bool = False,
        dereference: bool = False,
    ) -> list[FileEntry]:
        response = await self.session.request(
            "GET",
            self._ops(system, "ls"),
            params={
                "path": path,
                "showHidden": show_hidden,
                "recursive": recursive,
                "numericUid": numeric_uid,
                "dereference": dereference,
            },
            idempotent=True,
        )
        return [FileEntry.from_wire(raw) for raw in response.json()["output"] or []]

    async def stat(self, system: str, path: str, *, dereference: bool = False) -> StatResult:
        response = await self.session.request(
            "GET",
            self._ops(system, "stat"),
            params={"path": path, "dereference": dereference},
            idempotent=True,
        )
        return StatResult.from_wire(response.json()["output"])

    async def view(
        self, system: str, path: str, *, size: int | None = None, offset: int | None = None
    ) -> str:
        response = await self.session.request(
            "GET",
            self._ops(system, "view"),
            params={"path": path, "size": size, "offset": offset},
            idempotent=True,
        )
        content: str = response.json()["output"]
        return content

    async def head(
        self, system: str, path: str, *, num_bytes: int | None = None, lines: int | None = None
    ) -> str:
        response = await self.session.request(
            "GET",
            self._ops(system, "head"),
            params={"path": path, "bytes": num_bytes, "lines": lines},
            idempotent=True,
        )
        output = response.json()["output"]
        content: str = output["content"] if isinstance(output, dict) else output
        return content

    async def checksum(self, system: str, path: str) -> str:
        """The SHA-256 of a remote file, in hex."""
        response = await self.session.request(
            "GET", self._ops(system, "checksum"), params={"path": path}, idempotent=True
        )
        checksum: str = response.json()["output"]["checksum"]
        return checksum

    async def file_type(self, system: str, path: str) -> str:
        """``file -b``'s description of a remote file."""
        response = await self.session.request(
            "GET", self._ops(system, "file"), params={"path": path}, idempotent=True
        )
        description: str = response.json()["output"]
        return description

    # ------------------------------------------------------------------ filesystem: changing

    async def mkdir(self, system: str, path: str, *, parents: bool = False) -> None:
        # mkdir -p may be repeated. A plain mkdir whose answer was lost (its replica died) is
        # settled by looking: a directory there now is the one it made (AiiDA's calculation
        # directories are new names; sent again, it would fail with "File exists" and AiiDA
        # would move its own directory to lost+found). Not there: it is sent once more.
        for attempt in (1, 2):
            try:
                await self.session.request(
                    "POST",
                    self._ops(system, "mkdir"),
                    json={"path": path, "parent": parents},
                    idempotent=parents,
                    expected=(201,),
                )
                return
            except FirecrestFileExistsError:
                if attempt == 1 or not await self._is_dir(system, path):
                    raise
                log.warning("FirecREST mkdir answer lost; %s made late, taken as made", path)
                return
            except FirecrestError as exc:
                if parents or not answer_lost(exc):
                    raise
                if await self._is_dir(system, path):
                    log.warning(
                        "FirecREST mkdir answer lost (%s); %s exists, taken as made",
                        _brief(exc),
                        path,
                    )
                    return
                if attempt == 2:
                    raise
                log.warning(
                    "FirecREST mkdir answer lost (%s); %s not there, sent again", _brief(exc), path
                )

    async def _is_dir(self, system: str, path: str) -> bool:
        try:
            return (await self.stat(system, path)).is_dir
        except FirecrestError:
            return False

    async def rm(self, system: str, path: str) -> None:
        await self.session.request(
            "DELETE",
            self._ops(system, "rm"),
            params={"path": path},
            idempotent=False,  # a repeat after success would report "No such file"
            expected=(204,),
        )

    async def symlink(self, system: str, target: str, link_path: str) -> None:
        await self.session.request(
            "POST",
            self._ops(system, "symlink"),
            json={"path": target, "linkPath": link_path},
            idempotent=False,
            expected=(201,),
        )

    async def chmod(self, system: str, path: str, mode: int | str) -> None:
        """``mode`` as an int (0o755) or as chmod(1) text ("755", "u+x")."""
        text = f"{mode & 0o7777:o}" if isinstance(mode, int) else mode
        await self.session.request(
            "PUT",
            self._ops(system, "chmod"),
            json={"path": path, "mode": text},
            idempotent=True,
        )

    async def compress(
        self,
        system: str,
        source: str,
        target: str,
        *,
        compression: Compression = "gzip",
        dereference: bool = False,
        match_pattern: str | None = None,
    ) -> None:
        """``tar -c -C dirname(source) basename(source)`` into ``target``, on the login node."""
        body: dict[str, Any] = {
            "path": source,
            "targetPath": target,
            "compression": compression,
            "dereference": dereference,
        }
        if match_pattern is not None:
            body["matchPattern"] = match_pattern
        await self.session.request(
            "POST", self._ops(system, "compress"), json=body, idempotent=True, expected=(204,)
        )

    async def extract(
        self, system: str, source: str, target: str, *, compression: Compression = "gzip"
    ) -> None:
        """``tar -x -f source -C target``, on the login node."""
        await self.session.request(
            "POST",
            self._ops(system, "extract"),
            json={"path": source, "targetPath": target, "compression": compression},
            idempotent=True,
            expected=(204,),
        )

    async def ops_cp(
        self, system: str, source: str, target: str, *, dereference: bool = False
    ) -> None:
        """Synchronous ``cp -R`` (extension ``filesystem.ops.cp`` of this project's server)."""
        await self.session.request(
            "POST",
            self._ops(system, "cp"),
            json={"sourcePath": source, "targetPath": target, "dereference": dereference},
            idempotent=False,  # into an existing directory, a repeat would nest the copy
            expected=(204,),
        )

    async def ops_mv(self, system: str, source: str, target: str) -> None:
        """Synchronous ``mv`` (extension ``filesystem.ops.mv`` of this project's server)."""
        await self.session.request(
            "POST",
            self._ops(system, "mv"),
            json={"sourcePath": source, "targetPath": target},
            idempotent=False,
            expected=(204,),
        )

    # ------------------------------------------------------------ filesystem: direct transfer

    async def upload_bytes(self, system: str, directory: str, filename: str, data: bytes) -> None:
        """``ops/upload``: ``data`` becomes ``directory/filename`` (replacing a file there)."""
        await self.session.request(
            "POST",
            self._ops(system, "upload"),
            params={"path": directory},
            files={"file": (filename, data, "application/octet-stream")},
            idempotent=True,  # writing the same bytes again gives the same file
            expected=(204,),
        )

    async def download_to(self, system: str, path: str, local_path: str | Path) -> None:
        """``ops/download`` streamed into ``local_path``."""
        async with self.session.stream(
            "GET", self._ops(system, "download"), params={"path": path}
        ) as response:
            # Pieces as received (decoded, not re-chunked: that would copy every byte again).
            await save_chunks(response.aiter_bytes(), local_path)

    # ------------------------------------------------- whole trees (extension filesystem.tree)

    async def tree_download(
        self, system: str, path: str, local_tar: str | Path, *, dereference: bool = False
    ) -> None:
        """The contents of directory ``path`` as one tar archive (members ``./...``), saved to
        ``local_tar``."""
        async with self.session.stream(
            "GET",
            self._ops(system, "tree"),
            params={"path": path, "dereference": dereference},
        ) as response:
            await save_chunks(response.aiter_bytes(), local_tar)

    async def tree_upload(
        self, system: str, path: str, local_tar: str | Path, *, create: bool = False
    ) -> None:
        """Unpack the tar archive ``local_tar`` into the existing directory ``path``, or with
        ``create`` (extension ``filesystem.tree.create``) into ``path`` made new for it
        (``FileExistsError`` if something is there, ``FileNotFoundError`` without a parent)."""
        size = await file_size(local_tar)
        await self.session.request(
            "PUT",
            self._ops(system, "tree"),
            params={"path": path, "create": "true"} if create else {"path": path},
            content=lambda: file_range(local_tar, 0, size),
            headers={"Content-Type": "application/x-tar", "Content-Length": str(size)},
            # Unpacking the same archive again gives the same tree; creating the directory
            # again would fail on the first attempt's directory.
            idempotent=not create,
            expected=(204,),
        )

    # ---------------------------------------------------------------------- transfer jobs

    def _transfer(self, system: str, operation: str) -> str:
        return f"/filesystem/{system}/transfer/{operation}"

    async def _submit_transfer(
        self,
        method: str,
        path: str,
        *,
        json: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
        expected: tuple[int, ...] = (201,),
    ) -> TransferJob:
        response = await self.session.request(
            method, path, json=json, params=params, idempotent=False, expected=expected
        )
        return TransferJob.from_wire(response.json()["transferJob"])

    async def transfer_cp(
        self,
        system: str,
        source: str,
        target: str,
        *,
        dereference: bool = False,
        account: str | None = None,
    ) -> TransferJob:
        body = {"sourcePath": source, "targetPath": target, "dereference": dereference}
        if account:
            body["account"] = account
        return await self._submit_transfer("POST", self._transfer(system, "cp"), json=body)

    async def transfer_mv(
        self, system: str, source: str, target: str, *, account: str | None = None
    ) -> TransferJob:
        body = {"sourcePath": source, "targetPath": target}
        if account:
            body["account"] = account
        return await self._submit_transfer("POST", self._transfer(system, "mv"), json=body)

    async def transfer_rm(
        self, system: str, path: str, *, account: str | None = None
    ) -> TransferJob:
        # DELETE transfer/rm answers 200, not 201 (FirecREST v2).
        return await self._submit_transfer(
            "DELETE",
            self._transfer(system, "rm"),
            params={"path": path, "account": account or None},
            expected=(200, 201),
        )

    async def transfer_compress(
        self,
        system: str,
        source: str,
        target: str,
        *,
        compression: Compression = "gzip",
        dereference: bool = False,
        account: str | None = None,
    ) -> TransferJob:
        body: dict[str, Any] = {
            "path": source,
            "targetPath": target,
            "compression": compression,
            "dereference": dereference,
        }
        if account:
            body["account"] = account
        return await self._submit_transfer("POST", self._transfer(system, "compress"), json=body)

    async def transfer_extract(
        self,
        system: str,
        source: str,
        target: str,
        *,
        compression: Compression = "gzip",
        account: str | None = None,
    ) -> TransferJob:
        body: dict[str, Any] = {"path": source, "targetPath": target, "compression": compression}
        if account:
            body["account"] = account
        return await self._submit_transfer("POST", self._transfer(system, "extract"), json=body)

    async def transfer_upload(
        self,
        system: str,
        remote_path: str,
        size: int,
        *,
        account: str | None = None,
    ) -> StagedUpload:
        """``transfer/upload``: where to send the ``size`` bytes of a file for ``remote_path``
        (see ``staging.send_parts``), and the job that then moves them there."""
        body: dict[str, Any] = {
            "path": remote_path,
            "transfer_directives": {"file_size": size, "transfer_method": "s3"},
        }
        if account:
            body["account"] = account
        response = await self.session.request(
            "POST", self._transfer(system, "upload"), json=body, idempotent=False, expected=(201,)
        )
        return StagedUpload.from_wire(response.json())

    async def transfer_download(
        self, system: str, remote_path: str, *, account: str | None = None
    ) -> StagedDownload:
        """``transfer/download``: the job that stages ``remote_path`` for download, and the URL
        to fetch it from once the job is done (see ``staging.fetch``)."""
        body: dict[str, Any] = {
            "source_path": remote_path,
            "transfer_directives": {"transferMethod": "s3"},
        }
        if account:
            body["account"] = account
        response = await self.session.request(
            "POST",
            self._transfer(system, "download"),
            json=body,
            idempotent=False,
            expected=(201,),
        )
        return StagedDownload.from_wire(response.json())

    async def wait_for_transfer(self, job: TransferJob, *, timeout: float | None = None) -> str:
        """Wait for a transfer job, then check its output log for FirecREST's success phrase.

        Returns the log. A failed job raises the error its error log describes (a missing
        source is ``FileNotFoundError``, as for the synchronous operations).
        """
        final = await self.wait_for_job(job.system, job.job_id, timeout=timeout)
        output = await self._read_log(job.system, job.output_log)
        if output is not None and any(p in output for p in TRANSFER_SUCCESS_PHRASES):
            return output
        errors = await self._read_log(job.system, job.error_log)
        state = job_state(final)
        detail = (errors or output or "").strip() or "no output"
        raise transfer_failure(job, state, detail)

    async def _read_log(self, system: str, path: str | None) -> str | None:
        if not path:
            return None
        try:
            return await self.view(system, path)
        except FirecrestFileNotFoundError:
            return None

    # ---------------------------------------------------------------------------- compute

    def _jobs(self, system: str) -> str:
        return f"/compute/{system}/jobs"

    async def submit_job(
        self,
        system: str,
        *,
        working_directory: str,
        script: str | None = None,
        script_path: str | None = None,
        env: dict[str, str] | None = None,
        account: str | None = None,
        partition: str | None = None,
        reservation: str | None = None,
        name: str | None = None,
        standard_input: str | None = None,
        standard_output: str | None = None,
        standard_error: str | None = None,
        constraints: str | None = None,
    ) -> str:
        """Submit a batch job from an inline ``script`` or a ``script_path`` on the cluster."""
        if (script is None) == (script_path is None):
            raise ValueError("give exactly one of script and script_path")
        job: dict[str, Any] = {"workingDirectory": working_directory}
        optional = {
            "script": script,
            "scriptPath": script_path,
            "env": env or None,
            "account": account,
            "partition": partition,
            "reservation": reservation,
            "name": name,
            "standardInput": standard_input,
            "standardOutput": standard_output,
            "standardError": standard_error,
            "constraints": constraints,
        }
        job.update({key: value for key, value in optional.items() if value is not None})
        for attempt in (1, 2):
            try:
                response = await self.session.request(
                    "POST", self._jobs(system), json={"job": job}, idempotent=False, expected=(201,)
                )
                return str(response.json()["jobId"])
            except FirecrestError as exc:
                # Never sent again blindly: the lost attempt may have reached Slurm, and a second
                # would run the calculation twice in one directory. Look for its job first.
                if not answer_lost(exc):
                    raise
                looked, job_id = await self._find_lost_submit(system, working_directory)
                if job_id is not None:
                    log.warning(
                        "FirecREST submit answer lost (%s); job %s found in %s, taken as submitted",
                        _brief(exc),
                        job_id,
                        working_directory,
                    )
                    return job_id
                if not looked or attempt == 2:
                    raise
                log.warning(
                    "FirecREST submit answer lost (%s); no job in %s after %g s, submitted again",
                    _brief(exc),
                    working_directory,
                    sum(self.lost_submit_lookups),
                )
        raise AssertionError("unreachable")

    async def _find_lost_submit(
        self, system: str, working_directory: str
    ) -> tuple[bool, str | None]:
        """Whether the job listing could be read, and the job found in ``working_directory``
        (see ``submit_job``): a job there is the lost submit's, as AiiDA gives every
        calculation a directory of its own."""
        looked = False
        for delay in self.lost_submit_lookups:
            await asyncio.sleep(delay)
            try:
                jobs = await self.list_jobs(system, time_window="1h")
            except FirecrestError:
                continue  # the API is still unwell: look again, or give up with the submit's
            looked = True
            job_id = job_in_directory(jobs, working_directory)
            if job_id is not None:
                return looked, job_id
        return looked, None

    async def get_job(self, system: str, job_id: str) -> list[dict[str, Any]]:
        """The job's records (Slurm may report more than one); ``JobNotFoundError`` if unknown."""
        response = await self.session.request(
            "GET", f"{self._jobs(system)}/{job_id}", idempotent=True
        )
        return response.json().get("jobs") or []

    async def list_jobs(
        self,
        system: str,
        *,
        all_users: bool = False,
        account: str | None = None,
        name: str | None = None,
        time_window: str | None = None,
        job_ids: list[str] | None = None,
    ) -> list[dict[str, Any]]:
        """The jobs listed; with ``job_ids``, only those on a server with the
        ``compute.jobs.ids`` extension (a FirecREST without it ignores the parameter and
        lists the window, so callers still pick out the jobs they want)."""
        response = await self.session.request(
            "GET",
            self._jobs(system),
            params={
                "allusers": all_users,
                "account": account,
                "name": name,
                "time_window": time_window,
                "job_ids": ",".join(job_ids) if job_ids else None,
            },
            idempotent=True,
        )
        return response.json().get("jobs") or []

    async def job_metadata(self, system: str, job_id: str) -> list[dict[str, Any]]:
        response = await self.session.request(
            "GET", f"{self._jobs(system)}/{job_id}/metadata", idempotent=True
        )
        return response.json().get("jobs") or []

    async def cancel_job(self, system: str, job_id: str) -> None:
        await self.session.request(
            "DELETE", f"{self._jobs(system)}/{job_id}", idempotent=False, expected=(204, 200)
        )

    async def wait_for_job(
        self, system: str, job_id: str, *, timeout: float | None = None
    ) -> dict[str, Any]:
        """Poll until the job reaches a final state; return its record.

        A job the scheduler does not list yet ("Job not found") is polled for
        ``job_not_found_timeout`` seconds before giving up. On ``timeout`` the job is cancelled
        and ``TimeoutError`` raised.
        """
        started = time.monotonic()
        intervals = poll_intervals(cap=self.max_poll_interval)
        while True:
            try:
                jobs = await self.get_job(system, job_id)
            except JobNotFoundError:
                if time.monotonic() - started > self.job_not_found_timeout:
                    raise
                jobs = []
            if jobs and is_final_state(job_state(jobs[0])):
                return jobs[0]
            if timeout is not None and time.monotonic() - started > timeout:
                with contextlib.suppress(OSError):  # the timeout is what to report
                    await self.cancel_job(system, job_id)
                raise FirecrestTimeoutError(
                    f"Job {job_id} on {system} did not finish within {timeout:g} s; cancelled it"
                )
            await asyncio.sleep(next(intervals))


def _brief(exc: FirecrestError) -> str:
    """One line for a log record: a gateway's 502 page is several lines of HTML."""
    if exc.status_code is not None:
        return f"HTTP {exc.status_code}"
    return (str(exc).splitlines() or [type(exc).__name__])[0][:200]
