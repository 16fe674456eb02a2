"""Every /filesystem/{system}/ops endpoint over plain HTTP against the real stack.

Exact status codes and JSON shapes as FirecREST v2 answers them, including the error paths
clients depend on: 404 with "No such file or directory", 403 for another user's private files
(bob's home is 0700), 400 for invalid requests, 413 beyond the direct-transfer limit.
"""

from __future__ import annotations

import hashlib
import io
import os
import socket
import tarfile
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from firecrest_dev.info import StackInfo

pytestmark = pytest.mark.stack

ENTRY_KEYS = {"name", "type", "linkTarget", "user", "group", "permissions", "lastModified", "size"}
ERROR_KEYS = {"errorType", "message", "causedBy", "data", "user"}
TEXT = "".join(f"line {i}\n" for i in range(1, 21))


def _client(stack: StackInfo, token: str) -> httpx.Client:
    return httpx.Client(
        base_url=f"{stack.url}/filesystem/{stack.system}/ops",
        headers={"Authorization": f"Bearer {token}"},
        timeout=60,
    )


@pytest.fixture
def api(stack: StackInfo, token_for) -> Iterator[httpx.Client]:
    with _client(stack, token_for("alice")) as client:
        yield client


@pytest.fixture
def bob_api(stack: StackInfo, token_for) -> Iterator[httpx.Client]:
    with _client(stack, token_for("bob")) as client:
        yield client


def _workdir(client: httpx.Client, home: str) -> Iterator[str]:
    path = f"{home}/ops-{uuid.uuid4().hex[:10]}"
    response = client.post("/mkdir", json={"path": path})
    assert response.status_code == 201, response.text
    yield path
    assert client.delete("/rm", params={"path": path}).status_code == 204


@pytest.fixture
def work(api: httpx.Client, stack: StackInfo) -> Iterator[str]:
    """A fresh directory in alice's home, removed afterwards."""
    yield from _workdir(api, stack.users["alice"].home)


@pytest.fixture
def bob_file(bob_api: httpx.Client, stack: StackInfo) -> Iterator[str]:
    """A file in bob's private home: alice may not touch it."""
    for directory in _workdir(bob_api, stack.users["bob"].home):
        _upload(bob_api, directory, "secret.txt", b"bob's\n")
        yield f"{directory}/secret.txt"


@pytest.fixture(scope="module")
def limit(stack: StackInfo, token_for) -> int:
    """The system's direct-transfer limit (data_operation.max_ops_file_size)."""
    response = httpx.get(
        f"{stack.url}/status/systems",
        headers={"Authorization": f"Bearer {token_for('alice')}"},
        timeout=30,
    )
    system = next(s for s in response.json()["systems"] if s["name"] == stack.system)
    return system["dataOperation"]["max_ops_file_size"]  # snake_case, as FirecREST v2 spells it


def _upload(client: httpx.Client, directory: str, name: str, data: bytes) -> str:
    response = client.post("/upload", params={"path": directory}, files={"file": (name, data)})
    assert response.status_code == 204, response.text
    assert response.content == b""
    return f"{directory}/{name}"


def _error(response: httpx.Response, status: int, *phrases: str) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == ERROR_KEYS
    assert body["user"] in ("alice", "bob")
    for phrase in phrases:
        assert phrase in body["message"]
    return body


def _names(client: httpx.Client, directory: str) -> list[str]:
    response = client.get("/ls", params={"path": directory, "showHidden": True})
    assert response.status_code == 200, response.text
    return sorted(e["name"] for e in response.json()["output"])


# ---------------------------------------------------------------------------------------- ls


def _ls(api: httpx.Client, path: str, **flags: bool) -> list[dict]:
    response = api.get("/ls", params={"path": path, **flags})
    assert response.status_code == 200, response.text
    entries = response.json()["output"]
    assert all(set(e) == ENTRY_KEYS for e in entries)
    return entries


