"""FIFOs, sockets and device nodes in a user's directory: every operation that would read their
bytes is refused with 400 without opening them, and the user's SFTP channel keeps working.

Before: a download, view, head, tail or checksum of a FIFO blocked in open() until the command
timeout (SFTP: for ever), and with it every later SFTP request of that user, since OpenSSH's
sftp-server answers one request at a time; a checksum of /dev/zero read until the timeout.
A hang would show up here as a 408 or a client timeout, not as the 400 asserted.
"""

from __future__ import annotations

import os
import pwd
import socket
import stat
import uuid
from collections.abc import Iterator

import httpx
import pytest

from firecrest_dev.info import StackInfo

pytestmark = pytest.mark.stack

# Below the command timeout (30 s) and the SFTP deadline: a request that waited on a FIFO
# fails the test with a client timeout.
CLIENT_TIMEOUT = 20


@pytest.fixture
def api(stack: StackInfo, token_for) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=f"{stack.url}/filesystem/{stack.system}",
        headers={"Authorization": f"Bearer {token_for('alice')}"},
        timeout=CLIENT_TIMEOUT,
    ) as client:
        yield client


@pytest.fixture
def specials(api: httpx.Client, stack: StackInfo) -> Iterator[dict[str, str]]:
    """A directory of alice's with a FIFO, a socket, device nodes and links to devices."""
    directory = f"{stack.users['alice'].home}/special-{uuid.uuid4().hex[:10]}"
    assert api.post("/ops/mkdir", json={"path": directory}).status_code == 201
    alice = pwd.getpwnam("alice")
    paths = {"fifo": f"{directory}/fifo", "socket": f"{directory}/socket"}
    os.mkfifo(paths["fifo"])
    server = socket.socket(socket.AF_UNIX)
    server.bind(paths["socket"])
    server.close()  # the socket file stays
    try:  # real device nodes where this machine allows mknod; links to devices always
        os.mknod(f"{directory}/zero", 0o666 | stat.S_IFCHR, os.makedev(1, 5))
        paths["char device"] = f"{directory}/zero"
        os.mknod(f"{directory}/loop", 0o660 | stat.S_IFBLK, os.makedev(7, 0))
        paths["block device"] = f"{directory}/loop"
    except PermissionError:
        pass
    for device in ("zero", "urandom"):
        os.symlink(f"/dev/{device}", f"{directory}/link-to-{device}")
        paths[f"link to /dev/{device}"] = f"{directory}/link-to-{device}"
    for path in paths.values():
        os.chown(path, alice.pw_uid, alice.pw_gid, follow_symlinks=False)
    with open(f"{directory}/regular", "wb") as regular:
        regular.write(b"regular content\n")
    os.chown(f"{directory}/regular", alice.pw_uid, alice.pw_gid)
    paths["regular"] = f"{directory}/regular"
    paths["directory"] = directory
    yield paths
    assert api.delete("/ops/rm", params={"path": directory}).status_code == 204


SPECIAL = ["fifo", "socket", "char device", "block device", "link to /dev/zero"]
SPECIAL += ["link to /dev/urandom"]

READS = [
    ("GET", "/ops/download", {}),
    ("GET", "/ops/view", {}),
    ("GET", "/ops/head", {}),
    ("GET", "/ops/head", {"bytes": 10}),
    ("GET", "/ops/tail", {}),
    ("GET", "/ops/tail", {"lines": 3, "skipHeading": True}),
    ("GET", "/ops/checksum", {}),
]


def _refused(response: httpx.Response, path: str) -> None:
    assert response.status_code == 400, response.text
    body = response.json()
    assert set(body) == {"errorType", "message", "causedBy", "data", "user"}
    assert body["message"].startswith(f"{path}: Not a regular file (")


@pytest.mark.parametrize("kind", SPECIAL)
def test_every_content_read_of_a_special_file_is_400(
    api: httpx.Client, specials: dict[str, str], kind: str
) -> None:
    if kind not in specials:
        pytest.skip("mknod is not permitted here; the links to devices stand in")
    path = specials[kind]
    for method, endpoint, params in READS:
        _refused(api.request(method, endpoint, params={"path": path, **params}), path)
    # extract reads the archive's bytes; the staged download's job would read them too
    body = {"path": path, "targetPath": specials["directory"], "compression": "none"}
    _refused(api.post("/ops/extract", json=body), path)
    staged = api.post(
        "/transfer/download", json={"path": path, "transferDirectives": {"transferMethod": "s3"}}
    )
    _refused(staged, path)
    # The user's SFTP channel is not stuck behind any of them.
    regular = api.get("/ops/download", params={"path": specials["regular"]})
    assert (regular.status_code, regular.content) == (200, b"regular content\n")
    view = api.get("/ops/view", params={"path": specials["regular"]})
    assert view.json()["output"] == "regular content\n"


def test_file_type_names_special_files_without_reading_them(
    api: httpx.Client, specials: dict[str, str]
) -> None:
    # `file` reports a special file's type from its mode; it opens none of them.
    answers = {
        kind: api.get("/ops/file", params={"path": path})
        for kind, path in specials.items()
        if kind in SPECIAL
    }
    assert {k: r.status_code for k, r in answers.items()} == dict.fromkeys(answers, 200)
    assert "fifo" in answers["fifo"].json()["output"]
    assert "socket" in answers["socket"].json()["output"]


def test_a_tree_download_archives_special_files_without_reading_them(
    api: httpx.Client, specials: dict[str, str]
) -> None:
    import io
    import tarfile

    response = api.get("/ops/tree", params={"path": specials["directory"]})
    assert response.status_code == 200, response.text
    with tarfile.open(fileobj=io.BytesIO(response.content)) as archive:
        members = {m.name.removeprefix("./"): m for m in archive.getmembers()}
    assert members["fifo"].isfifo()
    assert members["link-to-zero"].issym()
    assert members["regular"].size == len(b"regular content\n")
    if "char device" in specials:
        assert members["zero"].ischr()
        assert members["zero"].size == 0
    # Following links, tar records the devices they point to, and still reads none of them.
    followed = api.get("/ops/tree", params={"path": specials["directory"], "dereference": True})
    assert followed.status_code == 200, followed.text
    with tarfile.open(fileobj=io.BytesIO(followed.content)) as archive:
        members = {m.name.removeprefix("./"): m for m in archive.getmembers()}
    assert members["link-to-zero"].ischr()
    assert members["link-to-urandom"].ischr()
