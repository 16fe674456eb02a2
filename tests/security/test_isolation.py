"""One user cannot reach another user's data through any endpoint.

bob's home is 0700. alice holds a valid token of her own and tries every way the API offers to
read, copy, move, change or stage bob's files, and to see, cancel or attach to bob's jobs. None
may succeed, and none may leave a copy of bob's data anywhere alice can read.

Why this holds is worth stating, because the tests below rely on it. The server checks paths
*lexically* (``filesystem/paths.py``): absolute, normalised, on a configured file system — so
``..`` cannot climb out of them (400). It does not resolve symbolic links: a link in alice's
home may point anywhere, and listing through it is allowed. The guard against reading or
writing what alice may not is that every operation runs *as alice*, over an SSH session whose
certificate names only her principal, so the kernel applies her Unix permissions exactly as it
would to her own shell. Resolving links in the server instead would be racy (the link can change
between the check and the use, cf. Open OnDemand CVE-2025-62724) and would forbid nothing alice
cannot already do on a login node.
"""

from __future__ import annotations

import base64
import gzip
import io
import json
import tarfile
import time
import uuid

import httpx
import jwt
import pytest

from firecrest_dev.info import StackInfo

from .conftest import (
    b64url,
    jobs_url,
    ops,
    transfer,
    unverified_claims,
    wait_for_jobs,
)

pytestmark = pytest.mark.stack

DENIED = {403}