def test_ls_links_recursion_and_flags(api: httpx.Client, work: str, bob_file: str) -> None:
    """ls -l with -A, -R, -L and -n, on directories, files and symlinks of each kind."""
    _upload(api, work, "f.txt", b"abc")
    assert api.post("/mkdir", json={"path": f"{work}/d/sub", "parent": True}).status_code == 201
    _upload(api, f"{work}/d", ".hidden", b"h")
    _upload(api, f"{work}/d/sub", "z", b"zz")
    links = {"to-file": f"{work}/f.txt", "to-dir": f"{work}/d", "dangling": f"{work}/none"}
    for link, target in links.items():
        response = api.post("/symlink", json={"path": target, "linkPath": f"{work}/{link}"})
        assert response.status_code == 201, response.text

    top = {e["name"]: e for e in _ls(api, work)}
    assert sorted(top) == ["d", "dangling", "f.txt", "to-dir", "to-file"]
    assert (top["d"]["type"], top["d"]["linkTarget"], top["d"]["user"]) == ("d", None, "alice")
    assert (top["f.txt"]["type"], top["f.txt"]["size"], top["f.txt"]["group"]) == (
        "-",
        "3",
        "alice",
    )
    for name, target in links.items():
        assert (top[name]["type"], top[name]["linkTarget"]) == ("l", target)
        assert top[name]["permissions"] == "rwxrwxrwx"
        assert top[name]["size"] == str(len(target))

    # -L: links show what they point to; a dangling link stays a link.
    followed = {e["name"]: e for e in _ls(api, work, dereference=True)}
    assert (followed["to-file"]["type"], followed["to-file"]["size"]) == ("-", "3")
    assert (followed["to-dir"]["type"], followed["to-dir"]["linkTarget"]) == ("d", None)
    assert followed["dangling"] == top["dangling"]

    # -R names entries relative to the listed directory, depth after breadth, links not entered.
    deep = [e["name"] for e in _ls(api, work, recursive=True, showHidden=True)]
    assert deep == [
        "d", "dangling", "f.txt", "to-dir", "to-file", "d/.hidden", "d/sub", "d/sub/z"
    ]  # fmt: skip
    assert [e["name"] for e in _ls(api, f"{work}/d")] == ["sub"]
    assert [e["name"] for e in _ls(api, f"{work}/d", showHidden=True)] == [".hidden", "sub"]

    # A path that is not a directory is one line named as given; a link to a directory too,
    # unless -L lists the directory it points to.
    for name in ["f.txt", "to-file", "to-dir", "dangling"]:
        (entry,) = _ls(api, f"{work}/{name}")
        assert entry == top[name] | {"name": f"{work}/{name}"}
    assert [e["name"] for e in _ls(api, f"{work}/to-dir", dereference=True)] == ["sub"]
    (file_followed,) = _ls(api, f"{work}/to-file", dereference=True)
    assert (file_followed["type"], file_followed["linkTarget"]) == ("-", None)

    numeric = _ls(api, work, numericUid=True)
    assert {e["user"] for e in numeric} == {e["group"] for e in numeric} != {"alice"}
    assert all(e["user"].isdigit() for e in numeric)

    _error(api.get("/ls", params={"path": f"{work}/dangling", "dereference": True}), 404)
    _error(api.get("/ls", params={"path": f"{work}/nope"}), 404, "No such file or directory")
    _error(api.get("/ls", params={"path": bob_file.rsplit("/", 2)[0]}), 403, "Permission denied")
    _error(api.get("/ls", params={"path": "/etc"}), 400, "not on a file system")


# --------------------------------------------------------------------------------- head/tail


def test_head(api: httpx.Client, work: str) -> None:
    path = _upload(api, work, "t.txt", TEXT.encode())
    response = api.get("/head", params={"path": path})
    assert response.status_code == 200
    assert response.json() == {
        "output": {
            "content": "".join(TEXT.splitlines(keepends=True)[:10]),
            "contentType": "lines",
            "startPosition": 0,
            "endPosition": 10,
        }
    }
    lines = api.get("/head", params={"path": path, "lines": 2}).json()["output"]
    assert (lines["content"], lines["contentType"], lines["endPosition"]) == (
        "line 1\nline 2\n",
        "lines",
        2,
    )
    some = api.get("/head", params={"path": path, "bytes": 8}).json()["output"]
    assert (some["content"], some["contentType"], some["endPosition"]) == (TEXT[:8], "bytes", 8)
    skip = api.get("/head", params={"path": path, "bytes": 8, "skipTrailing": True}).json()
    assert skip["output"]["content"] == TEXT[:-8]
    assert skip["output"]["endPosition"] == -8
    skip = api.get("/head", params={"path": path, "lines": 18, "skipTrailing": True}).json()
    assert skip["output"]["content"] == "line 1\nline 2\n"


