"""The command line sent to the cluster: quoting, the remote timeout, and what may not be sent."""

from __future__ import annotations

import shlex

import pytest

from firecrest_server.cluster.commands import remote_command
from firecrest_server.errors import BadRequest


def test_argv_and_env_are_quoted_behind_a_remote_timeout() -> None:
    command = remote_command(["echo", "a b", "$(x)"], 29.6, {"K": "v 'w'"})
    assert shlex.split(command) == [
        "timeout",
        "-k",
        "5",
        "30",
        "env",
        "K=v 'w'",
        "echo",
        "a b",
        "$(x)",
    ]


@pytest.mark.parametrize(
    ("argv", "env"),
    [(["ls", "--", "/home/a\x00b"], None), (["true"], {"K": "a\x00b"}), (["true"], {"K\x00": "v"})],
)
def test_nul_never_reaches_the_ssh_exec_request(argv: list[str], env: dict | None) -> None:
    # sshd drops the whole connection on an exec request with a NUL in it, and with it every
    # other operation of that user in flight on the same connection.
    with pytest.raises(BadRequest, match="NUL"):
        remote_command(argv, 30, env)
