"""Running programs on the cluster as the calling user.

A command is always an argument list. It is joined with ``shlex.join`` — every user-supplied
string reaches the remote shell quoted — and wrapped in a remote ``timeout`` so nothing outlives
its request on the login node. Output is capped; every command leaves one audit log line and
is reported to the runner's observer (the metrics), with the same figures.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shlex
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass

import asyncssh

from ..errors import BadRequest, FailedDependency, PayloadTooLarge, RequestTimeout
from ..ssh.credentials import CallerProof
from ..ssh.pool import Connection, ConnectionLost, SSHPool

audit = logging.getLogger("firecrest_server.audit")

# Exit status of coreutils' `timeout` when the time limit was hit: every command is wrapped in
# one (``remote_command``), so this exit status means "the remote deadline passed" (pyfirecrest
# reads ``exit status:124`` in a message as a timeout too).
TIMEOUT_EXIT = 124

# Told of every finished command: (system, argv, exit status or None, seconds).
CommandObserver = Callable[[str, Sequence[str], int | None, float], None]


@dataclass(frozen=True)
class CommandResult:
    argv: tuple[str, ...]
    exit_status: int
    stdout: bytes
    stderr: bytes

    @property
    def stdout_text(self) -> str:
        return self.stdout.decode("utf-8", errors="replace")

    @property
    def stderr_text(self) -> str:
        return self.stderr.decode("utf-8", errors="replace")


def remote_command(argv: Sequence[str], timeout: float, env: dict[str, str] | None = None) -> str:
    """The exact string sent to the remote shell. ``env`` values are quoted like everything else.

    An SSH exec request cannot carry a NUL byte: OpenSSH's sshd answers one by dropping the
    whole connection, and with it every other operation in flight on it. Fields are checked
    where they are read; this is the guard for any that was not.
    """
    if any("\x00" in value for value in (*argv, *(env or {}).keys(), *(env or {}).values())):
        raise BadRequest("Values sent to the cluster must not contain NUL characters")
    prefix = ["env", *(f"{k}={v}" for k, v in (env or {}).items())] if env else []
    # -k: if the program ignores SIGTERM, SIGKILL follows 5 s later.
    return shlex.join(["timeout", "-k", "5", f"{max(1, round(timeout))}", *prefix, *argv])


async def _read_capped(stream: asyncssh.SSHReader[bytes], limit: int) -> tuple[bytes, bool]:
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = await stream.read(65536)
        if not chunk:
            return b"".join(chunks), False
        size += len(chunk)
        if size > limit:
            return b"", True
        chunks.append(chunk)


class RemoteRunner:
    """Runs commands for one user on one system, over that user's pooled connection."""

    def __init__(
        self,
        pool: SSHPool,
        username: str,
        token: CallerProof,
        *,
        timeout: float,
        max_output: int,
        request_id: str | None = None,
        observe: CommandObserver | None = None,
    ) -> None:
        self.pool = pool
        self.username = username
        self.bearer_token = token
        self.timeout = timeout
        self.max_output = max_output
        self.request_id = request_id
        self._observe = observe

    @contextlib.asynccontextmanager
    async def open_process(
        self, argv: Sequence[str], *, timeout: float
    ) -> AsyncIterator[asyncssh.SSHClientProcess[bytes]]:
        """A running remote process whose stdin/stdout the caller streams (bytes).

        For transfers that must not be held in memory: the caller reads and writes in chunks
        and waits for the exit itself. Not retried: a stream cannot be replayed.
        """
        command = remote_command(argv, timeout)
        t0 = time.monotonic()
        process = None
        try:
            async with self.pool.connection(self.username, self.bearer_token) as entry:
                process = await self._spawn(entry, command)
                try:
                    yield process
                finally:
                    process.close()
        finally:
            self._audit(argv, process.exit_status if process is not None else None, t0)

    async def run(
        self,
        argv: Sequence[str],
        *,
        stdin: bytes | None = None,
        env: dict[str, str] | None = None,
        timeout: float | None = None,
        idempotent: bool = True,
    ) -> CommandResult:
        """Run ``argv``; on a dropped connection, retry once if the command is idempotent."""
        try:
            return await self._run_once(argv, stdin, env, timeout or self.timeout)
        except ConnectionLost:
            if not idempotent:
                raise
            return await self._run_once(argv, stdin, env, timeout or self.timeout)

    async def _run_once(
        self,
        argv: Sequence[str],
        stdin: bytes | None,
        env: dict[str, str] | None,
        timeout: float,
    ) -> CommandResult:
        command = remote_command(argv, timeout, env)
        t0 = time.monotonic()
        exit_status: int | None = None
        try:
            async with self.pool.connection(self.username, self.bearer_token) as entry:
                process = await self._spawn(entry, command)
                try:
                    # The remote `timeout` normally ends the command; this local deadline covers a
                    # login node that stops answering altogether.
                    async with asyncio.timeout(timeout + 10):
                        if stdin is not None:
                            process.stdin.write(stdin)
                        process.stdin.write_eof()
                        (stdout, out_over), (stderr, err_over) = await asyncio.gather(
                            _read_capped(process.stdout, self.max_output),
                            _read_capped(process.stderr, self.max_output),
                        )
                        if out_over or err_over:
                            process.kill()
                            raise PayloadTooLarge(
                                f"Output of the remote command exceeds {self.max_output} bytes"
                            )
                        completed = await process.wait(check=False)
                except TimeoutError:
                    raise RequestTimeout("Remote command timed out") from None
                finally:
                    with contextlib.suppress(Exception):
                        process.close()
            exit_status = completed.exit_status
            if exit_status is None:  # killed by a signal
                exit_status = 128 + 9 if completed.exit_signal else -1
            return CommandResult(tuple(argv), exit_status, stdout, stderr)
        finally:
            self._audit(argv, exit_status, t0)

    async def _spawn(self, entry: Connection, command: str) -> asyncssh.SSHClientProcess[bytes]:
        try:
            return await entry.conn.create_process(command, encoding=None)
        except asyncssh.ChannelOpenError as exc:
            # The connection is alive but sshd refused one more session on it (MaxSessions):
            # closing it would kill the operations in flight on its other channels.
            raise FailedDependency(
                f"{self.pool.system_name} refused another SSH session ({exc.reason}); "
                "ssh.max_channels_per_connection may exceed the login node's MaxSessions"
            ) from None
        except (asyncssh.ConnectionLost, OSError) as exc:
            entry.close()
            raise ConnectionLost(
                f"SSH connection to {self.pool.system_name} failed: {exc}"
            ) from None

    def _audit(self, argv: Sequence[str], exit_status: int | None, t0: float) -> None:
        seconds = round(time.monotonic() - t0, 4)
        audit.info(
            "remote command",
            extra={
                "request_id": self.request_id,
                "user": self.username,
                "system": self.pool.system_name,
                "argv": list(argv),
                "exit_status": exit_status,
                "seconds": seconds,
            },
        )
        if self._observe is not None:
            self._observe(self.pool.system_name, argv, exit_status, seconds)