def test_tail(api: httpx.Client, work: str) -> None:
    path = _upload(api, work, "t.txt", TEXT.encode())
    default = api.get("/tail", params={"path": path}).json()["output"]
    assert default["content"] == "".join(TEXT.splitlines(keepends=True)[-10:])
    lines = api.get("/tail", params={"path": path, "lines": 2}).json()
    assert lines == {
        "output": {
            "content": "line 19\nline 20\n",
            "contentType": "lines",
            "startPosition": -2,
            "endPosition": -1,
        }
    }
    some = api.get("/tail", params={"path": path, "bytes": 8}).json()["output"]
    assert (some["content"], some["contentType"], some["startPosition"]) == (
        TEXT[-8:],
        "bytes",
        -8,
    )
    # skipHeading: from line/byte number N on, like `tail -n +N`.
    skip = api.get("/tail", params={"path": path, "lines": 19, "skipHeading": True}).json()
    assert skip["output"]["content"] == "line 19\nline 20\n"
    assert skip["output"]["startPosition"] == 19
    skip = api.get("/tail", params={"path": path, "bytes": 3, "skipHeading": True}).json()
    assert skip["output"]["content"] == TEXT[2:]


@pytest.mark.parametrize("endpoint", ["/head", "/tail"])
def test_head_tail_errors(
    api: httpx.Client, work: str, bob_file: str, stack: StackInfo, endpoint: str
) -> None:
    path = _upload(api, work, "t.txt", TEXT.encode())
    _error(api.get(endpoint, params={"path": path, "bytes": 1, "lines": 1}), 400, "Only one")
    body = _error(api.get(endpoint, params={"path": path, "lines": -1}), 400)
    assert body["errorType"] == "validation"
    _error(api.get(endpoint, params={"path": path, "bytes": "x"}), 400)
    _error(api.get(endpoint, params={"path": f"{work}/nope"}), 404, "No such file or directory")
    _error(api.get(endpoint, params={"path": bob_file}), 403, "Permission denied")
    _error(api.get(endpoint, params={"path": "/etc/passwd"}), 400, "not on a file system")
    _error(api.get(endpoint, params={"path": "relative"}), 400, "absolute")
    _error(api.get(endpoint), 400)


# -------------------------------------------------------------------------------------- view


def test_view(api: httpx.Client, work: str, limit: int) -> None:
    path = _upload(api, work, "t.txt", TEXT.encode())
    assert api.get("/view", params={"path": path}).json() == {"output": TEXT}
    part = api.get("/view", params={"path": path, "offset": 7, "size": 6}).json()
    assert part == {"output": TEXT[7:13]}
    assert api.get("/view", params={"path": path, "offset": 10_000}).json() == {"output": ""}
    assert api.get("/view", params={"path": path, "size": limit}).json() == {"output": TEXT}
    binary = _upload(api, work, "b.bin", b"ok\xff\xfe")
    assert api.get("/view", params={"path": binary}).json() == {"output": "ok\ufffd\ufffd"}
    empty = _upload(api, work, "empty", b"")
    assert api.get("/view", params={"path": empty}).json() == {"output": ""}


def test_view_errors(api: httpx.Client, work: str, bob_file: str, limit: int) -> None:
    path = _upload(api, work, "t.txt", TEXT.encode())
    _error(api.get("/view", params={"path": path, "size": limit + 1}), 400, "`size`")
    _error(api.get("/view", params={"path": path, "size": 0}), 400, "`size`")
    _error(api.get("/view", params={"path": path, "offset": -1}), 400, "`offset`")
    _error(api.get("/view", params={"path": f"{work}/nope"}), 404, "No such file or directory")
    _error(api.get("/view", params={"path": work}), 400, "Is a directory")
    _error(api.get("/view", params={"path": bob_file}), 403, "Permission denied")


# ---------------------------------------------------------------------------- checksum, file


def test_checksum(api: httpx.Client, work: str, bob_file: str) -> None:
    data = os.urandom(100_000)
    path = _upload(api, work, "r.bin", data)
    assert api.get("/checksum", params={"path": path}).json() == {
        "output": {"algorithm": "SHA256", "checksum": hashlib.sha256(data).hexdigest()}
    }
    odd = _upload(api, work, "back\\slash", b"x")  # sha256sum escapes this name's output line
    checksum = api.get("/checksum", params={"path": odd}).json()["output"]["checksum"]
    assert checksum == hashlib.sha256(b"x").hexdigest()
    _error(api.get("/checksum", params={"path": f"{work}/no"}), 404, "No such file or directory")
    _error(api.get("/checksum", params={"path": work}), 400, "Is a directory")
    _error(api.get("/checksum", params={"path": bob_file}), 403, "Permission denied")


