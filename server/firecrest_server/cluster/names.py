"""User and group names for numeric ids, as `ls -l` shows them.

SFTP (version 3, as OpenSSH speaks it) gives numeric ids in attributes and names only inside
the `longname` of directory entries. Names learnt from listings are kept per system; ids never
seen in a listing are resolved with one `getent` call. Names on a cluster change rarely, and a
stale name only affects display.
"""

from __future__ import annotations

from collections.abc import Iterable

from .commands import RemoteRunner

MAX_CACHED = 100_000


class IdNames:
    def __init__(self) -> None:
        self.users: dict[int, str] = {}
        self.groups: dict[int, str] = {}

    def learn(self, uid: int | None, gid: int | None, longname: str) -> None:
        """Take the owner and group from an `ls -l` style longname."""
        if uid in self.users and gid in self.groups:
            return  # the common case: nothing new to learn, no need to split the line
        fields = longname.split(None, 4)
        if len(fields) < 4 or uid is None or gid is None:
            return
        if len(self.users) < MAX_CACHED and fields[2] != str(uid):
            self.users.setdefault(uid, fields[2])
        if len(self.groups) < MAX_CACHED and fields[3] != str(gid):
            self.groups.setdefault(gid, fields[3])

    def user(self, uid: int) -> str:
        return self.users.get(uid, str(uid))

    def group(self, gid: int) -> str:
        return self.groups.get(gid, str(gid))

    async def resolve(self, runner: RemoteRunner, uids: Iterable[int], gids: Iterable[int]) -> None:
        """Look up ids not seen yet, one `getent` call per database, as ``runner``'s user."""
        for database, ids, known in (
            ("passwd", set(uids), self.users),
            ("group", set(gids), self.groups),
        ):
            missing = sorted(i for i in ids if i not in known)
            if not missing or len(known) >= MAX_CACHED:
                continue
            # A non-zero exit (some ids unknown) still lists the others.
            result = await runner.run(["getent", database, *map(str, missing)])
            for line in result.stdout_text.splitlines():
                fields = line.split(":")
                if len(fields) >= 3 and fields[2].isdigit():
                    known[int(fields[2])] = fields[0]
            for i in missing:  # ids without a name show as numbers, like ls does
                known.setdefault(i, str(i))
