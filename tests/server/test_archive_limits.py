"""Archive bombs against extract (ops and transfer job) and tree upload, on the real stack.

A server of our own with small limits (data_operation.max_extract_bytes / max_extract_files):
a gzip bomb and a tar of many empty files get 413, and the target directory is left exactly as
it was (no member, no unpacking directory); archives within the limits unpack as before.
"""

from __future__ import annotations

import io
import tarfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from firecrest_dev.info import StackInfo
from firecrest_dev.own_server import own_server

pytestmark = pytest.mark.stack

MiB = 1024 * 1024
MAX_BYTES = 8 * MiB
MAX_FILES = 200


def _tar(members: dict[str, bytes], mode: str = "w") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=mode) as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


GZIP_BOMB = _tar({"zeros": bytes(64 * MiB)}, "w:gz")  # 64 MiB in about 64 KiB
MANY_FILES = _tar({f"many/f{i:04d}": b"" for i in range(1000)})
BIG_PLAIN = _tar({"big": bytes(12 * MiB)})
SMALL = _tar({"ok/a": b"a", "ok/b": b"b"}, "w:gz")


@pytest.fixture(scope="module")
def server(stack: StackInfo, tmp_path_factory) -> Iterator[str]:
    limits = {"data_operation": {"max_extract_bytes": MAX_BYTES, "max_extract_files": MAX_FILES}}
    with own_server(
        stack, tmp_path_factory.mktemp("archive-limits"), system_overrides=limits
    ) as url:
        yield url


@pytest.fixture
def api(server: str, stack: StackInfo, token_for) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=f"{server}/filesystem/{stack.system}",
        headers={"Authorization": f"Bearer {token_for('alice')}"},
        timeout=120,
    ) as client:
        yield client


@pytest.fixture
def work(api: httpx.Client, stack: StackInfo) -> Iterator[str]:
    """A directory of alice's with the archives and a target holding one file."""
    directory = f"{stack.users['alice'].home}/bombs-{uuid.uuid4().hex[:10]}"
    response = api.post("/ops/mkdir", json={"path": f"{directory}/target", "parent": True})
    assert response.status_code == 201, response.text
    for name, data in (("before", b"kept"), ("bomb.tgz", GZIP_BOMB), ("many.tar", MANY_FILES)):
        where = f"{directory}/target" if name == "before" else directory
        response = api.post("/ops/upload", params={"path": where}, files={"file": (name, data)})
        assert response.status_code == 204, response.text
    yield directory
    assert api.delete("/ops/rm", params={"path": directory}).status_code == 204


def _tree(api: httpx.Client, path: str) -> list[tuple[str, int]]:
    response = api.get("/ops/ls", params={"path": path, "showHidden": True, "recursive": True})
    assert response.status_code == 200, response.text
    return sorted((e["name"], int(e["size"])) for e in response.json()["output"])


def _too_large(response: httpx.Response, key: str) -> None:
    assert response.status_code == 413, response.text
    assert f"data_operation.{key}" in response.json()["message"]


@pytest.mark.parametrize(
    ("archive", "compression", "key"),
    [("bomb.tgz", "gzip", "max_extract_bytes"), ("many.tar", "none", "max_extract_files")],
)
def test_extract_of_a_bomb_is_413_and_leaves_the_target_as_it_was(
    api: httpx.Client, work: str, archive: str, compression: str, key: str
) -> None:
    before = _tree(api, f"{work}/target")
    body = {"path": f"{work}/{archive}", "targetPath": f"{work}/target", "compression": compression}
    _too_large(api.post("/ops/extract", json=body), key)
    assert _tree(api, f"{work}/target") == before == [("before", 4)]


def test_extract_within_the_limits_still_works(api: httpx.Client, work: str) -> None:
    upload = api.post("/ops/upload", params={"path": work}, files={"file": ("s.tgz", SMALL)})
    assert upload.status_code == 204
    body = {"path": f"{work}/s.tgz", "targetPath": f"{work}/target", "compression": "gzip"}
    assert api.post("/ops/extract", json=body).status_code == 204
    assert _tree(api, f"{work}/target") == [("before", 4), ("ok", 4096), ("ok/a", 1), ("ok/b", 1)]


def test_an_extract_job_of_a_bomb_fails_and_leaves_the_target_as_it_was(
    api: httpx.Client, work: str, stack: StackInfo
) -> None:
    before = _tree(api, f"{work}/target")
    body = {"path": f"{work}/bomb.tgz", "targetPath": f"{work}/target", "compression": "gzip"}
    response = api.post("/transfer/extract", json=body)
    assert response.status_code == 201, response.text
    job = response.json()["transferJob"]
    compute = str(api.base_url).rstrip("/").replace("/filesystem/", "/compute/")
    state = None
    for _ in range(240):  # the job is tiny; this only guards against waiting for ever
        jobs = api.get(f"{compute}/jobs/{job['jobId']}").json().get("jobs") or []
        state = jobs[0]["status"]["state"] if jobs else None
        if state in ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT"):
            break
        time.sleep(0.5)
    assert state == "FAILED"
    error_log = api.get("/ops/view", params={"path": job["logs"]["errorLog"]}).json()["output"]
    assert "data_operation.max_extract_bytes" in error_log
    assert _tree(api, f"{work}/target") == before
    for log in job["logs"].values():
        assert api.delete("/ops/rm", params={"path": log}).status_code == 204


@pytest.mark.parametrize(
    ("body", "status", "phrase"),
    [
        (MANY_FILES, 413, "data_operation.max_extract_files"),
        (BIG_PLAIN, 413, "data_operation.max_extract_bytes"),
        (GZIP_BOMB, 400, "Archive is compressed"),  # never expanded: tar reads plain tar only
    ],
)
def test_tree_upload_of_a_bomb_is_refused_and_leaves_the_target_as_it_was(
    api: httpx.Client, work: str, body: bytes, status: int, phrase: str
) -> None:
    before = _tree(api, f"{work}/target")
    response = api.put(
        "/ops/tree",
        params={"path": f"{work}/target"},
        content=body,
        headers={"Content-Type": "application/x-tar"},
    )
    assert response.status_code == status, response.text
    assert phrase in response.json()["message"]
    assert _tree(api, f"{work}/target") == before


def test_tree_upload_within_the_limits_still_works(api: httpx.Client, work: str) -> None:
    body = _tar({"t/x": b"x" * 100})
    response = api.put("/ops/tree", params={"path": f"{work}/target"}, content=body)
    assert response.status_code == 204, response.text
    assert ("t/x", 100) in _tree(api, f"{work}/target")


def test_the_limits_need_no_configuration_to_be_on(stack: StackInfo) -> None:
    config = Path(stack.dir / "server" / "config.yaml").read_text()
    assert "max_extract" not in config  # the stack's server runs with the safe defaults