def test_file(api: httpx.Client, work: str, bob_file: str) -> None:
    path = _upload(api, work, "t.txt", TEXT.encode())
    assert api.get("/file", params={"path": path}).json() == {"output": "ASCII text"}
    assert api.get("/file", params={"path": work}).json() == {"output": "directory"}
    tgz = f"{work}/a.tgz"
    assert api.post("/compress", json={"path": path, "targetPath": tgz}).status_code == 204
    assert "gzip compressed data" in api.get("/file", params={"path": tgz}).json()["output"]
    _error(api.get("/file", params={"path": f"{work}/no"}), 404, "No such file or directory")
    _error(api.get("/file", params={"path": bob_file}), 403, "Permission denied")


# ---------------------------------------------------------------------------------------- rm


def test_rm(api: httpx.Client, work: str) -> None:
    path = _upload(api, work, "f", b"x")
    response = api.delete("/rm", params={"path": path})
    assert response.status_code == 204
    assert response.content == b""
    _error(api.get("/stat", params={"path": path}), 404, "No such file or directory")
    tree = f"{work}/tree/a/b"
    assert api.post("/mkdir", json={"path": tree, "parent": True}).status_code == 201
    _upload(api, tree, "f", b"x")
    assert api.delete("/rm", params={"path": f"{work}/tree"}).status_code == 204
    assert _names(api, work) == []


def test_rm_errors(api: httpx.Client, work: str, bob_file: str) -> None:
    _error(api.delete("/rm", params={"path": f"{work}/no"}), 404, "No such file or directory")
    _error(api.delete("/rm", params={"path": bob_file}), 403, "Permission denied")
    _error(api.delete("/rm", params={"path": "/home"}), 400, "root of a file system")
    _error(api.delete("/rm", params={"path": "/home/alice/../"}), 400, "root of a file system")
    _error(api.delete("/rm", params={"path": "/etc/hostname"}), 400, "not on a file system")


# ------------------------------------------------------------------------------------- mkdir


def test_mkdir(api: httpx.Client, work: str) -> None:
    response = api.post("/mkdir", json={"path": f"{work}/d"})
    assert response.status_code == 201
    entry = response.json()["output"]
    assert set(entry) == ENTRY_KEYS
    assert entry["name"] == f"{work}/d"
    assert (entry["type"], entry["user"], entry["group"]) == ("d", "alice", "alice")
    assert entry["permissions"] == "rwxr-xr-x"
    assert entry["linkTarget"] is None
    # pyfirecrest sends sourcePath; source_path and path are accepted too.
    assert api.post("/mkdir", json={"sourcePath": f"{work}/e"}).status_code == 201
    assert api.post("/mkdir", json={"source_path": f"{work}/f"}).status_code == 201
    deep = api.post("/mkdir", json={"sourcePath": f"{work}/g/h/i", "parent": True})
    assert deep.status_code == 201
    assert deep.json()["output"]["name"] == f"{work}/g/h/i"
    again = api.post("/mkdir", json={"path": f"{work}/g/h/i", "parent": True})
    assert again.status_code == 201
    assert _names(api, work) == ["d", "e", "f", "g"]


def test_mkdir_errors(api: httpx.Client, work: str, bob_file: str) -> None:
    _error(api.post("/mkdir", json={"path": work}), 400, "File exists")
    file = _upload(api, work, "file", b"x")
    _error(api.post("/mkdir", json={"path": file, "parent": True}), 400, "File exists")
    _error(api.post("/mkdir", json={"path": f"{file}/sub", "parent": True}), 400)
    _error(api.post("/mkdir", json={"path": f"{work}/a/b"}), 404, "No such file or directory")
    _error(api.post("/mkdir", json={"path": f"{bob_file}.d"}), 403, "Permission denied")
    _error(api.post("/mkdir", json={"path": "/etc/x"}), 400, "not on a file system")
    _error(api.post("/mkdir", json={}), 400)
    _error(api.post("/mkdir", json={"path": f"{work}/x", "parent": "maybe"}), 400)


# ----------------------------------------------------------------------------------- symlink


def test_symlink(api: httpx.Client, work: str) -> None:
    target = _upload(api, work, "t", b"x")
    response = api.post("/symlink", json={"sourcePath": target, "linkPath": f"{work}/l"})
    assert response.status_code == 201
    entry = response.json()["output"]
    assert set(entry) == ENTRY_KEYS
    assert (entry["name"], entry["type"], entry["linkTarget"]) == (f"{work}/l", "l", target)
    assert api.get("/view", params={"path": f"{work}/l"}).json() == {"output": "x"}
    dangling = api.post("/symlink", json={"path": f"{work}/none", "link_path": f"{work}/d"})
    assert dangling.status_code == 201
    assert dangling.json()["output"]["linkTarget"] == f"{work}/none"


