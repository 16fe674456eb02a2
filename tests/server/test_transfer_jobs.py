"""/transfer cp, mv, rm, compress, extract as real Slurm jobs, waited for as pyfirecrest does."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from firecrest_dev.info import StackInfo

from .conftest import Client

pytestmark = pytest.mark.stack

PHRASES = ("Files were successfully", "File was successfully")


async def _upload(
    client: Client, stack: StackInfo, tmp_path: Path, directory: str, name: str
) -> str:
    local = tmp_path / name
    local.write_text(f"content of {name}\n")
    await client.upload(stack.system, str(local), directory, name)
    return f"{directory}/{name}"


async def test_cp_and_mv_with_pyfirecrest_blocking_calls(
    alice: Client, stack: StackInfo, alice_dir: str, tmp_path: Path
) -> None:
    source = await _upload(alice, stack, tmp_path, alice_dir, "a b.txt")
    copied = await alice.cp(stack.system, source, f"{alice_dir}/copy.txt")
    assert copied["transferJob"]["system"] == stack.system
    assert await alice.view(stack.system, f"{alice_dir}/copy.txt") == "content of a b.txt\n"
    await alice.mv(stack.system, f"{alice_dir}/copy.txt", f"{alice_dir}/moved.txt")
    names = {e["name"] for e in await alice.list_files(stack.system, alice_dir)}
    assert names == {"a b.txt", "moved.txt"}


async def _transfer(
    http: httpx.AsyncClient, alice: Client, stack: StackInfo, method: str, path: str, **kwargs
) -> str:
    response = await http.request(method, f"/transfer/{path}", **kwargs)
    assert response.status_code == (200 if method == "DELETE" else 201), response.text
    job = response.json()["transferJob"]
    final = await alice.wait_for_job(stack.system, job["jobId"], timeout=120)
    assert final[0]["status"]["state"] == "COMPLETED"
    log = await alice.view(stack.system, job["logs"]["outputLog"])
    assert any(phrase in log for phrase in PHRASES), log
    return log


async def test_rm_compress_extract_as_jobs(
    alice: Client, stack: StackInfo, alice_dir: str, tmp_path: Path, token_for
) -> None:
    await alice.mkdir(stack.system, f"{alice_dir}/tree/sub", create_parents=True)
    await _upload(alice, stack, tmp_path, f"{alice_dir}/tree/sub", "x.txt")
    async with httpx.AsyncClient(
        base_url=f"{stack.url}/filesystem/{stack.system}",
        headers={"Authorization": f"Bearer {token_for('alice')}"},
        timeout=60,
    ) as http:
        for compression, suffix in (("gzip", "tar.gz"), ("bzip2", "tar.bz2"), ("xz", "tar.xz")):
            archive = f"{alice_dir}/tree.{suffix}"
            body = {"path": f"{alice_dir}/tree", "targetPath": archive, "compression": compression}
            await _transfer(http, alice, stack, "POST", "compress", json=body)
            out = f"{alice_dir}/out-{compression}"
            await alice.mkdir(stack.system, out)
            body = {"path": archive, "targetPath": out, "compression": compression}
            await _transfer(http, alice, stack, "POST", "extract", json=body)
            assert await alice.view(stack.system, f"{out}/tree/sub/x.txt") == "content of x.txt\n"
        await _transfer(http, alice, stack, "DELETE", "rm", params={"path": f"{alice_dir}/tree"})
        names = {e["name"] for e in await alice.list_files(stack.system, alice_dir)}
        assert "tree" not in names


async def test_failed_transfer_job_prints_no_success_phrase(
    alice: Client, stack: StackInfo, alice_dir: str, token_for
) -> None:
    async with httpx.AsyncClient(
        base_url=f"{stack.url}/filesystem/{stack.system}",
        headers={"Authorization": f"Bearer {token_for('alice')}"},
        timeout=60,
    ) as http:
        response = await http.post(
            "/transfer/cp",
            json={"sourcePath": f"{alice_dir}/missing", "targetPath": f"{alice_dir}/x"},
        )
        assert response.status_code == 201
        job = response.json()["transferJob"]
    final = await alice.wait_for_job(stack.system, job["jobId"], timeout=120)
    assert final[0]["status"]["state"] == "FAILED"
    log = await alice.view(stack.system, job["logs"]["outputLog"])
    assert not any(phrase in log for phrase in PHRASES)
    error_log = await alice.view(stack.system, job["logs"]["errorLog"])
    assert "No such file or directory" in error_log


async def test_transfer_paths_are_checked(stack: StackInfo, token_for) -> None:
    async with httpx.AsyncClient(
        base_url=f"{stack.url}/filesystem/{stack.system}",
        headers={"Authorization": f"Bearer {token_for('alice')}"},
    ) as http:
        response = await http.post(
            "/transfer/cp", json={"sourcePath": "/etc/shadow", "targetPath": "/home/alice/s"}
        )
        assert response.status_code == 400
