"""dev/stack - a real, local HPC stack for trying and testing the project on one machine.

    dev/stack install          install Debian, pip and npm packages (idempotent; root)
    dev/stack up DIR [--replicas N] [--users K]
                               start everything with all state under DIR; write DIR/stack.json
                               (N > 1: N API servers behind HAProxy on the API port;
                               K: extra users user0001..userK, see docs/development.md)
    dev/stack down DIR         cancel leftover jobs, stop exactly what `up` started
    dev/stack status DIR       each part `up` started: its PID and whether it runs (exit 1 if not)
    dev/stack restart DIR PART [--signal KILL] [--down SECONDS]
                               stop one part (server, sshd, slurmctld, oidc, ...) with everything
                               it started (workers, SSH sessions), stay down, start it again
    dev/stack restart-server DIR [--signal KILL] [--down SECONDS]
                               the same as `restart DIR server`
    dev/stack token DIR USER   print a fresh access token for USER (what token_command runs)

The stack: munged; sshd on 127.0.0.1 that accepts only user certificates signed by a CA made in
DIR; Slurm (slurmctld, one slurmd with many CPUs) with slurmdbd accounting on its own MariaDB;
a real OIDC provider (the npm package oidc-provider) issuing RS256 JWT access tokens through the
client-credentials grant; a Redis of the stack's own; and our API server configured against all
of these (or N of them behind HAProxy).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .down import cmd_down
from .install import cmd_install
from .processes import StackError
from .restart import cmd_restart, cmd_restart_server
from .settings import CRASHABLE_PARTS, DEFAULT_PORTS
from .status import cmd_status
from .up import cmd_up
from .web import fetch_token


def cmd_token(args: argparse.Namespace) -> None:
    d = Path(args.dir).resolve()
    info = json.loads((d / "stack.json").read_text())
    user = info["users"].get(args.user)
    extra = info.get("extra_users") or {}
    if user is None and args.user in extra.get("usernames", ()):
        scope = f"{extra['scope_prefix']}{args.user}"
        print(fetch_token(info["token_url"], extra["client_id"], extra["client_secret"], scope))
        return
    if user is None:
        raise StackError(f"no such stack user {args.user!r}; known: {sorted(info['users'])}")
    print(fetch_token(info["token_url"], user["client_id"], user["client_secret"]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="dev/stack", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    verbs = parser.add_subparsers(dest="verb", required=True)
    verbs.add_parser("install", help="install Debian, pip and npm packages (root)").set_defaults(
        func=cmd_install
    )
    up = verbs.add_parser("up", help="start the stack with its state under DIR")
    up.add_argument("dir")
    for name, port in DEFAULT_PORTS.items():
        up.add_argument(f"--{name}-port", type=int, default=None, help=f"default {port}")
    up.add_argument(
        "--replicas",
        type=int,
        default=1,
        help="API server replicas; more than 1 puts them behind HAProxy on the API port",
    )
    up.add_argument(
        "--slurm-mode",
        choices=("ssh", "rest"),
        default="ssh",
        help="how the API server reaches Slurm: commands over SSH, or slurmrestd (default ssh)",
    )
    up.add_argument(
        "--replica-ports", default=None, help="P1,P2,...: the replicas' own ports (default: free)"
    )
    up.add_argument(
        "--users",
        type=int,
        default=0,
        help="K extra users user0001..userK with Slurm associations and tokens (default 0)",
    )
    up.set_defaults(func=cmd_up)
    down = verbs.add_parser("down", help="stop what `up DIR` started")
    down.add_argument("dir")
    down.set_defaults(func=cmd_down)
    status = verbs.add_parser("status", help="what `up DIR` started and whether it runs")
    status.add_argument("dir")
    status.set_defaults(func=cmd_status)
    for verb, helptext, func in (
        ("restart", "stop one part (a crash by default) and start it again", cmd_restart),
        ("restart-server", "the same as `restart DIR server`", cmd_restart_server),
    ):
        restart = verbs.add_parser(verb, help=helptext)
        restart.add_argument("dir")
        if verb == "restart":
            restart.add_argument("part", help="server, sshd, slurmctld, oidc, slurmd, ...")
        restart.add_argument(
            "--signal",
            default=None,
            help=f"signal to stop with (default KILL for {', '.join(CRASHABLE_PARTS)}, else TERM)",
        )
        restart.add_argument(
            "--down", type=float, default=0.0, help="seconds to stay down before starting again"
        )
        restart.set_defaults(func=func)
    token = verbs.add_parser("token", help="print a fresh access token for a stack user")
    token.add_argument("dir")
    token.add_argument("user")
    token.set_defaults(func=cmd_token)
    args = parser.parse_args(argv)
    try:
        args.func(args)
    except StackError as exc:
        print(f"dev/stack: error: {exc}", file=sys.stderr)
        return 1
    return 0