def test_symlink_errors(api: httpx.Client, work: str, bob_file: str) -> None:
    target = _upload(api, work, "t", b"x")
    _error(api.post("/symlink", json={"path": target, "linkPath": target}), 400, "File exists")
    _error(
        api.post("/symlink", json={"path": target, "linkPath": f"{work}/no/l"}),
        404,
        "No such file or directory",
    )
    _error(
        api.post("/symlink", json={"path": target, "linkPath": f"{bob_file}.l"}),
        403,
        "Permission denied",
    )
    _error(api.post("/symlink", json={"path": "/etc/shadow", "linkPath": f"{work}/s"}), 400)
    _error(api.post("/symlink", json={"path": target, "linkPath": "/etc/l"}), 400, "linkPath")
    _error(api.post("/symlink", json={"path": target, "linkPath": "rel"}), 400, "absolute")
    _error(api.post("/symlink", json={"path": target}), 400)


# ------------------------------------------------------------------------------------- chmod


def test_chmod(api: httpx.Client, work: str) -> None:
    path = _upload(api, work, "f", b"x")
    response = api.put("/chmod", json={"path": path, "mode": "640"})
    assert response.status_code == 200
    entry = response.json()["output"]
    assert set(entry) == ENTRY_KEYS
    assert (entry["name"], entry["permissions"]) == (path, "rw-r-----")
    for mode, expected in [
        ("0755", "rwxr-xr-x"),
        ("u-x,go-rx", "rw-------"),
        ("a+r", "rw-r--r--"),
        ("-r", "-w-------"),  # umask-relative, as with chmod(1); mode after `--`
        ("4700", "rws------"),
        ("7", "------rwx"),
    ]:
        response = api.put("/chmod", json={"path": path, "mode": mode})
        assert response.status_code == 200, (mode, response.text)
        assert response.json()["output"]["permissions"] == expected, mode
    # chmod(1) keeps a directory's setgid bit for 3-4 digit modes; 5 digits clear it.
    sub = f"{work}/sub"
    api.post("/mkdir", json={"path": sub})
    assert api.put("/chmod", json={"path": sub, "mode": "g+s"}).status_code == 200
    kept = api.put("/chmod", json={"path": sub, "mode": "750"}).json()["output"]
    assert kept["permissions"] == "rwxr-s---"
    cleared = api.put("/chmod", json={"path": sub, "mode": "00750"}).json()["output"]
    assert cleared["permissions"] == "rwxr-x---"


def test_chmod_errors(api: httpx.Client, work: str, bob_file: str, stack: StackInfo) -> None:
    path = _upload(api, work, "f", b"x")
    for mode in ["rwx", "999", "u+x;id", "--reference=/etc/passwd", "", "u+x\n"]:
        _error(api.put("/chmod", json={"path": path, "mode": mode}), 400)
    _error(api.put("/chmod", json={"path": path}), 400)
    missing = f"{work}/no"
    _error(api.put("/chmod", json={"path": missing, "mode": "700"}), 404, "No such file")
    _error(api.put("/chmod", json={"path": missing, "mode": "u+x"}), 404, "No such file")
    _error(api.put("/chmod", json={"path": bob_file, "mode": "777"}), 403, "Permission denied")
    bob_home = stack.users["bob"].home
    _error(api.put("/chmod", json={"path": bob_home, "mode": "777"}), 403)
    _error(api.put("/chmod", json={"path": bob_home, "mode": "o+rx"}), 403)


# ------------------------------------------------------------------------------------- chown


def test_chown(api: httpx.Client, work: str) -> None:
    path = _upload(api, work, "f", b"x")
    response = api.put("/chown", json={"path": path, "owner": "alice", "group": "alice"})
    assert response.status_code == 200
    entry = response.json()["output"]
    assert set(entry) == ENTRY_KEYS
    assert (entry["name"], entry["user"], entry["group"]) == (path, "alice", "alice")
    assert api.put("/chown", json={"path": path, "group": "alice"}).status_code == 200
    assert api.put("/chown", json={"path": path, "owner": "alice"}).status_code == 200
    nothing = api.put("/chown", json={"path": path, "owner": None, "group": None})
    assert nothing.status_code == 200
    assert nothing.json()["output"]["user"] == "alice"


