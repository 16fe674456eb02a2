"""remote_command for arbitrary argv: every value comes back as exactly one word, unchanged."""

from __future__ import annotations

import shlex
import subprocess

from hypothesis import given, settings
from hypothesis import strategies as st

from firecrest_server.cluster.commands import remote_command
from firecrest_server.errors import BadRequest

# Anything a user can send, except NUL (refused) and lone surrogates (not valid UTF-8).
words = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"))
argvs = st.lists(words, min_size=1, max_size=8)
envs = st.dictionaries(st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,10}", fullmatch=True), words)
timeouts = st.floats(min_value=0, max_value=10**6, allow_nan=False)


def _expected(argv, timeout, env) -> list[str]:
    prefix = ["env", *(f"{k}={v}" for k, v in env.items())] if env else []
    return ["timeout", "-k", "5", str(max(1, round(timeout))), *prefix, *argv]


@settings(max_examples=150)
@given(argvs, timeouts, envs)
def test_round_trips_through_shlex(argv: list[str], timeout: float, env: dict) -> None:
    assert shlex.split(remote_command(argv, timeout, env)) == _expected(argv, timeout, env)


@settings(max_examples=60, deadline=None)
@given(argvs, envs)
def test_round_trips_through_a_real_shell(argv: list[str], env: dict) -> None:
    """What the login node's shell makes of the command line: the same words, no expansion."""
    command = remote_command(["printf", "%s\\0", *argv], 30, env)
    # Run the words the remote `timeout` would get, through bash exactly as sshd hands it over.
    shown = subprocess.run(
        ["bash", "-c", f"set -- {command}; shift 4; printf '%s\\0' \"$@\""],
        capture_output=True,
        check=True,
    )
    words = shown.stdout.decode("utf-8", "surrogateescape").split("\0")[:-1]
    assert words == _expected(["printf", "%s\\0", *argv], 30, env)[4:]


@given(argvs, st.integers(min_value=0, max_value=7), st.text(max_size=5))
def test_a_nul_anywhere_is_refused(argv: list[str], where: int, around: str) -> None:
    argv = list(argv)
    index = where % len(argv)
    argv[index] = argv[index] + "\x00" + around
    try:
        remote_command(argv, 30)
    except BadRequest:
        return
    raise AssertionError("a NUL reached the command line")
