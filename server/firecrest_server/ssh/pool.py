"""A pool of long-lived, multiplexed SSH connections per user of one system.

Each operation borrows one *channel slot* on a connection of the calling user. A connection
carries at most ``max_channels_per_connection`` operations at once (kept below sshd's
MaxSessions); when every connection of that user is full, the pool opens another, up to
``max_connections_per_user``, and beyond that callers wait for a free slot of their own for a
bounded time, then get 429 (``ChannelsBusy``): one user's channels are never lent to another,
so a user who keeps all of theirs busy delays only themselves. The server's health probes have
a pool of their own (runtime.py). Each connection also keeps one SFTP channel open, shared by
all SFTP operations of that user: an SFTP request on an open channel costs a message, not a
fork and exec on the login node.

Connections are opened lazily, with credentials minted at that moment; idle ones are closed by a
reaper; keepalives detect dead peers; a connection that drops is discarded and the next borrow
opens a fresh one.

Thousands of users each cost a connection (memory here, an sshd process on the login node), so
the pool also bounds what all users together hold: at most ``max_connections`` per worker. At
that bound, opening one closes the least recently used idle connection of any user first (it
costs that user one login later, nothing more); when every connection is busy, the opener waits
for one to go idle, within the same deadline as a wait for a channel, then gets 503
(``ConnectionsExhausted``). And at most ``max_concurrent_logins`` logins run at once, so that a
crowd of users arriving together stays under sshd's MaxStartups instead of being dropped by it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import asyncssh

from ..config import SSHConfig
from ..errors import ApiError, RequestTimeout, ServiceUnavailable, TooManyRequests
from ..server_timing import timed
from .coalescing import CoalescingTCP
from .credentials import CallerProof, CredentialProvider

log = logging.getLogger("firecrest_server.ssh")


# AES-GCM first: with AES-NI it costs asyncssh far less CPU per packet than its default
# chacha20-poly1305 (measured: -20 % server CPU per ops/ls request). The rest is asyncssh's
# default order, for login nodes without GCM.
PREFERRED_CIPHERS = [
    "aes256-gcm@openssh.com",
    "aes128-gcm@openssh.com",
    "chacha20-poly1305@openssh.com",
    "aes256-ctr",
    "aes192-ctr",
    "aes128-ctr",
]

# The largest SSH packet we let the login node send (asyncssh's default is 32 KiB, as OpenSSH's
# client asks). A download arrives as SFTP answers of up to 255 KiB (direct_transfer.py): one
# packet each instead of eight, so asyncssh decrypts and parses an eighth of the packets:
# measured against the stack's sshd, 512 MiB by SFTP: 3.0-3.4 -> 2.3-2.7 s of client CPU per
# GiB, 300-330 -> 380-440 MiB/s. OpenSSH sends packets as large as the client allows, within
# its own 256 KiB limit. The window (bytes in flight per channel, and so what a slow reader can
# leave buffered here) stays asyncssh's 2 MiB.
MAX_PACKET_SIZE = 255 * 1024


class ConnectionLost(ServiceUnavailable):
    """The SSH connection to the cluster failed or could not be opened: 503 with Retry-After.

    FirecREST v2 answers 424 here, which no client retries. The cluster being unreachable is
    the textbook 503: the AiiDA plugin waits ``Retry-After`` and tries again (pyfirecrest 3.10
    retries only 429 and hands a 503 to its caller), and the pool opens a fresh connection for
    the next request."""

    def __init__(self, message: str, retry_after: float = 2) -> None:
        super().__init__(message, retry_after)


class ChannelsBusy(TooManyRequests):
    """All of one user's SSH channels stayed busy with their own work: 429 with Retry-After.

    Each user has channels of their own (``max_connections_per_user`` connections of
    ``max_channels_per_connection``), so this says the caller is over their share, not that the
    cluster is down: a 503 here would read to clients as an outage, and a caller waiting for
    themselves is no one else's concern."""

    def __init__(self, message: str, retry_after: float = 2) -> None:
        super().__init__(message, retry_after)