def test_chown_errors(api: httpx.Client, work: str, bob_file: str) -> None:
    path = _upload(api, work, "f", b"x")
    _error(
        api.put("/chown", json={"path": path, "owner": "bob", "group": "bob"}),
        403,
        "Operation not permitted",
    )
    _error(api.put("/chown", json={"path": path, "owner": "root"}), 403, "not permitted")
    for bad in ["-x", "a:b", "a b", "$(id)", "alice\n", "--reference=/etc"]:
        _error(api.put("/chown", json={"path": path, "owner": bad}), 400, "Invalid owner")
        _error(api.put("/chown", json={"path": path, "group": bad}), 400, "Invalid group")
    _error(api.put("/chown", json={"path": path, "owner": "nosuchuser9"}), 400, "invalid user")
    _error(
        api.put("/chown", json={"path": f"{work}/no", "owner": "alice"}),
        404,
        "No such file or directory",
    )
    _error(api.put("/chown", json={"path": bob_file, "owner": "alice"}), 403)


# ------------------------------------------------------------------------------------ upload


def test_upload(api: httpx.Client, work: str) -> None:
    data = os.urandom(300_000)
    path = _upload(api, work, "data.bin", data)
    assert api.get("/download", params={"path": path}).content == data
    # Replacing keeps the permissions of the file replaced; no temporary file is left behind.
    assert api.put("/chmod", json={"path": path, "mode": "750"}).status_code == 200
    _upload(api, work, "data.bin", b"new")
    assert api.get("/view", params={"path": path}).json() == {"output": "new"}
    listing = api.get("/ls", params={"path": path}).json()["output"]
    assert listing[0]["permissions"] == "rwxr-x---"
    assert _names(api, work) == ["data.bin"]
    # Names that are awkward for shells arrive exactly as sent.
    for name in ["-rf", 'quo"te', "new\nline", "ünï ☃", "$(touch canary)", " "]:
        _upload(api, work, name, name.encode())
        assert api.get("/view", params={"path": f"{work}/{name}"}).json() == {"output": name}
    assert "canary" not in _names(api, work)


def test_upload_size_limit(api: httpx.Client, work: str, limit: int) -> None:
    exactly = os.urandom(limit)
    path = _upload(api, work, "max.bin", exactly)
    stat = api.get("/stat", params={"path": path}).json()["output"]
    assert stat["size"] == limit
    _error(
        api.post("/upload", params={"path": work}, files={"file": ("big", exactly + b"x")}),
        413,
        "limit",
    )

    # A chunked body declares no length: the limit holds while it streams in.
    def chunked() -> Iterator[bytes]:
        yield b'--B\r\nContent-Disposition: form-data; name="file"; filename="big2"\r\n\r\n'
        for start in range(0, limit + 1, 65536):
            yield exactly[start : start + 65536]
        yield b"tail\r\n--B--\r\n"

    response = api.post(
        "/upload",
        params={"path": work},
        content=chunked(),
        headers={"Content-Type": "multipart/form-data; boundary=B"},
    )
    _error(response, 413, "limit")
    assert _names(api, work) == ["max.bin"]  # nothing partial left behind


def test_an_interrupted_upload_leaves_nothing_behind(
    api: httpx.Client, work: str, stack: StackInfo, token_for
) -> None:
    url = httpx.URL(stack.url)
    head = (
        b'--B\r\nContent-Disposition: form-data; name="file"; filename="cut"\r\n\r\n'
        + b"x" * 300_000
    )
    request = (
        f"POST /filesystem/{stack.system}/ops/upload?path={work} HTTP/1.1\r\n"
        f"Host: {url.host}:{url.port}\r\n"
        f"Authorization: Bearer {token_for('alice')}\r\n"
        "Content-Type: multipart/form-data; boundary=B\r\n"
        f"Content-Length: {len(head) + 1_000_000}\r\n\r\n"
    ).encode()
    with socket.create_connection((url.host, url.port), timeout=10) as sock:
        sock.sendall(request + head)
        time.sleep(0.5)  # let the server start writing the temporary file
    deadline = time.monotonic() + 10
    while _names(api, work) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _names(api, work) == []


def test_upload_errors(api: httpx.Client, work: str, bob_file: str, stack: StackInfo) -> None:
    for name in ["..", "."]:
        response = api.post("/upload", params={"path": work}, files={"file": (name, b"x")})
        _error(response, 400, "file name")
    response = api.post("/upload", params={"path": work}, files={"file": ("a/b", b"x")})
    _error(response, 400, "plain name")
    response = api.post("/upload", params={"path": work}, files={"other": ("f", b"x")})
    _error(response, 400, "`file`")
    _error(api.post("/upload", params={"path": work}, data={"file": "text only"}), 400)
    _error(api.post("/upload", params={"path": work}, json={"file": "x"}), 400)
    api.post("/mkdir", json={"path": f"{work}/d"})
    response = api.post("/upload", params={"path": work}, files={"file": ("d", b"x")})
    _error(response, 400, "Is a directory")
    response = api.post("/upload", params={"path": f"{work}/no"}, files={"file": ("f", b"x")})
    _error(response, 404, "No such file or directory")
    bob_home = stack.users["bob"].home
    response = api.post("/upload", params={"path": bob_home}, files={"file": ("f", b"x")})
    _error(response, 403, "Permission denied")
    response = api.post("/upload", params={"path": "/etc"}, files={"file": ("f", b"x")})
    _error(response, 400, "not on a file system")
    response = api.post("/upload", files={"file": ("f", b"x")})
    _error(response, 400)
    assert _names(api, work) == ["d"]