def _tar(members: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buffer.getvalue()


def _file(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    return tarfile.TarInfo(name), data


def _symlink(name: str, target: str) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = tarfile.SYMTYPE
    info.linkname = target
    return info, None


def _names(api: httpx.Client, stack: StackInfo, path: str) -> set[str]:
    listing = api.get(f"{ops(stack)}/ls", params={"path": path, "showHidden": True})
    assert listing.status_code == 200, listing.text
    return {entry["name"] for entry in listing.json()["output"]}


# ------------------------------------------------------------------------- /filesystem/ops


def test_alice_cannot_read_bobs_files(stack: StackInfo, http_as, bob_secret) -> None:
    api = http_as("alice")
    directory, secret, content = bob_secret
    o = ops(stack)
    attempts = {
        "ls dir": api.get(f"{o}/ls", params={"path": directory}),
        "ls file": api.get(f"{o}/ls", params={"path": secret}),
        "ls home": api.get(f"{o}/ls", params={"path": stack.users["bob"].home}),
        "ls recursive": api.get(
            f"{o}/ls", params={"path": stack.users["bob"].home, "recursive": True}
        ),
        "stat": api.get(f"{o}/stat", params={"path": secret}),
        "head": api.get(f"{o}/head", params={"path": secret}),
        "tail": api.get(f"{o}/tail", params={"path": secret, "bytes": 5}),
        "view": api.get(f"{o}/view", params={"path": secret}),
        "checksum": api.get(f"{o}/checksum", params={"path": secret}),
        "file": api.get(f"{o}/file", params={"path": secret}),
        "download": api.get(f"{o}/download", params={"path": secret}),
        "download range": api.get(
            f"{o}/download", params={"path": secret}, headers={"Range": "bytes=0-3"}
        ),
        "tree": api.get(f"{o}/tree", params={"path": directory}),
        "tree home": api.get(f"{o}/tree", params={"path": stack.users["bob"].home}),
    }
    for what, response in attempts.items():
        assert response.status_code in DENIED, (what, response.status_code, response.text)
        assert content not in response.content, what


def test_alice_cannot_change_bobs_files(
    stack: StackInfo, http_as, bob_secret, alice_work: str
) -> None:
    alice, bob = http_as("alice"), http_as("bob")
    directory, secret, content = bob_secret
    o = ops(stack)
    archive = _tar([_file("planted.txt", b"alice was here")])
    alice.put(f"{o}/tree", params={"path": alice_work}, content=archive)  # for extract below
    alice.post(
        f"{o}/compress",
        json={"path": f"{alice_work}/planted.txt", "targetPath": f"{alice_work}/a.tgz"},
    )
    attempts = {
        "upload into": alice.post(
            f"{o}/upload", params={"path": directory}, files={"file": ("x.txt", b"x")}
        ),
        "upload over": alice.post(
            f"{o}/upload", params={"path": directory}, files={"file": ("s.txt", b"x")}
        ),
        "mkdir": alice.post(f"{o}/mkdir", json={"path": f"{directory}/new"}),
        "mkdir -p": alice.post(f"{o}/mkdir", json={"path": f"{directory}/a/b", "parent": True}),
        "rm file": alice.delete(f"{o}/rm", params={"path": secret}),
        "rm dir": alice.delete(f"{o}/rm", params={"path": directory}),
        "chmod octal": alice.put(f"{o}/chmod", json={"path": secret, "mode": "777"}),
        "chmod symbolic": alice.put(f"{o}/chmod", json={"path": secret, "mode": "o+r"}),
        "chown": alice.put(f"{o}/chown", json={"path": secret, "owner": "alice"}),
        "symlink in": alice.post(
            f"{o}/symlink", json={"path": f"{alice_work}", "linkPath": f"{directory}/l"}
        ),
        "compress into": alice.post(
            f"{o}/compress",
            json={"path": f"{alice_work}/planted.txt", "targetPath": f"{directory}/x.tgz"},
        ),
        "extract into": alice.post(
            f"{o}/extract", json={"path": f"{alice_work}/a.tgz", "targetPath": directory}
        ),
        "cp into": alice.post(
            f"{o}/cp",
            json={"sourcePath": f"{alice_work}/planted.txt", "targetPath": f"{directory}/c"},
        ),
        "mv onto": alice.post(
            f"{o}/mv", json={"sourcePath": f"{alice_work}/planted.txt", "targetPath": secret}
        ),
        "tree into": alice.put(f"{o}/tree", params={"path": directory}, content=archive),
    }
    for what, response in attempts.items():
        assert response.status_code in DENIED, (what, response.status_code, response.text)
    # bob's directory is exactly as it was, and his file untouched
    assert _names(bob, stack, directory) == {"s.txt"}
    assert bob.get(f"{o}/download", params={"path": secret}).content == content
    stat = bob.get(f"{o}/stat", params={"path": secret}).json()["output"]
    assert stat["mode"] & 0o777 == 0o644


def test_alice_cannot_copy_or_move_bobs_files_to_herself(
    stack: StackInfo, http_as, bob_secret, alice_work: str
) -> None:
    alice, bob = http_as("alice"), http_as("bob")
    directory, secret, content = bob_secret
    o = ops(stack)
    attempts = {
        "cp file": alice.post(
            f"{o}/cp", json={"sourcePath": secret, "targetPath": f"{alice_work}/stolen"}
        ),
        "cp dir": alice.post(
            f"{o}/cp", json={"sourcePath": directory, "targetPath": f"{alice_work}/stolen-dir"}
        ),
        "cp dereference": alice.post(
            f"{o}/cp",
            json={"sourcePath": secret, "targetPath": f"{alice_work}/s2", "dereference": True},
        ),
        "mv file": alice.post(
            f"{o}/mv", json={"sourcePath": secret, "targetPath": f"{alice_work}/moved"}
        ),
        "compress": alice.post(
            f"{o}/compress", json={"path": directory, "targetPath": f"{alice_work}/bob.tgz"}
        ),
        "compress pattern": alice.post(
            f"{o}/compress",
            json={"path": directory, "targetPath": f"{alice_work}/bob2.tgz", "matchPattern": ".*"},
        ),
        "extract from": alice.post(
            f"{o}/extract", json={"path": secret, "targetPath": alice_work, "compression": "none"}
        ),
    }
    for what, response in attempts.items():
        assert response.status_code in DENIED, (what, response.status_code, response.text)
    # Whatever a failed tar left behind holds nothing of bob's (tar creates its output file
    # before it fails to read bob's directory: an empty one).
    for name in _names(alice, stack, alice_work):
        assert name not in {"stolen", "stolen-dir", "s2", "moved"}
        got = alice.get(f"{o}/download", params={"path": f"{alice_work}/{name}"})
        if got.status_code == 200:
            assert content not in got.content, name
            if name.endswith(".tgz"):
                assert content not in gzip.decompress(got.content), name
    assert bob.get(f"{o}/download", params={"path": secret}).content == content


# --------------------------------------------------------------------------- transfer jobs


@pytest.mark.slow
async def test_transfer_jobs_cannot_reach_bobs_files(
    stack: StackInfo, http_as, bob_secret, alice_work: str, alice_async
) -> None:
    alice, bob = http_as("alice"), http_as("bob")
    directory, secret, content = bob_secret
    t = transfer(stack)
    started = {
        "cp": alice.post(
            f"{t}/cp", json={"sourcePath": secret, "targetPath": f"{alice_work}/stolen"}
        ),
        "cp dir": alice.post(
            f"{t}/cp", json={"sourcePath": directory, "targetPath": f"{alice_work}/stolen-dir"}
        ),
        "mv": alice.post(f"{t}/mv", json={"sourcePath": secret, "targetPath": f"{alice_work}/mv"}),
        "rm": alice.delete(f"{t}/rm", params={"path": secret}),
        "compress": alice.post(
            f"{t}/compress", json={"path": directory, "targetPath": f"{alice_work}/bob.tgz"}
        ),
        "extract into": alice.post(
            f"{t}/extract", json={"path": f"{alice_work}/none.tgz", "targetPath": directory}
        ),
    }
    job_ids, logs = [], []
    for what, response in started.items():
        # Refused at once, or run as a job that fails: both are fine, success is not.
        assert response.status_code in (200, 201, 403), (what, response.text)
        if response.status_code in (200, 201):
            job = response.json()["transferJob"]
            job_ids.append(job["jobId"])
            logs += [job["logs"]["outputLog"], job["logs"]["errorLog"]]
    # Staging straight from or into bob's home is refused before any job exists.
    download = alice.post(
        f"{t}/download", json={"path": secret, "transferDirectives": {"transferMethod": "s3"}}
    )
    assert download.status_code == 403, download.text
    upload = alice.post(
        f"{t}/upload",
        json={
            "path": f"{directory}/planted",
            "transferDirectives": {"transferMethod": "s3", "fileSize": 10},
        },
    )
    assert upload.status_code == 403, upload.text

    states = await wait_for_jobs(alice_async, stack, job_ids)
    assert set(states.values()) <= {"FAILED"}, states
    for log in logs:
        shown = alice.get(f"{ops(stack)}/view", params={"path": log})
        if shown.status_code == 200:
            assert content.decode() not in shown.json()["output"]
            assert "successfully" not in shown.json()["output"]
        alice.delete(f"{ops(stack)}/rm", params={"path": log})
    names = _names(alice, stack, alice_work)
    assert not names & {"stolen", "stolen-dir", "mv"}, names
    if "bob.tgz" in names:  # tar creates its output before failing to read bob's directory
        got = alice.get(f"{ops(stack)}/download", params={"path": f"{alice_work}/bob.tgz"})
        assert content not in got.content
    assert _names(bob, stack, directory) == {"s.txt"}
    assert bob.get(f"{ops(stack)}/download", params={"path": secret}).content == content


# ---------------------------------------------------------------------------- S3 staging


def _tampered(token: str, **changes) -> str:
    header, _payload, signature = token.split(".")
    claims = unverified_claims(token) | changes
    return f"{header}.{b64url(json.dumps(claims))}.{signature}"


def test_staging_urls_cannot_be_turned_against_bobs_files(
    stack: StackInfo, http_as, bob_secret, alice_work: str
) -> None:
    alice = http_as("alice")
    _, secret, content = bob_secret
    mine = f"{alice_work}/mine.txt"
    alice.post(
        f"{ops(stack)}/upload", params={"path": alice_work}, files={"file": ("mine.txt", b"mine")}
    )
    started = alice.post(
        f"{transfer(stack)}/download",
        json={"path": mine, "transferDirectives": {"transferMethod": "s3"}},
    )
    assert started.status_code == 201, started.text
    job = started.json()["transferJob"]
    url = started.json()["transferDirectives"]["downloadUrl"]
    base, token = url.split("/staging/")[0], url.split("/staging/")[1].split("/")[0]
    claims = unverified_claims(token)
    assert claims["u"] == "alice"
    assert claims["p"] == mine

    with httpx.Client(timeout=30) as bare:  # staging URLs are presented without a bearer token
        assert bare.get(url).content == b"mine"  # the genuine URL works
        forged = {
            "path swapped": _tampered(token, p=secret),
            "user and path swapped": _tampered(token, u="bob", p=secret),
            "user swapped": _tampered(token, u="bob"),
            "kind swapped": _tampered(token, k="upload"),
            "expiry extended": _tampered(token, exp=int(time.time()) + 10**6),
            "alg none": ".".join(
                [
                    b64url(json.dumps({"alg": "none", "typ": "JWT"})),
                    b64url(json.dumps(claims | {"p": secret})),
                    "",
                ]
            ),
            "foreign key": jwt.encode(claims | {"p": secret}, "x" * 32, algorithm="HS256"),
            "empty signature": token.rsplit(".", 1)[0] + ".",
            "signature of another token": _tampered(token, p=secret).rsplit(".", 1)[0]
            + "."
            + base64.urlsafe_b64encode(b"\x00" * 32).rstrip(b"=").decode(),
        }
        for what, bad in forged.items():
            response = bare.get(f"{base}/staging/{bad}/object")
            assert response.status_code == 403, (what, response.status_code, response.text)
            assert content not in response.content
        # A download grant is not an upload grant: no writing with it.
        assert bare.put(f"{base}/staging/{token}/parts/1", content=b"x").status_code == 403
        assert bare.post(f"{base}/staging/{token}/complete", content=b"<x/>").status_code == 403

    for log in job["logs"].values():
        alice.delete(f"{ops(stack)}/rm", params={"path": log})


def test_a_genuine_staging_url_still_reads_as_its_user(
    stack: StackInfo, http_as, bob_secret, alice_work: str
) -> None:
    """If the staged path is swapped for a link to bob's file after the URL was issued, the
    read still runs as alice: Unix permissions refuse it."""
    alice = http_as("alice")
    _, secret, content = bob_secret
    mine = f"{alice_work}/swap.txt"
    alice.post(
        f"{ops(stack)}/upload", params={"path": alice_work}, files={"file": ("swap.txt", b"x")}
    )
    started = alice.post(
        f"{transfer(stack)}/download",
        json={"path": mine, "transferDirectives": {"transferMethod": "s3"}},
    )
    assert started.status_code == 201, started.text
    url = started.json()["transferDirectives"]["downloadUrl"]
    assert alice.delete(f"{ops(stack)}/rm", params={"path": mine}).status_code == 204
    linked = alice.post(f"{ops(stack)}/symlink", json={"path": secret, "linkPath": mine})
    assert linked.status_code == 201, linked.text
    response = httpx.get(url, timeout=30)
    assert response.status_code == 403, response.text
    assert content not in response.content
    for log in started.json()["transferJob"]["logs"].values():
        alice.delete(f"{ops(stack)}/rm", params={"path": log})


# ---------------------------------------------------------------------------------- compute


@pytest.mark.slow
def test_alice_cannot_see_cancel_or_attach_to_bobs_jobs(
    stack: StackInfo, http_as, alice_work: str
) -> None:
    alice, bob = http_as("alice"), http_as("bob")
    jobs = jobs_url(stack)
    bob_home = stack.users["bob"].home
    secret_script = f"#!/bin/bash\n# bob's secret {uuid.uuid4().hex}\nsleep 120\n"
    submitted = bob.post(
        jobs,
        json={
            "job": {
                "name": "bobs-job",
                "workingDirectory": bob_home,
                "script": secret_script,
                "standardOutput": f"{bob_home}/bobs-job-%j.out",
            }
        },
    )
    assert submitted.status_code == 201, submitted.text
    job_id = submitted.json()["jobId"]
    try:
        for _ in range(60):
            state = bob.get(f"{jobs}/{job_id}").json()["jobs"][0]["status"]["state"]
            if state == "RUNNING":
                break
            time.sleep(1)
        marker = f"{alice_work}/attached"
        attempts = {
            "get": alice.get(f"{jobs}/{job_id}"),
            "metadata": alice.get(f"{jobs}/{job_id}/metadata"),
            "cancel": alice.delete(f"{jobs}/{job_id}"),
            "attach": alice.put(f"{jobs}/{job_id}/attach", json={"command": f"touch '{marker}'"}),
        }
        for what, response in attempts.items():
            assert response.status_code in (403, 404), (what, response.status_code, response.text)
            assert "secret" not in response.text, what
        assert "Job not found" in attempts["get"].json()["message"]
        assert "Job not found" in attempts["metadata"].json()["message"]
        # Her own listings do not show it either; nor do ids that make Slurm list every job.
        listed = alice.get(jobs).json()["jobs"]
        assert job_id not in {j["jobId"] for j in listed}
        for everyone in ("0", "4294967296"):
            response = alice.get(f"{jobs}/{everyone}/metadata")
            assert response.status_code == 404, (everyone, response.text)
            assert "secret" not in response.text
        # bob's job is still there and running, and alice's attach ran nothing.
        mine = bob.get(f"{jobs}/{job_id}").json()["jobs"][0]
        assert mine["status"]["state"] == "RUNNING"
        assert alice.get(f"{ops(stack)}/stat", params={"path": marker}).status_code == 404
        assert bob.get(f"{jobs}/{job_id}/metadata").json()["jobs"][0]["script"] == secret_script
    finally:
        bob.delete(f"{jobs}/{job_id}")
        time.sleep(1)
        bob.delete(f"{ops(stack)}/rm", params={"path": f"{bob_home}/bobs-job-{job_id}.out"})


# ---------------------------------------------------------------------- paths and symlinks


@pytest.mark.parametrize(
    "path",
    [
        "/home/alice/../../etc/passwd",
        "/home/../etc/passwd",
        "/tmp/../etc/shadow",
        "/home/alice/./../../../etc",
        "/home/alice/" + "../" * 20 + "etc/passwd",
        "//etc/passwd",
        "///etc/passwd",
        "/etc/passwd",
        "/",
        "/homeother/x",
        "etc/passwd",
        "../home/alice",
        "~bob/x",
        "",
    ],
)
def test_paths_cannot_escape_the_configured_file_systems(
    stack: StackInfo, http_as, path: str
) -> None:
    api = http_as("alice")
    o, t = ops(stack), transfer(stack)
    responses = [
        api.get(f"{o}/{ep}", params={"path": path})
        for ep in ("ls", "stat", "view", "head", "checksum", "file", "download", "tree")
    ]
    responses += [
        api.post(f"{o}/mkdir", json={"path": path}),
        api.post(f"{o}/upload", params={"path": path}, files={"file": ("x", b"x")}),
        api.put(f"{o}/tree", params={"path": path}, content=b""),
        api.post(f"{o}/symlink", json={"path": path, "linkPath": "/home/alice/l"}),
        api.post(f"{o}/cp", json={"sourcePath": path, "targetPath": "/home/alice/c"}),
        api.post(f"{o}/cp", json={"sourcePath": "/home/alice/.bashrc", "targetPath": path}),
        api.post(f"{t}/cp", json={"sourcePath": path, "targetPath": "/home/alice/c"}),
        api.post(
            f"{t}/download", json={"path": path, "transferDirectives": {"transferMethod": "s3"}}
        ),
        api.post(
            f"/compute/{stack.system}/jobs",
            json={"job": {"workingDirectory": path, "script": "#!/bin/bash\ntrue\n"}},
        ),
    ]
    for response in responses:
        assert response.status_code == 400, (response.request.url, response.text)
        assert "root:" not in response.text


def test_dotdot_inside_the_file_systems_is_normalised_and_permissions_decide(
    stack: StackInfo, http_as, bob_secret
) -> None:
    """``/home/alice/../bob/...`` is checked and used as ``/home/bob/...``: on a configured
    file system, so allowed by the path check — and refused by bob's permissions."""
    api = http_as("alice")
    _, secret, content = bob_secret
    sneaky = secret.replace("/home/bob/", "/home/alice/../bob/")
    response = api.get(f"{ops(stack)}/view", params={"path": sneaky})
    assert response.status_code == 403, response.text
    assert secret in response.json()["message"]  # the normalised path is what was used
    assert content.decode() not in response.text


def test_a_symlink_to_etc_lists_but_cannot_be_written_through(
    stack: StackInfo, http_as, alice_work: str, bob_secret
) -> None:
    """A user can make such links on her own shell; the API lets her create them through an
    uploaded tree too (it refuses to make one directly, whose target is outside its file
    systems). Reading through them gives what alice could read anyway; writing through them
    meets the same Unix permissions as her shell would."""
    api = http_as("alice")
    o = ops(stack)
    _, secret, content = bob_secret
    archive = _tar([_symlink("etc", "/etc"), _symlink("only/bobs", secret)])
    assert api.put(f"{o}/tree", params={"path": alice_work}, content=archive).status_code == 204
    # The direct way is refused: the link's target is not on a configured file system.
    direct = api.post(f"{o}/symlink", json={"path": "/etc", "linkPath": f"{alice_work}/etc2"})
    assert direct.status_code == 400

    link = f"{alice_work}/etc"
    listed = api.get(f"{o}/ls", params={"path": link, "dereference": True})
    assert listed.status_code == 200
    assert "passwd" in {e["name"] for e in listed.json()["output"]}
    assert api.get(f"{o}/view", params={"path": f"{link}/hostname"}).status_code == 200
    assert api.get(f"{o}/view", params={"path": f"{link}/shadow"}).status_code == 403
    writes = {
        "upload": api.post(f"{o}/upload", params={"path": link}, files={"file": ("x", b"x")}),
        "mkdir": api.post(f"{o}/mkdir", json={"path": f"{link}/fc-sec-test"}),
        "rm": api.delete(f"{o}/rm", params={"path": f"{link}/hostname"}),
        "chmod": api.put(f"{o}/chmod", json={"path": f"{link}/passwd", "mode": "666"}),
        "cp": api.post(
            f"{o}/cp", json={"sourcePath": f"{alice_work}/etc", "targetPath": f"{link}/x"}
        ),
        "tree": api.put(f"{o}/tree", params={"path": link}, content=_tar([_file("x", b"x")])),
    }
    for what, response in writes.items():
        assert response.status_code == 403, (what, response.status_code, response.text)
    # And the link to bob's file reads nothing: not directly, not as a tree that follows it.
    assert api.get(f"{o}/view", params={"path": f"{alice_work}/only/bobs"}).status_code == 403
    with api.stream(
        "GET", f"{o}/tree", params={"path": f"{alice_work}/only", "dereference": True}
    ) as streamed:
        received = b""
        try:
            for chunk in streamed.iter_bytes():
                received += chunk
        except httpx.HTTPError:
            pass  # tar failed on bob's file mid-stream: the transfer is cut, by design
    assert content not in received


def test_a_malicious_archive_cannot_write_outside_its_target(
    stack: StackInfo, http_as, alice_work: str, bob_secret
) -> None:
    """Members named with ``..`` or an absolute path, and a symlink followed by a member
    written through it: GNU tar keeps all of them inside the target directory."""
    api = http_as("alice")
    o = ops(stack)
    bob_dir = bob_secret[0]
    target, outside = f"{alice_work}/target", f"{alice_work}/outside"
    for path in (target, outside):
        assert api.post(f"{o}/mkdir", json={"path": path}).status_code == 201
    archive = _tar(
        [
            _file("../outside/dotdot.txt", b"escaped"),
            _file(f"{outside}/absolute.txt", b"escaped"),
            _file(f"{bob_dir}/planted.txt", b"escaped"),
            _symlink("via", outside),
            _file("via/through-link.txt", b"escaped"),
            _symlink("up", ".."),
            _file("up/outside/through-dotdot-link.txt", b"escaped"),
            _file("fine.txt", b"fine"),
        ]
    )
    response = api.put(f"{o}/tree", params={"path": target}, content=archive)
    assert response.status_code in (204, 400), response.text  # tar may report what it refused
    assert _names(api, stack, outside) == set()
    assert _names(http_as("bob"), stack, bob_dir) == {"s.txt"}
    assert _names(api, stack, alice_work) == {"target", "outside"}

    # The same archive through compress/extract (tar on the login node, and as a job).
    upload = api.post(
        f"{o}/upload", params={"path": alice_work}, files={"file": ("evil.tar", archive)}
    )
    assert upload.status_code == 204
    extracted = api.post(
        f"{o}/extract",
        json={"path": f"{alice_work}/evil.tar", "targetPath": target, "compression": "none"},
    )
    assert extracted.status_code in (204, 400), extracted.text
    assert _names(api, stack, outside) == set()
    assert _names(http_as("bob"), stack, bob_dir) == {"s.txt"}