class ConnectionsExhausted(ServiceUnavailable):
    """Every SSH connection this worker may hold (``ssh.max_connections``) stayed busy: 503.

    Not the caller's doing (they have no connection yet), so not a 429: the server is full for
    now, and the client should come back after ``Retry-After``."""

    def __init__(self, message: str, retry_after: float = 2) -> None:
        super().__init__(message, retry_after)


@dataclass(eq=False)
class Connection:
    conn: asyncssh.SSHClientConnection
    busy: int = 0
    last_used: float = field(default_factory=time.monotonic)
    closed: bool = False
    _sftp: asyncssh.SFTPClient | None = None
    _sftp_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def sftp(self) -> asyncssh.SFTPClient:
        if self._sftp is None:
            async with self._sftp_lock:
                if self._sftp is None:
                    self._sftp = await self.conn.start_sftp_client()
        return self._sftp

    def discard_sftp(self) -> None:
        """Close the SFTP channel after a request on it timed out; the next one opens anew.

        OpenSSH's sftp-server answers one request at a time: behind a request that hangs (a
        stalled file system, an open of a FIFO) every later request on the channel would wait
        too. The connection and its other channels stay open.
        """
        sftp, self._sftp = self._sftp, None
        if sftp is not None:
            sftp.exit()

    def close(self) -> None:
        self.closed = True
        self.conn.close()


class _Watcher(asyncssh.SSHClient):
    """Marks the pool entry dead the moment asyncssh notices the connection is gone, and says
    so in the log when that was not our own doing."""

    def __init__(self, system: str, username: str) -> None:
        self.entry: Connection | None = None
        self._where = {"system": system, "user": username}

    def connection_lost(self, exc: Exception | None) -> None:
        if self.entry is not None:
            if exc is not None and not self.entry.closed:
                log.warning(
                    "SSH connection lost: %s: %s", type(exc).__name__, exc, extra=self._where
                )
            self.entry.closed = True


class _UserConnections:
    def __init__(self) -> None:
        self.connections: list[Connection] = []
        self.opening = 0
        self.changed = asyncio.Condition()


