"""Every /filesystem/{system}/ops endpoint through pyfirecrest 3.10 from PyPI, unmodified.

Each test runs twice: with the sync client and with the async client.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import firecrest
import pytest

from firecrest_dev.info import StackInfo

from .conftest import Client

pytestmark = pytest.mark.stack


def _status(excinfo: pytest.ExceptionInfo) -> int:
    return excinfo.value.responses[-1].status_code


def _message(excinfo: pytest.ExceptionInfo) -> str:
    return excinfo.value.responses[-1].json()["message"]


async def _put_text(
    client: Client, stack: StackInfo, tmp_path: Path, directory: str, name: str, text: str
) -> str:
    local = tmp_path / name
    local.write_text(text)
    assert await client.upload(stack.system, str(local), directory, name) is None
    return f"{directory}/{name}"


async def test_systems_and_version(alice: Client, stack: StackInfo) -> None:
    systems = await alice.systems()
    assert stack.system in [s["name"] for s in systems]
    version = await alice.server_version()
    assert version is not None
    assert version.startswith("2.")


async def test_mkdir_ls_and_stat(alice: Client, stack: StackInfo, alice_dir: str) -> None:
    created = await alice.mkdir(stack.system, f"{alice_dir}/a/b", create_parents=True)
    assert created["type"] == "d"
    assert created["user"] == "alice"
    listing = await alice.list_files(stack.system, alice_dir)
    assert [(e["name"], e["type"]) for e in listing] == [("a", "d")]
    recursive = await alice.list_files(stack.system, alice_dir, recursive=True)
    assert {e["name"] for e in recursive} == {"a", "a/b"}
    numeric = await alice.list_files(stack.system, alice_dir, numeric_uid=True)
    assert numeric[0]["user"].isdigit()
    st = await alice.stat(stack.system, f"{alice_dir}/a")
    assert set(st) >= {
        "mode",
        "uid",
        "gid",
        "size",
        "atime",
        "mtime",
        "ctime",
        "ino",
        "dev",
        "nlink",
    }
    assert st["mode"] & 0o040000


async def test_mkdir_of_an_existing_path_without_parents_fails(
    alice: Client, stack: StackInfo, alice_dir: str
) -> None:
    with pytest.raises(firecrest.UnexpectedStatusException) as excinfo:
        await alice.mkdir(stack.system, alice_dir)
    assert _status(excinfo) == 400
    assert "File exists" in _message(excinfo)


async def test_upload_view_head_tail_checksum_file_download(
    alice: Client, stack: StackInfo, alice_dir: str, tmp_path: Path
) -> None:
    text = "".join(f"line {i}\n" for i in range(1, 21))
    path = await _put_text(alice, stack, tmp_path, alice_dir, "lines.txt", text)
    assert await alice.view(stack.system, path) == text
    head = await alice.head(stack.system, path, num_lines=3)
    assert head["content"] == "line 1\nline 2\nline 3\n"
    assert head["contentType"] == "lines"
    tail = await alice.tail(stack.system, path, num_bytes=8)
    assert tail["content"] == text[-8:]
    assert tail["contentType"] == "bytes"
    checksum = await alice.checksum(stack.system, path)
    assert checksum == {
        "algorithm": "SHA256",
        "checksum": hashlib.sha256(text.encode()).hexdigest(),
    }
    assert "text" in (await alice.file_type(stack.system, path))
    stat = await alice.stat(stack.system, path)
    assert stat["size"] == len(text)
    target = tmp_path / "back.txt"
    await alice.download(stack.system, path, str(target))
    assert target.read_text() == text


async def test_binary_and_empty_files_round_trip(
    alice: Client, stack: StackInfo, alice_dir: str, tmp_path: Path
) -> None:
    for name, data in (("empty.bin", b""), ("random.bin", os.urandom(900 * 1024))):
        local = tmp_path / name
        local.write_bytes(data)
        await alice.upload(stack.system, str(local), alice_dir, name)
        back = tmp_path / f"{name}.back"
        await alice.download(stack.system, f"{alice_dir}/{name}", str(back))
        assert back.read_bytes() == data


async def test_chmod_chown_symlink(
    alice: Client, stack: StackInfo, alice_dir: str, tmp_path: Path
) -> None:
    path = await _put_text(alice, stack, tmp_path, alice_dir, "f.txt", "x")
    assert (await alice.chmod(stack.system, path, "700"))["permissions"] == "rwx------"
    assert (await alice.chmod(stack.system, path, "u-x,g+r"))["permissions"] == "rw-r-----"
    owned = await alice.chown(stack.system, path, "alice", "alice")
    assert (owned["user"], owned["group"]) == ("alice", "alice")
    with pytest.raises(firecrest.UnexpectedStatusException) as excinfo:
        await alice.chown(stack.system, path, "root", "root")
    assert _status(excinfo) == 403
    link = await alice.symlink(stack.system, path, f"{alice_dir}/link")
    assert link["output"]["type"] == "l"
    assert link["output"]["linkTarget"] == path
    listing = await alice.list_files(stack.system, alice_dir)
    assert {e["name"]: e["linkTarget"] for e in listing}["link"] == path


async def test_compress_and_extract_every_format(
    alice: Client, stack: StackInfo, alice_dir: str, tmp_path: Path
) -> None:
    await alice.mkdir(stack.system, f"{alice_dir}/src/sub", create_parents=True)
    await _put_text(alice, stack, tmp_path, f"{alice_dir}/src/sub", "data.txt", "payload\n")
    for compression in ("none", "gzip", "bzip2", "xz"):
        archive = f"{alice_dir}/a-{compression}.tar"
        assert (
            await alice.compress(stack.system, f"{alice_dir}/src", archive, compression=compression)
            is None
        )
        out = f"{alice_dir}/out-{compression}"
        await alice.mkdir(stack.system, out)
        assert await alice.extract(stack.system, archive, out, compression=compression) is None
        assert await alice.view(stack.system, f"{out}/src/sub/data.txt") == "payload\n"


async def test_rm(alice: Client, stack: StackInfo, alice_dir: str, tmp_path: Path) -> None:
    path = await _put_text(alice, stack, tmp_path, alice_dir, "gone.txt", "x")
    assert await alice.rm(stack.system, path) is None
    with pytest.raises(firecrest.UnexpectedStatusException) as excinfo:
        await alice.stat(stack.system, path)
    assert _status(excinfo) == 404


async def test_missing_paths_give_404_with_the_phrase_clients_look_for(
    alice: Client, stack: StackInfo, alice_dir: str
) -> None:
    missing = f"{alice_dir}/missing"
    for call in (
        alice.list_files(stack.system, missing),
        alice.stat(stack.system, missing),
        alice.view(stack.system, missing),
        alice.head(stack.system, missing),
        alice.checksum(stack.system, missing),
    ):
        with pytest.raises(firecrest.UnexpectedStatusException) as excinfo:
            await call
        assert _status(excinfo) == 404
        assert "No such file or directory" in _message(excinfo)


async def test_other_users_private_files_give_403(alice: Client, stack: StackInfo) -> None:
    bob_home = stack.users["bob"].home
    with pytest.raises(firecrest.UnexpectedStatusException) as excinfo:
        await alice.list_files(stack.system, bob_home)
    assert _status(excinfo) == 403


async def test_paths_outside_the_configured_file_systems_give_400(
    alice: Client, stack: StackInfo
) -> None:
    for path in ("/etc/passwd", "/home/alice/../../etc/passwd", "relative/path"):
        with pytest.raises(firecrest.UnexpectedStatusException) as excinfo:
            await alice.stat(stack.system, path)
        assert _status(excinfo) == 400


def test_firecrest_cli(stack: StackInfo, alice_dir: str) -> None:
    # The `firecrest` command line (pyfirecrest's Typer CLI), authenticating by token command.
    env = dict(
        os.environ,
        FIRECREST_URL=stack.url,
        FIRECREST_TOKEN_COMMAND=stack.users["alice"].token_command,
        FIRECREST_SYSTEM=stack.system,
    )
    cli = Path(sys.executable).parent / "firecrest"
    listing = subprocess.run(
        [str(cli), "ls", stack.users["alice"].home], capture_output=True, text=True, env=env
    )
    assert listing.returncode == 0, listing.stderr
    assert Path(alice_dir).name in [entry["name"] for entry in json.loads(listing.stdout)]
