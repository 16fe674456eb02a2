"""GET /status/{system}/userinfo: the caller's POSIX identity and Slurm accounts on the cluster.

One ``id`` run gives the user, the primary group and all groups; two ``sacctmgr`` queries, run at
the same time, give the accounts and which is the default. Accounting is optional on a cluster:
when sacctmgr fails the answer says ``accounts: null`` rather than failing the whole request.
"""

from __future__ import annotations

import asyncio
import re

from ..cluster import CommandResult, Remote
from ..errors import ApiError
from ..models.status import Account, PosixIdentity, UserInfoResponse

# `id` translates its "uid=" labels in some locales: ask for the POSIX ones.
ID_ARGV = ("id",)
ID_ENV = {"LC_ALL": "C"}

# `uid=1001(alice) gid=100(domain users) groups=100(domain users),27(sudo) [context=...]`;
# a name is missing when the id has no entry in the name service.
_ID_LINE = re.compile(
    r"uid=(?P<uid>\d+)(?:\((?P<user>[^)]*)\))?"
    r" gid=(?P<gid>\d+)(?:\((?P<group>[^)]*)\))?"
    r"(?: groups=(?P<groups>.*?))?"
    r"(?: context=\S*)?\s*$"
)
_ID_ENTRY = re.compile(r"(\d+)(?:\(([^)]*)\))?")


class UnexpectedOutput(ValueError):
    """The program answered in a format this parser does not know."""


def accounts_argv(username: str) -> list[str]:
    return ["sacctmgr", "-n", "-P", "show", "assoc", f"user={username}", "format=account"]


def default_account_argv(username: str) -> list[str]:
    # `name=` rather than a bare name: a login such as "where" must not read as a keyword.
    return ["sacctmgr", "-n", "-P", "show", "user", f"name={username}", "format=defaultaccount"]


def _identity(number: str, name: str | None) -> PosixIdentity:
    # The wire shape needs a name: an id without a name-service entry is named by its number.
    return PosixIdentity(id=number, name=name or number)


def parse_id(text: str) -> tuple[PosixIdentity, PosixIdentity, list[PosixIdentity]]:
    """(user, primary group, all groups) from the output of ``id``."""
    match = _ID_LINE.match(text.strip())
    if match is None:
        raise UnexpectedOutput(f"unexpected output of `id`: {text.strip()[:200]!r}")
    user = _identity(match["uid"], match["user"])
    group = _identity(match["gid"], match["group"])
    groups = [_identity(n, name) for n, name in _ID_ENTRY.findall(match["groups"] or "")]
    return user, group, groups or [group]


def parse_accounts(accounts_output: str, default_output: str | None) -> list[Account]:
    """Accounts from ``sacctmgr show assoc``, marking the one ``sacctmgr show user`` names."""
    default = next(
        (line.strip() for line in (default_output or "").splitlines() if line.strip()), None
    )
    names: dict[str, None] = {}  # ordered set: one association per cluster/partition repeats names
    for line in accounts_output.splitlines():
        if line.strip():
            names[line.strip()] = None
    return [Account(name=name, default=name == default) for name in names]


async def _accounts(remote: Remote, timeout: float) -> list[Account] | None:
    assoc, default = await asyncio.gather(
        remote.run(accounts_argv(remote.username), timeout=timeout, check=False),
        remote.run(default_account_argv(remote.username), timeout=timeout, check=False),
        return_exceptions=True,
    )
    if not isinstance(assoc, CommandResult) or assoc.exit_status != 0:
        return None
    default_text = (
        default.stdout_text
        if isinstance(default, CommandResult) and default.exit_status == 0
        else None
    )
    return parse_accounts(assoc.stdout_text, default_text)


async def user_info(remote: Remote) -> UserInfoResponse:
    """The calling user's identity on ``remote``'s system (always the token's own user)."""
    identity, accounts = await asyncio.gather(
        remote.run(ID_ARGV, env=ID_ENV),
        _accounts(remote, remote.system.scheduler.command_timeout),
        return_exceptions=True,  # let the sacctmgr runs finish before an `id` error is raised
    )
    if isinstance(identity, BaseException):
        raise identity
    if isinstance(accounts, BaseException):  # only a bug gets here: _accounts catches failures
        raise accounts
    try:
        user, group, groups = parse_id(identity.stdout_text)
    except UnexpectedOutput as exc:
        raise ApiError(str(exc)) from None
    return UserInfoResponse(user=user, group=group, groups=groups, accounts=accounts)
