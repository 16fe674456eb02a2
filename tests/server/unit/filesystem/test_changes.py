"""rm/chmod/chown argument building and validation; mkdir -p against an in-memory SFTP server."""

from __future__ import annotations

import posixpath
import stat as stat_module

import asyncssh
import pytest

from firecrest_server.config import SystemConfig, parse_settings
from firecrest_server.errors import BadRequest
from firecrest_server.filesystem.changes import (
    Mode,
    _mkdir,
    _mkdir_parents,
    check_removable,
    chown_argv,
    owner_spec,
    rm_argv,
)


def _system(*paths: str) -> SystemConfig:
    settings = parse_settings(
        {
            "auth": {"jwks_url": "https://idp/jwks", "issuer": "https://idp", "audience": "f"},
            "systems": [
                {
                    "name": "c",
                    "ssh": {
                        "host": "h",
                        "known_hosts": "/k",
                        "credentials": {"type": "ca", "ca_key": "k"},
                    },
                    "file_systems": [{"path": p} for p in paths],
                }
            ],
        }
    )
    return settings.systems[0]


# ---------------------------------------------------------------------------------------- rm


def test_rm_argv() -> None:
    assert rm_argv("/home/a/-rf") == ["rm", "-r", "--interactive=never", "--", "/home/a/-rf"]


@pytest.mark.parametrize("path", ["/home", "/scratch/x", "/"])
def test_rm_refuses_file_system_roots(path: str) -> None:
    with pytest.raises(BadRequest, match="cannot be removed"):
        check_removable(_system("/home", "/scratch/x"), path)


@pytest.mark.parametrize("path", ["/home/alice", "/scratch/x/y", "/scratch/xy"])
def test_rm_allows_paths_below_roots(path: str) -> None:
    check_removable(_system("/home", "/scratch/x"), path)


# ------------------------------------------------------------------------------------- chmod


@pytest.mark.parametrize(
    ("text", "octal"),
    [
        ("755", True),
        ("0644", True),
        ("7", True),
        ("4755", True),
        ("00755", True),
        ("u+x", False),
        ("u+x,g-w", False),
        ("a=rX", False),
        ("-w", False),
        ("+t", False),
        ("g=u", False),
        ("=", False),
        ("o=", False),
        ("ug+rwxs,o-rwx", False),
        ("-6000", False),
        ("=755", False),
    ],
)
def test_valid_modes(text: str, octal: bool) -> None:
    assert Mode.parse(text) == Mode(text, octal)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "rwx",
        "888",
        "777777",
        "10755",
        "u+x;id",
        "u+x --reference=/etc/shadow",
        "--reference=/etc/shadow",
        "u+x,",
        ",u+x",
        "u+x\n",
        "$(id)",
        "u+q",
        "ux",
        "755 ",
    ],
)
def test_invalid_modes_are_400(text: str) -> None:
    with pytest.raises(BadRequest, match="Invalid mode"):
        Mode.parse(text)


def test_symbolic_mode_comes_after_double_dash() -> None:
    # `chmod -- -w PATH`: the mode cannot be mistaken for an option.
    assert Mode.parse("-w").argv("/p") == ["chmod", "--", "-w", "/p"]


def test_octal_bits_on_a_file() -> None:
    regular = stat_module.S_IFREG | 0o4755
    assert Mode.parse("644").bits(regular) == 0o644
    assert Mode.parse("2755").bits(regular) == 0o2755


def test_octal_bits_keep_a_directorys_setid_bits_like_chmod() -> None:
    directory = stat_module.S_IFDIR | 0o2775
    assert Mode.parse("755").bits(directory) == 0o2755
    assert Mode.parse("0755").bits(directory) == 0o2755
    assert Mode.parse("1755").bits(directory) == 0o3755
    # Five digits clear them explicitly.
    assert Mode.parse("00755").bits(directory) == 0o755


# ------------------------------------------------------------------------------------- chown


@pytest.mark.parametrize(
    ("owner", "group", "spec"),
    [
        ("alice", "users", "alice:users"),
        ("alice", None, "alice"),
        ("alice", "", "alice"),
        (None, "users", ":users"),
        ("", "users", ":users"),
        ("1001", "1001", "1001:1001"),
        ("svc_x.y-z", "g@dom", "svc_x.y-z:g@dom"),
        (None, None, None),
        ("", "", None),
    ],
)
def test_owner_spec(owner, group, spec) -> None:
    assert owner_spec(owner, group) == spec