# ---------------------------------------------------------------------------------- download


def test_download(api: httpx.Client, work: str) -> None:
    data = os.urandom(1_000_000)
    path = _upload(api, work, "r.bin", data)
    response = api.get("/download", params={"path": path})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/octet-stream"
    assert response.headers["content-length"] == str(len(data))
    assert response.content == data
    empty = _upload(api, work, "empty", b"")
    response = api.get("/download", params={"path": empty})
    assert (response.status_code, response.content) == (200, b"")
    link = f"{work}/link"
    api.post("/symlink", json={"path": path, "linkPath": link})
    assert api.get("/download", params={"path": link}).content == data


@pytest.mark.parametrize("header", ["bytes=-5", "bytes=0-", "bytes=0-0"])
def test_a_range_of_an_empty_file_is_416(api: httpx.Client, work: str, header: str) -> None:
    # `bytes=-5` used to be answered with a malformed 206 (Content-Range: bytes 0--1/0).
    empty = _upload(api, work, "empty", b"")
    response = api.get("/download", params={"path": empty}, headers={"Range": header})
    _error(response, 416, "not satisfiable")
    assert response.headers["content-range"] == "bytes */0"
    nonempty = _upload(api, work, "ten", b"0123456789")
    response = api.get("/download", params={"path": nonempty}, headers={"Range": header})
    assert response.status_code == 206
    assert response.content == {"bytes=-5": b"56789", "bytes=0-": b"0123456789"}.get(header, b"0")


def test_download_errors(api: httpx.Client, work: str, bob_file: str, limit: int) -> None:
    _error(api.get("/download", params={"path": f"{work}/no"}), 404, "No such file or directory")
    _error(api.get("/download", params={"path": work}), 400, "Is a directory")
    _error(api.get("/download", params={"path": bob_file}), 403, "Permission denied")
    _error(api.get("/download", params={"path": "/etc/passwd"}), 400, "not on a file system")
    # A file just over the limit: an uncompressed tar of a file of exactly the limit.
    _upload(api, work, "max.bin", b"\0" * limit)
    archive = f"{work}/max.tar"
    body = {"path": f"{work}/max.bin", "targetPath": archive, "compression": "none"}
    assert api.post("/compress", json=body).status_code == 204
    _error(api.get("/download", params={"path": archive}), 413, "limit")


# ---------------------------------------------------------------------------------- archives


def _members(api: httpx.Client, archive: str) -> list[str]:
    data = api.get("/download", params={"path": archive}).content
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return sorted(tar.getnames())


@pytest.mark.parametrize("compression", ["none", "gzip", "bzip2", "xz"])
def test_compress_and_extract(api: httpx.Client, work: str, compression: str) -> None:
    src = f"{work}/src"
    api.post("/mkdir", json={"path": f"{src}/sub", "parent": True})
    _upload(api, f"{src}/sub", "a.txt", b"payload")
    archive = f"{work}/a.tar"
    body = {"sourcePath": src, "targetPath": archive, "compression": compression}
    response = api.post("/compress", json=body)
    assert (response.status_code, response.content) == (204, b"")
    assert _members(api, archive) == ["src", "src/sub", "src/sub/a.txt"]
    out = f"{work}/out"
    api.post("/mkdir", json={"path": out})
    body = {"source_path": archive, "target_path": out, "compression": compression}
    response = api.post("/extract", json=body)
    assert (response.status_code, response.content) == (204, b"")
    assert api.get("/view", params={"path": f"{out}/src/sub/a.txt"}).json() == {"output": "payload"}


def test_compress_defaults_to_gzip(api: httpx.Client, work: str) -> None:
    path = _upload(api, work, "f", b"x")
    response = api.post("/compress", json={"path": path, "targetPath": f"{work}/f.tgz"})
    assert response.status_code == 204
    assert "gzip" in api.get("/file", params={"path": f"{work}/f.tgz"}).json()["output"]
    out = f"{work}/out"
    api.post("/mkdir", json={"path": out})
    response = api.post("/extract", json={"path": f"{work}/f.tgz", "targetPath": out})
    assert response.status_code == 204
    assert _names(api, out) == ["f"]