class SSHPool:
    def __init__(
        self, system_name: str, config: SSHConfig, credentials: CredentialProvider
    ) -> None:
        self.system_name = system_name
        self._config = config
        self._credentials = credentials
        self._users: dict[str, _UserConnections] = {}
        self._reaper: asyncio.Task[None] | None = None
        self._closing = False
        # Woken when a connection goes idle or closes: an opener at max_connections waits here.
        self._capacity = asyncio.Condition()
        self._logins = asyncio.Semaphore(config.max_concurrent_logins)
        self._room_waiters = 0
        # Openings that have their place under max_connections but are not listed yet.
        self._reserved = 0
        self.evicted = 0  # idle connections closed to make room, for stats and metrics

    @property
    def credentials(self) -> CredentialProvider:
        return self._credentials

    # ------------------------------------------------------------------------------- lifecycle

    def start(self) -> None:
        self._reaper = asyncio.create_task(self._reap_idle(), name=f"ssh-reaper-{self.system_name}")

    async def close(self) -> None:
        self._closing = True
        if self._reaper:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
        for user in self._users.values():
            for entry in user.connections:
                entry.close()
        for user in self._users.values():
            for entry in user.connections:
                with contextlib.suppress(Exception):
                    await entry.conn.wait_closed()
        self._users.clear()

    async def _reap_idle(self) -> None:
        interval = min(5.0, self._config.idle_timeout / 2)
        while True:
            await asyncio.sleep(interval)
            now = time.monotonic()
            for username, user in list(self._users.items()):
                keep = []
                for entry in user.connections:
                    idle = entry.busy == 0 and now - entry.last_used > self._config.idle_timeout
                    if entry.closed or idle:
                        if not entry.closed:
                            log.info("closing idle SSH connection", extra={"user": username})
                        entry.close()
                    else:
                        keep.append(entry)
                user.connections = keep
                if not keep and not user.opening:
                    del self._users[username]
            await self._notify_capacity()

    def stats(self) -> dict[str, int]:
        connections = [e for u in self._users.values() for e in u.connections if not e.closed]
        return {
            "users": len(self._users),
            "connections": len(connections),
            "channels_busy": sum(e.busy for e in connections),
            "evicted": self.evicted,
        }

    # ------------------------------------------------------------------------ the global bound

    def _held(self) -> int:
        """Connections open, or being opened with a place reserved, over all users."""
        return self._reserved + sum(
            1 for user in self._users.values() for e in user.connections if not e.closed
        )

    def _evict_least_recently_used(self) -> bool:
        """Close the idle connection unused the longest, of whichever user; False if none is
        idle. Its user's next request logs in again."""
        idle = [
            (entry.last_used, username, entry)
            for username, user in self._users.items()
            for entry in user.connections
            if entry.busy == 0 and not entry.closed
        ]
        if not idle:
            return False
        _, username, entry = min(idle, key=lambda item: item[0])
        entry.close()
        self._users[username].connections.remove(entry)
        self.evicted += 1
        log.info("closed the least recently used idle SSH connection", extra={"user": username})
        return True

    async def _reserve_room(self, deadline: float) -> None:
        """Return once the connection this caller is about to open fits under
        ``max_connections``, with its place reserved (``_reserved``) until it is listed."""
        while self._held() >= self._config.max_connections:
            if self._evict_least_recently_used():
                continue
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ConnectionsExhausted(
                    f"All {self._config.max_connections} SSH connections to "
                    f"{self.system_name} of this server worker are busy"
                )
            self._room_waiters += 1
            try:
                with contextlib.suppress(TimeoutError):
                    async with self._capacity, asyncio.timeout(min(1.0, remaining)):
                        await self._capacity.wait()
            finally:
                self._room_waiters -= 1
        self._reserved += 1

    async def _notify_capacity(self, waiters: int | None = None) -> None:
        """Wake ``waiters`` openers waiting for room (all when None): one per connection that
        went idle, so that a crowd of 1,000 waiters does not all rescan the pool each time."""
        async with self._capacity:
            if waiters is None:
                self._capacity.notify_all()
            else:
                self._capacity.notify(waiters)

    # --------------------------------------------------------------------------------- borrow

    @contextlib.asynccontextmanager
    async def connection(
        self, username: str, token: CallerProof = None
    ) -> AsyncIterator[Connection]:
        """Borrow one channel slot on one of ``username``'s connections."""
        with timed("ssh"):
            entry = await self._acquire(username, token)
        try:
            yield entry
        finally:
            entry.busy -= 1
            entry.last_used = time.monotonic()
            user = self._users.get(username)
            if user is not None:
                async with user.changed:
                    user.changed.notify()
            if entry.busy == 0 and self._room_waiters:
                await self._notify_capacity(1)

    async def _acquire(self, username: str, token: CallerProof) -> Connection:
        if self._closing:
            raise ConnectionLost("The server is shutting down")
        user = self._users.setdefault(username, _UserConnections())
        # One slot of each connection is held by its SFTP channel.
        per_connection = max(1, self._config.max_channels_per_connection - 1)
        # A request waits for a slot no longer than it could take to open a connection and run
        # a command on it: never indefinitely, whatever happens to the connections meanwhile.
        deadline = time.monotonic() + self._config.connect_timeout + self._config.command_timeout
        async with user.changed:
            while True:
                user.connections = [e for e in user.connections if not e.closed]
                free = [e for e in user.connections if e.busy < per_connection]
                if free:
                    entry = min(free, key=lambda e: e.busy)
                    entry.busy += 1
                    return entry
                if len(user.connections) + user.opening < self._config.max_connections_per_user:
                    user.opening += 1
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise ChannelsBusy(
                        f"All your SSH channels to {self.system_name} stayed busy "
                        f"(limit {per_connection * self._config.max_connections_per_user} "
                        "concurrent operations per user)"
                    )
                # Woken by a release or a new connection; the timeout also catches what sends
                # no notification: a connection that died, or an open that failed elsewhere.
                # (asyncio.timeout, not wait_for: wait_for can swallow a cancellation that
                # arrives as the wait ends, and the pool's close would then wait for us.)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(min(1.0, remaining)):
                        await user.changed.wait()
        try:
            await self._reserve_room(deadline)
            try:
                entry = await self._login(username, token, deadline)
            except BaseException:
                self._reserved -= 1  # waiters for room rescan within a second
                raise
        finally:
            # On failure, waiters notice within a second and may try to open one themselves.
            user.opening -= 1
        # Listed and unreserved in one step: the count under max_connections never dips.
        entry.busy += 1
        user.connections.append(entry)
        self._reserved -= 1
        async with user.changed:
            user.changed.notify_all()
        return entry

    async def _login(self, username: str, token: CallerProof, deadline: float) -> Connection:
        """Open a connection once fewer than ``max_concurrent_logins`` are being opened."""
        try:
            async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                await self._logins.acquire()
        except TimeoutError:
            raise ConnectionLost(
                f"Too many SSH logins to {self.system_name} in progress; try again"
            ) from None
        try:
            return await self._open(username, token)
        finally:
            self._logins.release()

    async def _open(self, username: str, token: CallerProof) -> Connection:
        config = self._config
        key, cert = await self._credentials.client_key(username, token)
        options = dict(
            username=username,
            client_keys=[(key, cert)] if cert else [key],
            known_hosts=str(config.known_hosts),
            agent_path=None,
            agent_forwarding=False,
            x11_forwarding=False,
            connect_timeout=config.connect_timeout,
            login_timeout=config.connect_timeout,
            keepalive_interval=config.keepalive_interval,
            keepalive_count_max=3,
            # Never read the server process's ~/.ssh/config or keys: only what we configure.
            config=None,
            preferred_auth="publickey",
            ignore_encrypted=True,
            encryption_algs=PREFERRED_CIPHERS,
            max_pktsize=MAX_PACKET_SIZE,
        )
        watcher = _Watcher(self.system_name, username)
        t0 = time.monotonic()
        try:
            if config.proxy is not None:
                tunnel = await asyncssh.connect(config.proxy.host, config.proxy.port, **options)
                conn = await asyncssh.connect(
                    config.host,
                    config.port,
                    tunnel=tunnel,
                    client_factory=lambda: watcher,
                    **options,
                )
            else:
                # A direct TCP connection whose writes are gathered per loop turn (coalescing.py).
                conn = await asyncssh.connect(
                    config.host,
                    config.port,
                    tunnel=CoalescingTCP(),
                    client_factory=lambda: watcher,
                    **options,
                )
        except asyncssh.PermissionDenied:
            # The cluster refused the certificate: a misconfiguration (CA not trusted, user
            # unknown there), not a transient fault.
            raise ApiError(
                f"SSH login to {self.system_name} as {username} was refused",
            ) from None
        except TimeoutError:
            raise RequestTimeout(f"SSH connection to {self.system_name} timed out") from None
        except (OSError, asyncssh.Error) as exc:
            raise ConnectionLost(
                f"Cannot connect to {self.system_name} over SSH: {type(exc).__name__}: {exc}"
            ) from None
        entry = Connection(conn)
        watcher.entry = entry
        log.info(
            "opened SSH connection",
            extra={"user": username, "system": self.system_name, "seconds": time.monotonic() - t0},
        )
        return entry
