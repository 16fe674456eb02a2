"""How many HTTP requests the operations of every calculation cost (AiiDA's upload puts files
and one directory, its retrieval gets files): each request is CPU in the daemon and the server,
so the usual case asks no questions first. The unusual cases still behave as before."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from .conftest import seed

pytestmark = pytest.mark.stack


async def test_putting_a_file_is_one_upload(transport, remote_dir, tmp_path, requests_made):
    local = tmp_path / "aiida.in"
    local.write_text("1 + 2\n")
    await transport.put_async(str(local), f"{remote_dir}/aiida.in")
    assert requests_made == ["POST /filesystem/cluster/ops/upload"]
    assert Path(remote_dir, "aiida.in").read_text() == "1 + 2\n"


async def test_putting_a_file_onto_a_directory_puts_it_inside(
    transport, remote_dir, tmp_path, requests_made
):
    local = tmp_path / "aiida.in"
    local.write_text("inside")
    seed(f"{remote_dir}/sub/keep", "x")
    await transport.put_async(str(local), f"{remote_dir}/sub")
    assert Path(remote_dir, "sub", "aiida.in").read_text() == "inside"
    assert Path(remote_dir, "sub", "keep").read_text() == "x"
    # The refused upload, the look that finds a directory, the upload into it.
    assert len(requests_made) == 3


async def test_a_refused_upload_that_is_not_about_a_directory_raises_its_error(
    transport, remote_dir, tmp_path
):
    local = tmp_path / "f"
    local.write_text("x")
    with pytest.raises(FileNotFoundError):
        await transport.put_async(str(local), f"{remote_dir}/missing-parent/f")


async def test_getting_a_file_is_one_download(transport, remote_dir, tmp_path, requests_made):
    seed(f"{remote_dir}/aiida.out", "3\n")
    await transport.get_async(f"{remote_dir}/aiida.out", str(tmp_path / "aiida.out"))
    assert requests_made == ["GET /filesystem/cluster/ops/download"]
    assert (tmp_path / "aiida.out").read_text() == "3\n"


async def test_getting_a_missing_file_creates_nothing(transport, remote_dir, tmp_path):
    target = tmp_path / "absent.txt"
    await transport.get_async(f"{remote_dir}/absent.txt", str(target), ignore_nonexisting=True)
    assert not target.exists()
    with pytest.raises(OSError, match="does not exist"):
        await transport.get_async(f"{remote_dir}/absent.txt", str(target))
    assert not target.exists()


async def test_getting_a_directory_still_gets_the_tree(transport, remote_dir, tmp_path):
    seed(f"{remote_dir}/out/a.txt", "a")
    seed(f"{remote_dir}/out/deep/b.txt", "b")
    await transport.get_async(f"{remote_dir}/out", str(tmp_path / "out"))
    assert (tmp_path / "out" / "a.txt").read_text() == "a"
    assert (tmp_path / "out" / "deep" / "b.txt").read_text() == "b"


async def test_putting_a_new_directory_is_one_tree_request(
    transport, remote_dir, tmp_path, requests_made
):
    local = tmp_path / ".aiida"
    local.mkdir()
    (local / "calcinfo.json").write_text("{}")
    (local / "job_tmpl.json").write_text("{}")
    await transport.put_async(str(local), f"{remote_dir}/.aiida")
    # The server makes the directory with the tree (extension filesystem.tree.create).
    assert requests_made == ["PUT /filesystem/cluster/ops/tree"]
    assert sorted(os.listdir(Path(remote_dir, ".aiida"))) == ["calcinfo.json", "job_tmpl.json"]


async def test_without_tree_create_a_new_directory_is_a_mkdir_and_one_tree(
    transport, remote_dir, tmp_path, requests_made
):
    info = await transport.fs.info()
    transport.fs._info = dataclasses.replace(
        info, capabilities=info.capabilities - {"filesystem.tree.create"}
    )
    local = tmp_path / ".aiida"
    local.mkdir()
    (local / "calcinfo.json").write_text("{}")
    await transport.put_async(str(local), f"{remote_dir}/.aiida")
    assert requests_made == [
        "POST /filesystem/cluster/ops/mkdir",
        "PUT /filesystem/cluster/ops/tree",
    ]
    assert os.listdir(Path(remote_dir, ".aiida")) == ["calcinfo.json"]


async def test_putting_an_empty_new_directory_makes_it(transport, remote_dir, tmp_path):
    local = tmp_path / "empty"
    local.mkdir()
    await transport.put_async(str(local), f"{remote_dir}/empty")
    assert Path(remote_dir, "empty").is_dir()
    assert os.listdir(Path(remote_dir, "empty")) == []


async def test_putting_a_directory_below_missing_parents_makes_them(
    transport, remote_dir, tmp_path
):
    local = tmp_path / "tree"
    local.mkdir()
    (local / "f").write_text("f")
    await transport.puttree_async(str(local), f"{remote_dir}/x/y/tree")
    assert Path(remote_dir, "x", "y", "tree", "f").read_text() == "f"


async def test_putting_a_directory_onto_an_existing_one_puts_it_inside(
    transport, remote_dir, tmp_path
):
    local = tmp_path / "tree"
    local.mkdir()
    (local / "f").write_text("f")
    seed(f"{remote_dir}/there/keep", "k")
    await transport.puttree_async(str(local), f"{remote_dir}/there")
    assert Path(remote_dir, "there", "tree", "f").read_text() == "f"
    assert Path(remote_dir, "there", "keep").read_text() == "k"
    seed(f"{remote_dir}/a-file", "not a directory")
    with pytest.raises(OSError, match="into a file"):
        await transport.puttree_async(str(local), f"{remote_dir}/a-file")


async def test_the_next_open_asks_no_system_info_token_or_user_again(make_computer, stack):
    """AiiDA opens a transport per batch of tasks: the system's information, the access token
    and the user name of the first open serve the next ones (aiida_firecrest/reuse.py)."""
    from .conftest import open_transport

    computer = make_computer()
    async with open_transport(computer) as first:
        await first.fs.info()
        assert await first.whoami_async() == "alice"
    async with open_transport(computer) as second:
        made: list[str] = []

        async def record(request) -> None:
            made.append(f"{request.method} {request.url.path}")

        second.client.session.http.event_hooks["request"].append(record)
        assert await second.whoami_async() == "alice"
        await second.path_exists_async(stack.users["alice"].home)
    # One stat: no /status/systems, no userinfo, and no token request to the provider.
    assert made == ["GET /filesystem/cluster/ops/stat"]