@pytest.mark.parametrize(
    "value",
    [
        "-x",
        "--reference=/etc",
        "a:b",
        "a b",
        "$(id)",
        "a;b",
        "a\nb",
        "ä",
        ".hidden",
        "a/b",
        "x" * 300,
    ],
)
@pytest.mark.parametrize("kind", ["owner", "group"])
def test_invalid_owner_or_group_is_400(kind: str, value: str) -> None:
    kwargs = {"owner": None, "group": None, kind: value}
    with pytest.raises(BadRequest, match=f"Invalid {kind}"):
        owner_spec(**kwargs)


def test_chown_argv() -> None:
    assert chown_argv("a:b", "/home/a/-f") == ["chown", "a:b", "--", "/home/a/-f"]


# ------------------------------------------------------------------------------------- mkdir


class FakeSFTP:
    """Directories, files and links in memory, failing as OpenSSH's sftp-server does."""

    def __init__(self, *dirs: str, files: tuple[str, ...] = (), links: dict | None = None) -> None:
        self.kinds: dict[str, int] = {"/": stat_module.S_IFDIR}
        self.kinds.update({d: stat_module.S_IFDIR for d in dirs})
        self.kinds.update({f: stat_module.S_IFREG for f in files})
        self.links: dict[str, str] = dict(links or {})
        self.kinds.update({link: stat_module.S_IFLNK for link in self.links})
        self.requests: list[tuple[str, str]] = []

    async def mkdir(self, path: str) -> None:
        self.requests.append(("mkdir", path))
        if path in self.kinds:
            raise asyncssh.SFTPFailure("Failure")  # EEXIST, as OpenSSH reports it
        if self.kinds.get(posixpath.dirname(path)) != stat_module.S_IFDIR:
            raise asyncssh.SFTPNoSuchFile("No such file")
        self.kinds[path] = stat_module.S_IFDIR

    async def lstat(self, path: str) -> asyncssh.SFTPAttrs:
        self.requests.append(("lstat", path))
        if path not in self.kinds:
            raise asyncssh.SFTPNoSuchFile("No such file")
        return asyncssh.SFTPAttrs(permissions=self.kinds[path] | 0o755)

    async def stat(self, path: str) -> asyncssh.SFTPAttrs:
        self.requests.append(("stat", path))
        return await self.lstat(self.links.get(path, path))


async def test_mkdir_creates() -> None:
    sftp = FakeSFTP("/home")
    await _mkdir(sftp, "/home/new")
    assert "/home/new" in sftp.kinds


async def test_mkdir_of_an_existing_path_says_file_exists() -> None:
    sftp = FakeSFTP("/home", "/home/d")
    with pytest.raises(BadRequest, match="mkdir: cannot create directory '/home/d': File exists"):
        await _mkdir(sftp, "/home/d")


async def test_mkdir_without_parent_propagates_no_such_file() -> None:
    with pytest.raises(asyncssh.SFTPNoSuchFile):
        await _mkdir(FakeSFTP("/home"), "/home/a/b")


async def test_mkdir_parents_costs_one_request_when_the_parent_exists() -> None:
    sftp = FakeSFTP("/home", "/home/a")
    await _mkdir_parents(sftp, "/home/a/b")
    assert sftp.requests == [("mkdir", "/home/a/b")]


async def test_mkdir_parents_creates_missing_ancestors() -> None:
    sftp = FakeSFTP("/home")
    await _mkdir_parents(sftp, "/home/a/b/c")
    assert {"/home/a", "/home/a/b", "/home/a/b/c"} <= set(sftp.kinds)


async def test_mkdir_parents_accepts_an_existing_directory_or_link_to_one() -> None:
    sftp = FakeSFTP("/home", "/home/d", links={"/home/l": "/home/d"})
    await _mkdir_parents(sftp, "/home/d")
    await _mkdir_parents(sftp, "/home/l")


@pytest.mark.parametrize("path", ["/home/f", "/home/f/sub", "/home/dangling"])
async def test_mkdir_parents_refuses_a_non_directory(path: str) -> None:
    sftp = FakeSFTP("/home", files=("/home/f",), links={"/home/dangling": "/nowhere"})
    with pytest.raises(BadRequest, match="File exists"):
        await _mkdir_parents(sftp, path)


async def test_mkdir_failure_with_nothing_there_is_passed_on() -> None:
    class ReadOnly(FakeSFTP):
        async def mkdir(self, path: str) -> None:
            raise asyncssh.SFTPFailure("Read-only file system")

    with pytest.raises(asyncssh.SFTPFailure, match="Read-only"):
        await _mkdir_parents(ReadOnly("/home"), "/home/x")
    with pytest.raises(asyncssh.SFTPFailure, match="Read-only"):
        await _mkdir(ReadOnly("/home"), "/home/x")
