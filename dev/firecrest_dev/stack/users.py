"""The logins of the stack: test users (alice, bob, mallory), the probe user, the extra users of
`up --users K`, and slurmrestd's system account. They outlive every stack, like real accounts."""

from __future__ import annotations

import os
import pwd
import shutil
import time
from pathlib import Path

from .processes import StackError, log, run
from .settings import EXTRA_USER_PREFIX, HOSTILE_USER, PROBE_USER, RESTD_USER, TEST_USERS


def ensure_restd_user() -> None:
    """slurmrestd's own system account: no home, no shell, no Slurm association."""
    try:
        pwd.getpwnam(RESTD_USER)
    except KeyError:
        run(["useradd", "--system", "--no-create-home", "-s", "/usr/sbin/nologin", RESTD_USER])
        log(f"created system user {RESTD_USER}")


def ensure_users() -> None:
    for user in (*TEST_USERS, PROBE_USER):
        try:
            pwd.getpwnam(user)
        except KeyError:
            run(["useradd", "-m", "-s", "/bin/bash", "-U", user])
            log(f"created user {user}")
        # useradd leaves the password '!' (locked); with UsePAM no, sshd refuses locked accounts
        # even for certificate logins. '*' means no usable password without locking.
        shadow = run(["getent", "shadow", user]).stdout.split(":")
        if len(shadow) > 1 and shadow[1] in ("!", "!!", "!*", ""):
            run(["usermod", "-p", "*", user])
        home = Path(pwd.getpwnam(user).pw_dir)
        home.chmod(0o700)  # private homes: isolation tests rely on it
    _reset_hostile_dotfiles(HOSTILE_USER)


def _reset_hostile_dotfiles(user: str) -> None:
    """The hostile-shell tests restore her dotfiles, but a test run that was killed half-way
    (or two at once on one machine) can leave a `sleep 60` in her ~/.bashrc, and every later
    run would then fail for that: each `up` starts her from the skeleton again."""
    entry = pwd.getpwnam(user)
    for skeleton in Path("/etc/skel").glob(".*"):
        if skeleton.is_file():
            target = Path(entry.pw_dir) / skeleton.name
            shutil.copyfile(skeleton, target)
            os.chown(target, entry.pw_uid, entry.pw_gid)
            target.chmod(0o644)


def extra_user_names(count: int) -> list[str]:
    return [f"{EXTRA_USER_PREFIX}{i:04d}" for i in range(1, count + 1)]


def ensure_extra_users(names: list[str]) -> None:
    """Create the missing ones in one `newusers` batch (1,000 `useradd`s take minutes; this
    takes seconds), then make every home 0700. Idempotent; `down` leaves them, like alice."""
    known = {entry.pw_name: entry for entry in pwd.getpwall()}
    missing = [name for name in names if name not in known]
    if missing:
        t0 = time.monotonic()
        # name:password:uid:gid:gecos:home:shell. Empty uid and gid: the next free ones from
        # UID_MIN (1000) and a group of the user's own. An empty password: Debian's newusers
        # hashes any given one through PAM (~0.1 s each) and complains about an empty one, but
        # creates the account (locked, "!"); chpasswd -e then stores "*" as it is: no usable
        # password, not locked (sshd with UsePAM no refuses locked accounts).
        lines = "".join(
            f"{name}::::dev/stack extra user:/home/{name}:/bin/bash\n" for name in missing
        )
        created = run(["newusers"], input=lines, check=False)
        known = {entry.pw_name: entry for entry in pwd.getpwall()}
        if any(name not in known for name in missing):
            raise StackError(f"newusers did not create every extra user:\n{created.stderr}")
        run(["chpasswd", "-e"], input="".join(f"{name}:*\n" for name in missing))
        log(f"created {len(missing)} extra users in {time.monotonic() - t0:.1f} s")
    for name in names:
        entry = known[name]
        if entry.pw_uid < 1000:
            raise StackError(f"{name} has uid {entry.pw_uid}: the server serves only uid >= 1000")
        home = Path(entry.pw_dir)
        if not home.is_dir():
            home.mkdir(mode=0o700)
            shutil.chown(home, entry.pw_uid, entry.pw_gid)
        if home.stat().st_mode & 0o777 != 0o700:
            home.chmod(0o700)
