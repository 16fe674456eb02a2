"""Data movement of every size: pyfirecrest's S3 staging path, Range, trees in one request."""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import tarfile
import uuid
from pathlib import Path

import httpx
import pytest

from firecrest_dev.info import StackInfo

from .conftest import Client

pytestmark = pytest.mark.stack


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


@pytest.mark.slow
async def test_50_mib_up_and_down_through_s3_staging(
    alice: Client, stack: StackInfo, alice_dir: str, tmp_path: Path
) -> None:
    staging = Path(stack.users["alice"].home, ".firecrest-staging")
    staged_before = set(staging.glob("*")) if staging.exists() else set()
    local = tmp_path / "big.bin"
    with local.open("wb") as fh:
        for _ in range(50):
            fh.write(os.urandom(1 << 20))
    # 50 MiB is far above pyfirecrest's 1 MiB direct limit: transfer/upload, 4 part PUTs to the
    # staging URLs, the complete POST, and the transfer job that moves the file into place.
    await alice.upload(stack.system, str(local), alice_dir, "big.bin")
    remote = Path(alice_dir, "big.bin")
    assert remote.stat().st_size == 50 << 20
    assert _sha256(remote) == _sha256(local)
    assert (await alice.checksum(stack.system, str(remote)))["checksum"] == _sha256(local)
    assert set(staging.glob("*")) <= staged_before  # the job removed its staging directory
    back = tmp_path / "back.bin"
    await alice.download(stack.system, str(remote), str(back))
    assert _sha256(back) == _sha256(local)


async def _staged_upload(stack: StackInfo, token: str, target: str, size: int) -> dict:
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"}) as http:
        response = await http.post(
            f"{stack.url}/filesystem/{stack.system}/transfer/upload",
            json={"path": target, "transferDirectives": {"transferMethod": "s3", "fileSize": size}},
        )
    assert response.status_code == 201, response.text
    return response.json()


def _complete_xml(etag: str) -> str:
    return (
        "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber>"
        f"<ETag>{etag}</ETag></Part></CompleteMultipartUpload>"
    )


