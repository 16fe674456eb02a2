"""What an operation gets to act on the cluster: the system, commands, and SFTP, as the caller."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import asyncssh

from ..config import SystemConfig
from ..errors import RequestTimeout
from ..ssh.credentials import CredentialProvider
from ..ssh.pool import ConnectionLost
from .commands import CommandResult, RemoteRunner
from .failures import command_error, sftp_error
from .names import IdNames
from .sftp import sftp_request
from .slurmrestd import SlurmRestClient

T = TypeVar("T")

# Seconds an SFTP operation may take beyond ssh.command_timeout (as a command's local deadline).
SFTP_GRACE = 10.0


@dataclass
class Remote:
    """One caller on one system: what an operation acts through (made by ``ClusterAccess``)."""

    system: SystemConfig
    runner: RemoteRunner
    names: IdNames
    # The system's slurmrestd when its scheduler.connection_mode is rest; None: Slurm over SSH.
    slurmrestd: SlurmRestClient | None = None

    @property
    def username(self) -> str:
        return self.runner.username

    @property
    def credentials(self) -> CredentialProvider:
        """How the caller's connections log in (the system's credential provider)."""
        return self.runner.pool.credentials

    async def run(
        self,
        argv: Sequence[str],
        *,
        stdin: bytes | None = None,
        env: dict[str, str] | None = None,
        timeout: float | None = None,
        idempotent: bool = True,
        check: bool = True,
    ) -> CommandResult:
        """Run a program; with ``check``, a non-zero exit becomes the mapped API error."""
        result = await self.runner.run(
            argv, stdin=stdin, env=env, timeout=timeout, idempotent=idempotent
        )
        if check and result.exit_status != 0:
            raise command_error(result.exit_status, result.stderr_text)
        return result

    @property
    def sftp_deadline(self) -> float:
        """Seconds one SFTP request may take: ``ssh.command_timeout`` plus the grace a
        command's local deadline has."""
        return self.system.ssh.command_timeout + SFTP_GRACE

    @contextlib.asynccontextmanager
    async def sftp_session(self) -> AsyncIterator[asyncssh.SFTPClient]:
        """The caller's shared SFTP channel, with a channel slot held for the duration.

        Every SFTP request made in the block must be bounded (``sftp_request``); a timeout
        raised in the block closes the channel, which a hung request would otherwise block.
        """
        pool = self.runner.pool
        async with pool.connection(self.username, self.runner.bearer_token) as entry:
            try:
                # Starting the SFTP subsystem is a request like any other: bounded.
                yield await sftp_request(entry.sftp(), self.sftp_deadline, "the SFTP channel")
            except RequestTimeout:
                entry.discard_sftp()
                raise
            # ConnectionError: the socket broke (reset, broken pipe) under an SFTP request.
            except (asyncssh.ConnectionLost, asyncssh.ChannelOpenError, ConnectionError) as exc:
                entry.close()
                raise ConnectionLost(
                    f"SSH connection to {pool.system_name} failed: {exc}"
                ) from None

    async def sftp(
        self,
        path: str,
        operation: Callable[[asyncssh.SFTPClient], Awaitable[T]],
        *,
        idempotent: bool = True,
        action: str | None = None,
    ) -> T:
        """Run one SFTP operation on ``path``; SFTP failures become API errors naming ``path``,
        worded as the program FirecREST v2 runs for ``action`` (an API operation: "stat",
        "ls", ...) would word them.

        Bounded like a command (``ssh.command_timeout``, plus the grace a command's local
        deadline has): an SFTP server that stops answering gives a 408, not a request that
        hangs until the client gives up. The wait for a channel slot is not part of it: the
        pool bounds that itself, with a 429 (the caller's own channels are busy; a 408 would
        send clients to transfer jobs).
        """
        limit = self.sftp_deadline
        for attempt in (1, 2):
            try:
                # The wait for a channel slot is bounded by the pool (429); the request by
                # sftp_request, whose 408 passes through the session, which closes the channel.
                async with self.sftp_session() as sftp:
                    return await sftp_request(operation(sftp), limit, path)
            except TimeoutError:
                raise RequestTimeout(
                    f"SFTP request on {path} timed out after {limit:g} s"
                ) from None
            except asyncssh.SFTPError as exc:
                raise sftp_error(exc, path, action) from None
            except ConnectionLost:
                if attempt == 2 or not idempotent:
                    raise
        raise AssertionError("unreachable")
