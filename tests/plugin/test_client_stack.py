"""FirecrestClient against the real stack: status, capabilities, errors as the server sends them,
transfer jobs and their wait, compute jobs, and the three ways to authenticate."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from aiida_firecrest.client import (
    AuthenticationError,
    FirecrestClient,
    JobNotFoundError,
    StaticToken,
    client_credentials,
    token_command,
)
from firecrest_dev.info import StackInfo

from .conftest import seed

pytestmark = pytest.mark.stack


@pytest.fixture
async def client(stack: StackInfo) -> AsyncIterator[FirecrestClient]:
    alice = stack.users["alice"]
    async with FirecrestClient(
        stack.url, client_credentials(stack.token_url, alice.client_id, alice.client_secret)
    ) as instance:
        yield instance


@pytest.fixture
async def home_dir(client: FirecrestClient, stack: StackInfo) -> AsyncIterator[str]:
    path = f"{stack.users['alice'].home}/client-{uuid.uuid4().hex[:10]}"
    await client.mkdir(stack.system, path)
    try:
        yield path
    finally:
        await client.rm(stack.system, path)


async def test_status_and_capabilities(client, stack) -> None:
    info = await client.system_info(stack.system)
    assert info.name == stack.system
    assert {"filesystem.ops.cp", "filesystem.ops.mv"} <= info.capabilities
    assert info.max_ops_file_size > 0
    with pytest.raises(OSError, match="not served"):
        await client.system_info("no-such-system")


async def test_userinfo(client, stack) -> None:
    user = await client.userinfo(stack.system)
    assert user.name == "alice"
    assert user.uid.isdigit()


async def test_errors_carry_the_servers_message(client, stack, home_dir) -> None:
    with pytest.raises(FileNotFoundError, match="No such file or directory") as missing:
        await client.stat(stack.system, f"{home_dir}/missing")
    assert missing.value.status_code == 404
    assert missing.value.request_id
    with pytest.raises(FileExistsError, match="File exists"):
        await client.mkdir(stack.system, home_dir)
    with pytest.raises(PermissionError):
        await client.ls(stack.system, stack.users["bob"].home)  # 0700, bob's
    seed(Path(home_dir, "file"), "x")
    # ENOTDIR, which SFTP (v3) reports as "no such file": either is a fine OSError here.
    with pytest.raises((NotADirectoryError, FileNotFoundError)):
        await client.mkdir(stack.system, f"{home_dir}/file/sub")


async def test_file_operations(client, stack, home_dir, tmp_path) -> None:
    system = stack.system
    await client.upload_bytes(system, home_dir, "hello.txt", b"hello\n")
    assert Path(home_dir, "hello.txt").read_bytes() == b"hello\n"
    assert await client.view(system, f"{home_dir}/hello.txt") == "hello\n"
    assert await client.head(system, f"{home_dir}/hello.txt", num_bytes=3) == "hel"
    digest = await client.checksum(system, f"{home_dir}/hello.txt")
    assert digest == "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"
    await client.download_to(system, f"{home_dir}/hello.txt", tmp_path / "back")
    assert (tmp_path / "back").read_bytes() == b"hello\n"
    await client.ops_cp(system, f"{home_dir}/hello.txt", f"{home_dir}/copy.txt")
    await client.ops_mv(system, f"{home_dir}/copy.txt", f"{home_dir}/moved.txt")
    entries = {e.name: e for e in await client.ls(system, home_dir)}
    assert set(entries) == {"hello.txt", "moved.txt"}
    assert entries["moved.txt"].size == 6
    await client.chmod(system, f"{home_dir}/moved.txt", 0o600)
    assert (await client.stat(system, f"{home_dir}/moved.txt")).mode & 0o777 == 0o600


async def test_transfer_jobs_and_their_wait(client, stack, home_dir) -> None:
    system = stack.system
    seed(Path(home_dir, "src/a"), "a")
    job = await client.transfer_cp(system, f"{home_dir}/src", f"{home_dir}/dst")
    log = await client.wait_for_transfer(job)
    assert "Files were successfully" in log
    assert Path(home_dir, "dst/a").read_text() == "a"
    job = await client.transfer_mv(system, f"{home_dir}/dst", f"{home_dir}/moved")
    await client.wait_for_transfer(job)
    assert Path(home_dir, "moved/a").is_file()
    job = await client.transfer_rm(system, f"{home_dir}/moved")
    await client.wait_for_transfer(job)
    assert not Path(home_dir, "moved").exists()
    job = await client.transfer_cp(system, f"{home_dir}/missing", f"{home_dir}/x")
    with pytest.raises(FileNotFoundError, match=f"Transfer job {job.job_id}"):
        await client.wait_for_transfer(job)


async def test_compute_jobs(client, stack, home_dir) -> None:
    system = stack.system
    job_id = await client.submit_job(
        system,
        working_directory=home_dir,
        script="#!/bin/bash\necho hello from $SLURM_JOB_ID\n",
        name="client-test",
        standard_output=f"{home_dir}/out.txt",
    )
    assert job_id.isdigit()
    assert (await client.get_job(system, job_id))[0]["jobId"] == job_id
    final = await client.wait_for_job(system, job_id, timeout=120)
    assert final["status"]["state"] == "COMPLETED"
    assert Path(home_dir, "out.txt").read_text() == f"hello from {job_id}\n"
    metadata = await client.job_metadata(system, job_id)
    assert metadata[0]["jobId"] == job_id
    listed = await client.list_jobs(system)
    assert job_id in {j["jobId"] for j in listed}
    long_job = await client.submit_job(
        system, working_directory=home_dir, script="#!/bin/bash\nsleep 300\n"
    )
    await client.cancel_job(system, long_job)
    final = await client.wait_for_job(system, long_job, timeout=120)
    assert final["status"]["state"].startswith("CANCELLED")
    with pytest.raises(JobNotFoundError):
        await client.get_job(system, "999999")
    with pytest.raises(ValueError, match="exactly one"):
        await client.submit_job(system, working_directory=home_dir)


async def test_token_command_and_static_token(stack) -> None:
    alice = stack.users["alice"]
    async with FirecrestClient(stack.url, token_command(alice.token_command)) as by_command:
        assert (await by_command.userinfo(stack.system)).name == "alice"
    static = StaticToken(stack.fetch_token("bob"))
    async with FirecrestClient(stack.url, static) as by_token:
        assert (await by_token.userinfo(stack.system)).name == "bob"


async def test_bad_credentials(stack) -> None:
    alice = stack.users["alice"]
    wrong = client_credentials(stack.token_url, alice.client_id, "not-the-secret")
    async with FirecrestClient(stack.url, wrong) as client:
        with pytest.raises(AuthenticationError) as refused:
            await client.userinfo(stack.system)
    assert "not-the-secret" not in str(refused.value)
    async with FirecrestClient(stack.url, StaticToken("garbage")) as client:
        with pytest.raises(AuthenticationError):
            await client.userinfo(stack.system)
