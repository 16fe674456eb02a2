"""Files at and above the server's direct-transfer limit (``dataOperation.max_ops_file_size``).

Above it, FirecREST stages files through S3 (``/transfer/upload``, ``/transfer/download`` and a
transfer job): downloads always go that way; uploads go as a one-file tar stream when the server
has the ``filesystem.tree`` extension, else through S3 as well.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from pathlib import Path

import pytest

from .conftest import seed

pytestmark = pytest.mark.stack


async def limit_of(transport) -> int:
    return (await transport.fs.info()).max_ops_file_size


def random_file(path: Path, size: int) -> str:
    data = os.urandom(size)
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def test_just_below_the_limit_goes_directly(transport, remote_dir, tmp_path) -> None:
    size = await limit_of(transport) - 1
    digest = random_file(tmp_path / "big", size)
    await transport.putfile_async(tmp_path / "big", f"{remote_dir}/big")
    assert sha256(Path(remote_dir, "big")) == digest
    await transport.getfile_async(f"{remote_dir}/big", tmp_path / "back")
    assert sha256(tmp_path / "back") == digest


async def test_upload_above_the_limit_through_the_tree_extension(
    transport, remote_dir, tmp_path
) -> None:
    size = await limit_of(transport) + 1024 * 1024
    digest = random_file(tmp_path / "big", size)
    await transport.putfile_async(tmp_path / "big", f"{remote_dir}/big")
    assert sha256(Path(remote_dir, "big")) == digest
    assert os.listdir(remote_dir) == ["big"]


async def test_download_above_the_limit_through_s3_staging(transport, remote_dir, tmp_path) -> None:
    size = await limit_of(transport) + 1024 * 1024
    data = os.urandom(size)
    seed(Path(remote_dir, "big"), data)
    await transport.getfile_async(f"{remote_dir}/big", tmp_path / "back")
    assert (tmp_path / "back").read_bytes() == data


async def test_upload_above_the_limit_through_s3_staging(transport, remote_dir, tmp_path) -> None:
    """As against a plain FirecREST: no extensions, so the S3 path."""
    info = await transport.fs.info()
    transport.fs._info = dataclasses.replace(info, capabilities=frozenset())
    digest = random_file(tmp_path / "big", info.max_ops_file_size + 1024)
    await transport.putfile_async(tmp_path / "big", f"{remote_dir}/big")
    assert sha256(Path(remote_dir, "big")) == digest


@pytest.mark.slow
async def test_multipart_s3_round_trip(transport, remote_dir, tmp_path) -> None:
    """Big enough for several S3 parts (the stack's part size is 64 MiB), sent in parallel."""
    info = await transport.fs.info()
    transport.fs._info = dataclasses.replace(info, capabilities=frozenset())
    digest = random_file(tmp_path / "big", 130 * 1024 * 1024 + 7)
    await transport.putfile_async(tmp_path / "big", f"{remote_dir}/big")
    assert sha256(Path(remote_dir, "big")) == digest
    await transport.getfile_async(f"{remote_dir}/big", tmp_path / "back")
    assert sha256(tmp_path / "back") == digest
