"""SFTP through a pooled connection: a connection that breaks under a request is a 503."""

from __future__ import annotations

import asyncio
import contextlib
from types import SimpleNamespace

import pytest

from firecrest_server.cluster import Remote
from firecrest_server.cluster.names import IdNames
from firecrest_server.errors import RequestTimeout
from firecrest_server.ssh.pool import ConnectionLost


class _BrokenEntry:
    def __init__(self, exc: Exception) -> None:
        self.exc = exc
        self.closed = False

    async def sftp(self):
        raise self.exc

    def close(self) -> None:
        self.closed = True


def _remote(entry: _BrokenEntry) -> Remote:
    @contextlib.asynccontextmanager
    async def connection(username, token):
        yield entry

    pool = SimpleNamespace(system_name="c", connection=connection)
    runner = SimpleNamespace(pool=pool, username="alice", bearer_token=None)
    system = SimpleNamespace(name="c", ssh=SimpleNamespace(command_timeout=0.1))
    return Remote(system=system, runner=runner, names=IdNames())


@pytest.mark.parametrize(
    "exc", [ConnectionResetError(104, "reset"), BrokenPipeError(32, "broken pipe")]
)
async def test_a_broken_socket_is_connection_lost_not_a_crash(exc: Exception) -> None:
    # sshd resetting a connection used to surface as an unhandled ConnectionResetError (500)
    # in every request in flight on it.
    entry = _BrokenEntry(exc)
    with pytest.raises(ConnectionLost):
        await _remote(entry).sftp("/home/alice/x", lambda sftp: sftp.stat("/home/alice/x"))
    assert entry.closed


class _SilentEntry(_BrokenEntry):
    """An SFTP channel whose server never answers."""

    discarded = 0

    async def sftp(self):
        return SimpleNamespace(stat=lambda path: asyncio.sleep(3600))

    def discard_sftp(self) -> None:
        self.discarded += 1


async def test_an_sftp_request_that_gets_no_answer_is_a_408(monkeypatch) -> None:
    monkeypatch.setattr("firecrest_server.cluster.remote.SFTP_GRACE", 0.1)
    entry = _SilentEntry(RuntimeError("unused"))
    with pytest.raises(RequestTimeout, match="timed out"):
        async with asyncio.timeout(30):  # the test's own guard: the deadline is 0.2 s
            await _remote(entry).sftp("/home/alice/x", lambda sftp: sftp.stat("/home/alice/x"))
    # The hung channel is closed, so the user's next SFTP request does not queue behind it.
    assert entry.discarded == 1


class _SilentSubsystem(_SilentEntry):
    """An sshd that never answers the request to start the SFTP subsystem."""

    async def sftp(self):
        await asyncio.sleep(3600)


async def test_a_streamed_transfer_whose_sftp_channel_never_starts_is_a_408(
    monkeypatch,
) -> None:
    # Streamed transfers hold the session themselves (no outer deadline): the start is bounded.
    monkeypatch.setattr("firecrest_server.cluster.remote.SFTP_GRACE", 0.1)
    entry = _SilentSubsystem(RuntimeError("unused"))

    async def open_session() -> None:
        async with asyncio.timeout(30), _remote(entry).sftp_session():  # 30 s: the test's guard
            pass

    with pytest.raises(RequestTimeout, match="the SFTP channel"):
        await open_session()
    assert entry.discarded == 1