def test_compress_match_pattern_and_dereference(api: httpx.Client, work: str) -> None:
    src = f"{work}/src"
    api.post("/mkdir", json={"path": f"{src}/sub", "parent": True})
    for name in ["a.txt", "b.dat", "sub/c.txt", "sub/d.log"]:
        directory, _, base = f"{src}/{name}".rpartition("/")
        _upload(api, directory, base, name.encode())
    api.post("/symlink", json={"path": f"{src}/a.txt", "linkPath": f"{src}/link.txt"})
    archive = f"{work}/m.tar"
    body = {
        "sourcePath": src,
        "targetPath": archive,
        "matchPattern": r".*\.txt",
        "compression": "none",
        "dereference": False,
    }
    assert api.post("/compress", json=body).status_code == 204
    assert _members(api, archive) == ["./src/a.txt", "./src/sub/c.txt"]
    body["dereference"] = True
    assert api.post("/compress", json=body).status_code == 204
    assert _members(api, archive) == ["./src/a.txt", "./src/link.txt", "./src/sub/c.txt"]
    body["matchPattern"] = "$(touch canary)"
    assert api.post("/compress", json=body).status_code == 204
    assert _members(api, archive) == []
    assert "canary" not in _names(api, work)


def test_compress_and_extract_errors(
    api: httpx.Client, work: str, bob_file: str, stack: StackInfo
) -> None:
    path = _upload(api, work, "f", b"x")
    response = api.post("/compress", json={"path": f"{work}/no", "targetPath": f"{work}/a.tgz"})
    _error(response, 404, "No such file or directory")
    response = api.post("/compress", json={"path": bob_file, "targetPath": f"{work}/a.tgz"})
    _error(response, 403, "Permission denied")
    response = api.post("/compress", json={"path": path, "targetPath": f"{bob_file}.tgz"})
    _error(response, 403, "Permission denied")
    response = api.post("/compress", json={"path": path, "targetPath": "/etc/a.tgz"})
    _error(response, 400, "targetPath")
    body = {"path": path, "targetPath": f"{work}/a.zip", "compression": "zip"}
    _error(api.post("/compress", json=body), 400)
    _error(api.post("/compress", json={"path": path}), 400)
    response = api.post("/extract", json={"path": f"{work}/no.tgz", "targetPath": work})
    _error(response, 404, "No such file or directory")
    tgz = f"{work}/f.tgz"
    assert api.post("/compress", json={"path": path, "targetPath": tgz}).status_code == 204
    response = api.post("/extract", json={"path": tgz, "targetPath": f"{work}/nodir"})
    _error(response, 404, "No such file or directory")
    bob_home = stack.users["bob"].home
    _error(api.post("/extract", json={"path": tgz, "targetPath": bob_home}), 403)
    text = _upload(api, work, "t.txt", TEXT.encode() * 100)
    for compression in ["none", "gzip", "bzip2", "xz"]:
        body = {"path": text, "targetPath": work, "compression": compression}
        _error(api.post("/extract", json=body), 400)  # not an archive
    _error(api.post("/extract", json={"path": tgz, "targetPath": "/etc"}), 400, "targetPath")


# ------------------------------------------------------------------------------- the basics


@pytest.mark.parametrize(
    ("method", "endpoint"),
    [
        ("GET", "/head"),
        ("GET", "/tail"),
        ("GET", "/view"),
        ("GET", "/checksum"),
        ("GET", "/file"),
        ("GET", "/download"),
        ("DELETE", "/rm"),
        ("POST", "/mkdir"),
        ("POST", "/symlink"),
        ("PUT", "/chmod"),
        ("PUT", "/chown"),
        ("POST", "/upload"),
        ("POST", "/compress"),
        ("POST", "/extract"),
    ],
)
def test_every_endpoint_needs_a_token_and_a_known_system(
    stack: StackInfo, token_for, method: str, endpoint: str
) -> None:
    url = f"{stack.url}/filesystem/{stack.system}/ops{endpoint}"
    response = httpx.request(method, url, params={"path": "/home/alice"}, timeout=30)
    assert response.status_code == 401
    assert "message" in response.json()
    other = f"{stack.url}/filesystem/nosuchsystem/ops{endpoint}"
    headers = {"Authorization": f"Bearer {token_for('alice')}"}
    response = httpx.request(method, other, params={"path": "/home/alice"}, headers=headers)
    assert response.status_code == 404
    assert "System not found" in response.json()["message"]
