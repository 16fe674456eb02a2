"""The messages written for operations answered over SFTP: per operation and failure, the
words of the program FirecREST v2 runs, and coreutils' quoting of names."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from firecrest_server.diagnostics import (
    WORDINGS,
    Failure,
    message,
    program_stderr,
    quote_always,
    quote_if_needed,
)

NF = Failure.NOT_FOUND
DENIED = Failure.PERMISSION_DENIED
EPERM = Failure.NOT_PERMITTED


@pytest.mark.parametrize(
    ("operation", "failure", "path", "expected"),
    [
        ("stat", NF, "/x", "stat: cannot statx '/x': No such file or directory"),
        ("stat", DENIED, "/x/y", "stat: cannot statx '/x/y': Permission denied"),
        ("stat", Failure.NOT_A_DIRECTORY, "/f/y", "stat: cannot statx '/f/y': Not a directory"),
        ("stat", Failure.NAME_TOO_LONG, "/aa", "stat: cannot statx '/aa': File name too long"),
        ("ls", NF, "/x", "ls: cannot access '/x': No such file or directory"),
        ("ls", DENIED, "/d", "ls: cannot open directory '/d': Permission denied"),
        ("view", NF, "/x", "dd: failed to open '/x': No such file or directory"),
        ("view", DENIED, "/x", "dd: failed to open '/x': Permission denied"),
        ("view", Failure.IS_A_DIRECTORY, "/d", "dd: error reading '/d': Is a directory"),
        ("head", NF, "/x", "head: cannot open '/x' for reading: No such file or directory"),
        ("head", Failure.IS_A_DIRECTORY, "/d", "head: error reading '/d': Is a directory"),
        ("tail", NF, "/x", "tail: cannot open '/x' for reading: No such file or directory"),
        ("tail", Failure.IS_A_DIRECTORY, "/d", "tail: error reading '/d': Is a directory"),
        ("checksum", NF, "/x", "sha256sum: /x: No such file or directory"),
        ("checksum", NF, "/a b", "sha256sum: '/a b': No such file or directory"),
        ("checksum", Failure.IS_A_DIRECTORY, "/d", "sha256sum: /d: Is a directory"),
        ("file", NF, "/x", "file: cannot open `/x' (No such file or directory)"),
        ("chmod", NF, "/x", "chmod: cannot access '/x': No such file or directory"),
        ("chmod", DENIED, "/x/y", "chmod: cannot access '/x/y': Permission denied"),
        ("chmod", EPERM, "/x", "chmod: changing permissions of '/x': Operation not permitted"),
        ("chown", NF, "/x", "chown: cannot access '/x': No such file or directory"),
        ("chown", EPERM, "/x", "chown: changing ownership of '/x': Operation not permitted"),
        ("mkdir", Failure.EXISTS, "/d", "mkdir: cannot create directory '/d': File exists"),
        ("mkdir", NF, "/x/d", "mkdir: cannot create directory '/x/d': No such file or directory"),
        ("mkdir", DENIED, "/r/d", "mkdir: cannot create directory '/r/d': Permission denied"),
        ("rm", NF, "/x", "rm: cannot remove '/x': No such file or directory"),
        ("rm", Failure.NOT_EMPTY, "/d", "rm: cannot remove '/d': Directory not empty"),
        ("mv", NF, "/x", "mv: cannot stat '/x': No such file or directory"),
        ("cp", NF, "/x", "cp: cannot stat '/x': No such file or directory"),
        ("symlink", Failure.EXISTS, "/l", "ln: failed to create symbolic link '/l': File exists"),
        (
            "symlink",
            NF,
            "/x/l",
            "ln: failed to create symbolic link '/x/l': No such file or directory",
        ),
        ("download", NF, "/x", "base64: /x: No such file or directory"),
        ("download", Failure.IS_A_DIRECTORY, "/d", "base64: read error: Is a directory"),
        ("upload", NF, "/x/f", "bash: line 1: /x/f: No such file or directory"),
        ("upload", Failure.IS_A_DIRECTORY, "/d", "bash: line 1: /d: Is a directory"),
        ("extract", NF, "/x.tgz", "tar: /x.tgz: Cannot open: No such file or directory"),
    ],
)
def test_each_operation_words_failures_as_its_program(
    operation: str, failure: Failure, path: str, expected: str
) -> None:
    assert program_stderr(operation, failure, path) == expected


def test_the_message_is_framed_as_firecrest_v2_frames_stderr() -> None:
    assert message("stat", NF, "/x") == (
        "Remote process failed with exit status:1 and error message:"
        "stat: cannot statx '/x': No such file or directory"
    )
    # ls exits 2 when it cannot access what it was asked for.
    assert message("ls", NF, "/x").startswith("Remote process failed with exit status:2 ")


@pytest.mark.parametrize("operation", sorted(WORDINGS))
def test_every_not_found_says_no_such_file_or_directory(operation: str) -> None:
    # pyfirecrest turns a 404 into FileNotFoundError only when these words are in it.
    assert "No such file or directory" in message(operation, NF, "/x")


# Expected strings: what GNU coreutils 9 (stat, sha256sum) wrote for these names, LC_ALL=C.
QUOTED = [
    ("/x/a", "'/x/a'", "/x/a"),
    ("/x/a b", "'/x/a b'", "'/x/a b'"),
    ("/x/a'b", '"/x/a\'b"', '"/x/a\'b"'),
    ("/x/a' b", '"/x/a\' b"', '"/x/a\' b"'),
    ('/x/a"b', "'/x/a\"b'", "'/x/a\"b'"),
    ("/x/a'$b", "'/x/a'\\''$b'", "'/x/a'\\''$b'"),
    ("/x/a'*b", "'/x/a'\\''*b'", "'/x/a'\\''*b'"),
    ("/x/a$b", "'/x/a$b'", "'/x/a$b'"),
    ("/x/a#b", "'/x/a#b'", "/x/a#b"),
    ("#a", "'#a'", "'#a'"),
    ("~a", "'~a'", "'~a'"),
    ("/x/a{b}", "'/x/a{b}'", "/x/a{b}"),
    ("/x/a:b", "'/x/a:b'", "'/x/a:b'"),
    ("/x/a=b", "'/x/a=b'", "'/x/a=b'"),
    ("/x/a+b,c@d%e-f", "'/x/a+b,c@d%e-f'", "/x/a+b,c@d%e-f"),
    ("/x/a\nb", "'/x/a'$'\\n''b'", "'/x/a'$'\\n''b'"),
    ("/x/a\tb", "'/x/a'$'\\t''b'", "'/x/a'$'\\t''b'"),
    ("a\x01\x02b", "'a'$'\\001\\002''b'", "'a'$'\\001\\002''b'"),
    ("a\x01", "'a'$'\\001'", "'a'$'\\001'"),
    ("\x01a", "''$'\\001''a'", "''$'\\001''a'"),
    ("a'\tb", "'a'\\'''$'\\t''b'", "'a'\\'''$'\\t''b'"),
    ("/x/\u00e9", "'/x/'$'\\303\\251'", "'/x/'$'\\303\\251'"),
    ("a\x7fb", "'a'$'\\177''b'", "'a'$'\\177''b'"),
]


@pytest.mark.parametrize(("name", "always", "if_needed"), QUOTED)
def test_names_are_quoted_as_coreutils_quotes_them(name: str, always: str, if_needed: str) -> None:
    assert quote_always(name) == always
    assert quote_if_needed(name) == if_needed


@pytest.mark.skipif(not shutil.which("stat"), reason="needs GNU coreutils")
@pytest.mark.parametrize("name", [name for name, _, _ in QUOTED if "/" in name])
def test_the_quoting_matches_the_coreutils_on_this_machine(name: str) -> None:
    """The real programs, on paths that cannot exist (under a missing directory)."""
    path = f"/nonexistent-{os.getpid()}{name}"
    env = {**os.environ, "LC_ALL": "C"}
    for argv, quote, template in (
        (["stat", "--", path], quote_always, "stat: cannot statx {}: "),
        (["sha256sum", "--", path], quote_if_needed, "sha256sum: {}: "),
    ):
        result = subprocess.run(argv, capture_output=True, env=env, check=False)
        stderr = result.stderr.decode("utf-8", "surrogateescape")
        assert stderr == template.format(quote(path)) + "No such file or directory\n"


# The command line FirecREST v2 runs for each operation (the upload's shell redirect aside).
PROGRAMS = {
    "stat": lambda p: ["stat", "--", p],
    "ls": lambda p: ["ls", "-l", "--", p],
    "view": lambda p: ["dd", f"if={p}", "bs=1", "count=1", "status=none"],
    "head": lambda p: ["head", "--", p],
    "tail": lambda p: ["tail", "--", p],
    "checksum": lambda p: ["sha256sum", "--", p],
    "chmod": lambda p: ["chmod", "600", "--", p],
    "chown": lambda p: ["chown", "0", "--", p],
    "mkdir": lambda p: ["mkdir", "--", p],
    "rm": lambda p: ["rm", "-r", "--interactive=never", "--", p],
    "mv": lambda p: ["mv", "--", p, p + "-moved"],
    "cp": lambda p: ["cp", "--", p, p + "-copied"],
    "symlink": lambda p: ["ln", "-s", "--", "target", p],
    "download": lambda p: ["base64", "--wrap=0", "--", p],
    "upload": lambda p: ["bash", "-c", 'cat > "$1"', "bash", p],
    "extract": lambda p: ["tar", "-xf", p, "-C", "/tmp"],
}


@pytest.mark.skipif(not shutil.which("stat"), reason="needs GNU coreutils")
@pytest.mark.parametrize("operation", sorted(PROGRAMS))
def test_the_wording_table_matches_the_programs_on_this_machine(operation: str) -> None:
    """Each operation's not-found words, against its real program on a path under a missing
    directory (the first line: tar adds a summary)."""
    path = f"/nonexistent-{os.getpid()}/x"
    env = {**os.environ, "LC_ALL": "C"}
    result = subprocess.run(PROGRAMS[operation](path), capture_output=True, env=env, check=False)
    first = result.stderr.decode().splitlines()[0]
    assert result.returncode == WORDINGS[operation].exit_status
    assert first == program_stderr(operation, NF, path)