async def test_staging_urls_are_checked(stack: StackInfo, token_for, alice_dir: str) -> None:
    info = await _staged_upload(stack, token_for("alice"), f"{alice_dir}/x.bin", 10)
    url = info["transferDirectives"]["partsUploadUrls"][0]
    token = url.split("/staging/")[1].split("/")[0]
    async with httpx.AsyncClient() as http:
        # a tampered signature, a wrong size, a part number out of range, a bad complete
        forged = url.replace(token, token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB"))
        assert (await http.put(forged, content=b"0123456789")).status_code == 403
        assert (await http.put(url, content=b"short")).status_code == 400
        assert (
            await http.put(url.replace("/parts/1", "/parts/2"), content=b"x")
        ).status_code == 400
        complete = info["transferDirectives"]["completeUploadUrl"]
        assert (await http.post(complete, content=b"<not xml")).status_code == 400
        assert (await http.post(complete, content=_complete_xml('"x"'))).status_code == 400
        # the download URL of one kind is not an upload URL
        object_url = url.replace("/parts/1", "/object")
        assert (await http.get(object_url)).status_code == 403
        put = await http.put(url, content=b"0123456789")
        assert put.status_code == 200
        etag = put.headers["etag"]
        assert etag == f'"{hashlib.md5(b"0123456789").hexdigest()}"'  # noqa: S324
        assert (await http.post(complete, content=_complete_xml('"0"'))).status_code == 400
        assert (await http.post(complete, content=_complete_xml(etag))).status_code == 200


async def test_upload_accepts_firecrest_v2s_own_example(
    stack: StackInfo, token_for, alice_dir: str
) -> None:
    # FirecREST v2's OpenAPI example names the target `sourcePath` and sends fileSize as a
    # string; it used to be refused here with 400 (only path/targetPath were read).
    target = f"{alice_dir}/example.bin"
    body = {
        "sourcePath": target,
        "account": stack.account,
        "transferDirectives": {"transferMethod": "s3", "fileSize": "10"},
    }
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {token_for('alice')}"}) as http:
        response = await http.post(
            f"{stack.url}/filesystem/{stack.system}/transfer/upload", json=body
        )
        assert response.status_code == 201, response.text
        directives = response.json()["transferDirectives"]
        assert directives["transferMethod"] == "s3"
        assert directives["downloadUrl"] is None  # upstream's S3 answer: the other kind is null
        [part] = directives["partsUploadUrls"]
        async with httpx.AsyncClient() as s3:  # staging URLs carry their own credential
            put = await s3.put(part, content=b"0123456789")
            assert put.status_code == 200
            complete = await s3.post(
                directives["completeUploadUrl"], content=_complete_xml(put.headers["etag"])
            )
            assert complete.status_code == 200
        job = response.json()["transferJob"]["jobId"]
        for _ in range(120):
            jobs = await http.get(f"{stack.url}/compute/{stack.system}/jobs/{job}")
            if jobs.json()["jobs"][0]["status"]["state"] not in ("PENDING", "RUNNING"):
                break
            await asyncio.sleep(0.5)
    assert Path(target).read_bytes() == b"0123456789"


async def test_download_supports_range(stack: StackInfo, token_for, alice_dir: str) -> None:
    data = os.urandom(100_000)
    Path(alice_dir, "r.bin").write_bytes(data)
    os.chown(Path(alice_dir, "r.bin"), *_alice_ids())
    url = f"{stack.url}/filesystem/{stack.system}/ops/download"
    headers = {"Authorization": f"Bearer {token_for('alice')}"}
    async with httpx.AsyncClient(headers=headers) as http:
        whole = await http.get(url, params={"path": f"{alice_dir}/r.bin"})
        assert whole.status_code == 200
        assert whole.headers["content-length"] == str(len(data))
        assert whole.content == data
        part = await http.get(
            url, params={"path": f"{alice_dir}/r.bin"}, headers={"Range": "bytes=1000-1999"}
        )
        assert part.status_code == 206
        assert part.headers["content-range"] == f"bytes 1000-1999/{len(data)}"
        assert part.content == data[1000:2000]
        tail = await http.get(
            url, params={"path": f"{alice_dir}/r.bin"}, headers={"Range": "bytes=-10"}
        )
        assert tail.content == data[-10:]
        beyond = await http.get(
            url, params={"path": f"{alice_dir}/r.bin"}, headers={"Range": "bytes=200000-"}
        )
        assert beyond.status_code == 416


def _alice_ids() -> tuple[int, int]:
    import pwd

    entry = pwd.getpwnam("alice")
    return entry.pw_uid, entry.pw_gid


def _tree(root: Path, count: int) -> dict[str, bytes]:
    files = {}
    for i in range(count):
        relative = f"d{i % 10}/sub{i % 3}/file {i}.txt"
        content = f"file {i}\n".encode() * (i % 7)
        files[relative] = content
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    return files


@pytest.mark.slow
async def test_tree_of_1000_files_up_and_down_in_one_request_each(
    stack: StackInfo, token_for, alice_dir: str, tmp_path: Path
) -> None:
    local = tmp_path / "tree"
    files = _tree(local, 1000)
    (local / "run.sh").write_text("#!/bin/sh\n")
    (local / "run.sh").chmod(0o750)
    (local / "link").symlink_to("d1/sub1")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        tar.add(local, arcname=".")
    target = f"{alice_dir}/tree"
    base = f"{stack.url}/filesystem/{stack.system}/ops"
    headers = {"Authorization": f"Bearer {token_for('alice')}"}
    async with httpx.AsyncClient(headers=headers, timeout=120) as http:
        assert (await http.post(f"{base}/mkdir", json={"path": target})).status_code == 201
        up = await http.put(f"{base}/tree", params={"path": target}, content=buffer.getvalue())
        assert up.status_code == 204, up.text
        remote = Path(target)
        for relative, content in files.items():
            assert (remote / relative).read_bytes() == content
        assert (remote / "run.sh").stat().st_mode & 0o777 == 0o750
        assert os.readlink(remote / "link") == "d1/sub1"
        assert (remote / "run.sh").stat().st_uid == _alice_ids()[0]
        down = await http.get(f"{base}/tree", params={"path": target})
        assert down.status_code == 200
    with tarfile.open(fileobj=io.BytesIO(down.content)) as tar:
        members = {m.name.removeprefix("./"): m for m in tar.getmembers()}
        for relative, content in files.items():
            assert tar.extractfile(members[relative]).read() == content
        assert members["link"].issym()
        assert members["link"].linkname == "d1/sub1"
        assert members["run.sh"].mode & 0o777 == 0o750


async def test_tree_errors(stack: StackInfo, token_for, alice_dir: str) -> None:
    base = f"{stack.url}/filesystem/{stack.system}/ops"
    headers = {"Authorization": f"Bearer {token_for('alice')}"}
    async with httpx.AsyncClient(headers=headers) as http:
        missing = f"{alice_dir}/{uuid.uuid4().hex}"
        assert (await http.get(f"{base}/tree", params={"path": missing})).status_code == 404
        assert (
            await http.put(f"{base}/tree", params={"path": missing}, content=b"")
        ).status_code == 404
        bob = stack.users["bob"].home
        assert (await http.get(f"{base}/tree", params={"path": bob})).status_code == 403
        garbage = await http.put(
            f"{base}/tree", params={"path": alice_dir}, content=b"not a tar" * 100
        )
        assert garbage.status_code == 400, garbage.text
        assert (await http.get(f"{base}/tree", params={"path": "/etc"})).status_code == 400
        # A subdirectory tar cannot read: the stream is cut off, never silently incomplete.
        tree = Path(alice_dir, "partly-unreadable")
        (tree / "secret").mkdir(parents=True)
        (tree / "secret" / "f").write_text("x")
        (tree / "visible").write_text("y")
        for path in (tree, tree / "secret", tree / "secret" / "f", tree / "visible"):
            os.chown(path, *_alice_ids())
        (tree / "secret").chmod(0)
        try:
            with pytest.raises(httpx.HTTPError):
                await http.get(f"{base}/tree", params={"path": str(tree)})
        finally:
            (tree / "secret").chmod(0o700)


def _tar_of(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, content in files.items():
            member = tarfile.TarInfo(name)
            member.size = len(content)
            tar.addfile(member, io.BytesIO(content))
    return buffer.getvalue()


async def test_tree_upload_can_create_its_directory(
    stack: StackInfo, token_for, alice_dir: str
) -> None:
    base = f"{stack.url}/filesystem/{stack.system}/ops"
    headers = {"Authorization": f"Bearer {token_for('alice')}"}
    archive = _tar_of({"calcinfo.json": b"{}", "sub/job_tmpl.json": b"[]"})
    target = f"{alice_dir}/{uuid.uuid4().hex}/.aiida"
    Path(target).parent.mkdir()
    os.chown(Path(target).parent, *_alice_ids())
    async with httpx.AsyncClient(headers=headers) as http:
        created = await http.put(
            f"{base}/tree", params={"path": target, "create": "true"}, content=archive
        )
        assert created.status_code == 204, created.text
        assert Path(target, "calcinfo.json").read_bytes() == b"{}"
        assert Path(target, "sub", "job_tmpl.json").read_bytes() == b"[]"
        assert Path(target).stat().st_uid == _alice_ids()[0]
        # Something there already: refused as ops/mkdir refuses it, and left as it was.
        again = await http.put(
            f"{base}/tree", params={"path": target, "create": "true"}, content=_tar_of({"x": b""})
        )
        assert again.status_code == 400
        assert "File exists" in again.json()["message"]
        assert not Path(target, "x").exists()
        orphan = f"{alice_dir}/{uuid.uuid4().hex}/.aiida"
        missing_parent = await http.put(
            f"{base}/tree", params={"path": orphan, "create": "true"}, content=archive
        )
        assert missing_parent.status_code == 404
        assert not Path(orphan).parent.exists()


async def test_capabilities_are_advertised(stack: StackInfo, token_for) -> None:
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {token_for('alice')}"}) as http:
        systems = (await http.get(f"{stack.url}/status/systems")).json()["systems"]
    capabilities = systems[0]["server"]["capabilities"]
    assert {
        "filesystem.ops.cp",
        "filesystem.ops.mv",
        "filesystem.tree",
        "filesystem.tree.create",
    } <= set(capabilities)
    assert systems[0]["dataOperation"]["max_ops_file_size"] > 0
