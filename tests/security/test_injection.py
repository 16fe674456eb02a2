"""Hostile strings in every user-controlled field of every endpoint, against the real stack.

Each string hides a canary command (see conftest: it creates ``<tag>-42``, a name only a shell
evaluating ``$((6*7))`` can produce). After the corpus has gone through every field — and every
Slurm job it started has finished — no canary file may exist in the users' homes (the working
directory of SSH sessions and transfer jobs), the test's work directory, or /tmp. Every response
must be a 2xx or a 4xx: a hostile value is either used as data or refused, never a crash.

The job script (`script`) is excluded: it is the user's own program and meant to run. So is the
meaning of the attach `command`; what is tested is that it cannot escape its one argument.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import tarfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import quote

import httpx
import pytest

from firecrest_dev.info import StackInfo
from firecrest_server.api.upload_form import decode_filename

from .conftest import Canary, jobs_url, ops, transfer, unverified_claims, wait_for_jobs

pytestmark = [pytest.mark.stack, pytest.mark.slow]

CANARY = Canary()
R = CANARY.command  # relative: lands in whatever directory the shell runs in
A = CANARY.absolute_command  # /tmp/...

HOSTILE = [
    f"x'; {R}; '",
    f'x"; {R}; "',
    f"$({R})",
    f"`{R}`",
    f"x; {R}",
    f"x && {R}",
    f"x || {R}",
    f"x | {R}",
    f"x\n{R}\n",
    f"x\r\n{R}",
    f"x\x00; {R}",
    f"-x; {R}",
    f"--help; {R}",
    f"--output=/tmp/y; {R}",
    f"*; {R}",
    f"?[a]*; {R}",
    f"../../x; {R}",
    f"ünï✓数据'; {R}",
    f"%00; {R}",
    f"%0a{R}",
    f"'$({R})'",
    f'"$({R})"',
    f"\\'; {R}; #",
    f"x' && {A} && '",
    f"$({A})",
    f"${{IFS}}; {R}",
    f"x\t{R}",
    f"x > /dev/null; {R} #",
    "a" * 3000 + f"; {R}",
    "b" * 250 + f";{R}",
]
IDS = [f"h{i}" for i in range(len(HOSTILE))]


def _plain_name(value: str) -> bool:
    """Whether ``value`` can be the name of a file: no slash, no NUL, at most NAME_MAX bytes."""
    return "/" not in value and "\x00" not in value and 0 < len(value.encode()) <= 255


def _stored_name(value: str) -> str:
    """The name a multipart upload of ``value`` gets. The server undoes the %XX escapes
    multipart encoders use for quotes and control characters (api/upload_form.py), so a
    literal ``%00`` arrives as NUL — and is refused with 400."""
    return decode_filename(value.encode())


def _uploadable(value: str) -> bool:
    return _plain_name(value) and _plain_name(_stored_name(value))


@dataclass
class Outcome:
    label: str
    value: str
    response: httpx.Response


class Recorder:
    """Sends requests concurrently, keeps every response, and collects the jobs they start."""

    def __init__(self, client: httpx.AsyncClient, concurrency: int = 24) -> None:
        self.client = client
        self.outcomes: list[Outcome] = []
        self.job_ids: list[str] = []
        self.logs: list[str] = []
        self.cut_streams: list[tuple[str, str]] = []
        self._gate = asyncio.Semaphore(concurrency)

    async def send(self, label: str, value: str, method: str, url: str, **kw) -> httpx.Response:
        async with self._gate:
            try:
                response = await self.client.request(method, url, **kw)
            except httpx.RemoteProtocolError:
                # A tree download whose tar fails after the 200 went out is cut on purpose
                # (filesystem/trees.py), so the client cannot mistake it for a whole archive.
                self.cut_streams.append((label, value))
                return httpx.Response(200, request=httpx.Request(method, url))
        self.outcomes.append(Outcome(label, value, response))
        if response.status_code in (200, 201) and "json" in response.headers.get(
            "content-type", ""
        ):
            body = response.json()
            if isinstance(body, dict) and "jobId" in body:
                self.job_ids.append(body["jobId"])
            job = body.get("transferJob") if isinstance(body, dict) else None
            if job:
                self.job_ids.append(job["jobId"])
                self.logs += [job["logs"]["outputLog"], job["logs"]["errorLog"]]
        return response

    def server_errors(self) -> list[tuple[str, str, int, str]]:
        return [
            (o.label, o.value[:80], o.response.status_code, o.response.text[:300])
            for o in self.outcomes
            if o.response.status_code >= 500
        ]

    def assert_only_2xx_and_4xx(self) -> None:
        assert self.outcomes
        assert self.server_errors() == []
        unexpected = [
            (o.label, o.response.status_code) for o in self.outcomes if o.response.status_code < 200
        ]
        assert unexpected == []
        assert {label for label, _ in self.cut_streams} <= {"GET tree path"}, self.cut_streams


async def _each(values: list[str], make: Callable[[str], list[Awaitable]]) -> None:
    await asyncio.gather(*(coroutine for value in values for coroutine in make(value)))


@pytest.fixture
def layout(stack: StackInfo, alice_work: str, http_as) -> dict[str, str]:
    """files/ holds a file under every hostile name that can be one; new/ and out/ are empty."""
    api = http_as("alice")
    o = ops(stack)
    # Three levels down: a value with "../../" still lands inside the work directory.
    root = f"{alice_work}/d1/d2"
    for sub in ("files", "new", "out"):
        made = api.post(f"{o}/mkdir", json={"path": f"{root}/{sub}", "parent": True})
        assert made.status_code == 201, made.text
    files = f"{root}/files"
    for name in [*filter(_plain_name, HOSTILE), "plain.txt"]:
        response = api.post(
            f"{o}/upload", params={"path": files}, files={"file": (name, b"#!/bin/bash\ntrue\n")}
        )
        expected = 204 if _uploadable(name) else 400
        assert response.status_code == expected, (name, response.status_code, response.text)
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        info = tarfile.TarInfo("inner.txt")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"ok"))
    response = api.post(
        f"{o}/upload", params={"path": files}, files={"file": ("a.tar.gz", archive.getvalue())}
    )
    assert response.status_code == 204, response.text
    return {"base": alice_work, "files": files, "new": f"{root}/new", "out": f"{root}/out"}


async def _no_canary_once_jobs_ended(
    recorder: Recorder, client: httpx.AsyncClient, stack: StackInfo
) -> None:
    states = await wait_for_jobs(client, stack, recorder.job_ids)
    assert "TIMED OUT IN TEST" not in states.values(), states
    assert CANARY.hits() == []
    for log in recorder.logs:  # transfer job logs are left in alice's home
        await client.delete(f"{ops(stack)}/rm", params={"path": log})


# ------------------------------------------------------------------------- /filesystem/ops


async def test_every_ops_field(stack: StackInfo, alice_async, layout: dict[str, str]) -> None:
    r = Recorder(alice_async)
    o = ops(stack)
    files, new, out, base = layout["files"], layout["new"], layout["out"], layout["base"]
    plain = f"{files}/plain.txt"

    def probes(h: str) -> list[Awaitable]:
        at, made = f"{files}/{h}", f"{new}/{h}"
        send = r.send
        calls = [
            # paths, both as found (an existing file of that name) and raw (not absolute)
            *(
                send(f"GET {ep} path", h, "GET", f"{o}/{ep}", params={"path": p})
                for ep in ("ls", "stat", "head", "tail", "view", "checksum", "file", "download")
                for p in (at, h)
            ),
            send(
                "GET ls flags",
                h,
                "GET",
                f"{o}/ls",
                params={"path": at, "showHidden": h, "recursive": "true", "dereference": h},
            ),
            send(
                "GET stat dereference",
                h,
                "GET",
                f"{o}/stat",
                params={"path": at, "dereference": "true"},
            ),
            send("GET tree path", h, "GET", f"{o}/tree", params={"path": at}),
            # numbers
            send("GET head lines", h, "GET", f"{o}/head", params={"path": plain, "lines": h}),
            send("GET head bytes", h, "GET", f"{o}/head", params={"path": plain, "bytes": h}),
            send(
                "GET tail lines",
                h,
                "GET",
                f"{o}/tail",
                params={"path": plain, "lines": h, "skipHeading": h},
            ),
            send("GET tail bytes", h, "GET", f"{o}/tail", params={"path": plain, "bytes": h}),
            send("GET view size", h, "GET", f"{o}/view", params={"path": plain, "size": h}),
            send("GET view offset", h, "GET", f"{o}/view", params={"path": plain, "offset": h}),
            send(
                "GET download Range",
                h,
                "GET",
                f"{o}/download",
                params={"path": plain},
                headers={"Range": h.encode("utf-8", "replace")[:200]}
                if "\n" not in h and "\r" not in h and "\x00" not in h
                else {},
            ),
            # creating
            send("POST mkdir path", h, "POST", f"{o}/mkdir", json={"path": made}),
            send(
                "POST mkdir parent",
                h,
                "POST",
                f"{o}/mkdir",
                json={"path": f"{made}-p/{h}", "parent": True},
            ),
            send("POST mkdir raw", h, "POST", f"{o}/mkdir", json={"path": h}),
            send(
                "POST symlink target",
                h,
                "POST",
                f"{o}/symlink",
                json={"path": at, "linkPath": f"{made}.lnk"},
            ),
            send(
                "POST symlink raw target",
                h,
                "POST",
                f"{o}/symlink",
                json={"path": h, "linkPath": f"{made}.lnk2"},
            ),
            send(
                "POST upload dir",
                h,
                "POST",
                f"{o}/upload",
                params={"path": made},
                files={"file": ("u.txt", b"u")},
            ),
            # changing
            send("PUT chmod mode", h, "PUT", f"{o}/chmod", json={"path": plain, "mode": h}),
            send("PUT chmod path", h, "PUT", f"{o}/chmod", json={"path": at, "mode": "u+rw"}),
            send("PUT chmod octal path", h, "PUT", f"{o}/chmod", json={"path": at, "mode": "644"}),
            send("PUT chown owner", h, "PUT", f"{o}/chown", json={"path": plain, "owner": h}),
            send("PUT chown group", h, "PUT", f"{o}/chown", json={"path": plain, "group": h}),
            send(
                "PUT chown path",
                h,
                "PUT",
                f"{o}/chown",
                json={"path": at, "owner": "alice", "group": "alice"},
            ),
            # archives
            send(
                "POST compress path",
                h,
                "POST",
                f"{o}/compress",
                json={"path": at, "targetPath": f"{made}.tgz"},
            ),
            send(
                "POST compress pattern",
                h,
                "POST",
                f"{o}/compress",
                json={
                    "path": files,
                    "targetPath": f"{out}/{len(h)}-{hash(h)}.tar",
                    "matchPattern": h,
                    "compression": "none",
                },
            ),
            send(
                "POST compress pattern deref",
                h,
                "POST",
                f"{o}/compress",
                json={
                    "path": files,
                    "targetPath": f"{made}.m.tar",
                    "matchPattern": f".*{h}",
                    "dereference": True,
                },
            ),
            send(
                "POST compress compression",
                h,
                "POST",
                f"{o}/compress",
                json={"path": plain, "targetPath": f"{out}/c.tar", "compression": h},
            ),
            send(
                "POST extract path", h, "POST", f"{o}/extract", json={"path": at, "targetPath": new}
            ),
            send(
                "POST extract target",
                h,
                "POST",
                f"{o}/extract",
                json={"path": f"{files}/a.tar.gz", "targetPath": made},
            ),
            # extensions: cp, mv, tree
            send(
                "POST cp source",
                h,
                "POST",
                f"{o}/cp",
                json={"sourcePath": at, "targetPath": f"{made}.cp"},
            ),
            send(
                "POST cp target",
                h,
                "POST",
                f"{o}/cp",
                json={"sourcePath": plain, "targetPath": f"{made}.cp2", "dereference": True},
            ),
            send(
                "POST mv target",
                h,
                "POST",
                f"{o}/mv",
                json={"sourcePath": f"{made}.cp2", "targetPath": f"{made}.mv"},
            ),
            send("PUT tree path", h, "PUT", f"{o}/tree", params={"path": at}, content=b""),
            send("DELETE rm path", h, "DELETE", f"{o}/rm", params={"path": f"{made}.cp"}),
            send("DELETE rm raw", h, "DELETE", f"{o}/rm", params={"path": h}),
        ]
        if _uploadable(h):
            calls.append(
                send(
                    "POST upload name",
                    h,
                    "POST",
                    f"{o}/upload",
                    params={"path": new},
                    files={"file": (h, b"x")},
                )
            )
        return calls

    await _each(HOSTILE, probes)
    # ...and after all that, the files named by the corpus are where they should be
    listing = await alice_async.get(f"{o}/ls", params={"path": files})
    names = {e["name"] for e in listing.json()["output"]}
    assert names >= {_stored_name(h) for h in HOSTILE if _uploadable(h)}
    r.assert_only_2xx_and_4xx()
    await _no_canary_once_jobs_ended(r, alice_async, stack)
    assert base  # removed with everything in it by the alice_work fixture


# ---------------------------------------------------------------------------------- compute

SCRIPT = "#!/bin/bash\ntrue\n"


async def test_every_job_field(stack: StackInfo, alice_async, layout: dict[str, str]) -> None:
    r = Recorder(alice_async)
    jobs = jobs_url(stack)
    files, out = layout["files"], layout["out"]

    def submit(label: str, h: str, **fields) -> Awaitable:
        job = {"workingDirectory": out, "script": SCRIPT} | fields
        return r.send(f"POST job {label}", h, "POST", jobs, json={"job": job})

    def probes(h: str) -> list[Awaitable]:
        quoted = quote(h, safe="")
        return [
            submit("name", h, name=h),
            submit("account", h, account=h),
            submit("partition", h, partition=h),
            submit("reservation", h, reservation=h),
            submit("constraints", h, constraints=h),
            submit("standardInput", h, standardInput=h),
            submit("standardOutput", h, standardOutput=h),
            submit("standardError", h, standardError=h),
            submit("workingDirectory", h, workingDirectory=f"{out}/{h}"),
            submit("workingDirectory raw", h, workingDirectory=h),
            submit("env name", h, env={h: "v"}),
            submit("env value", h, env={"HOSTILE": h}),
            submit("env list", h, env=[f"HOSTILE={h}", h]),
            submit("scriptPath", h, script=None, scriptPath=f"{files}/{h}"),
            submit("scriptPath raw", h, script=None, scriptPath=h),
            r.send("GET job id", h, "GET", f"{jobs}/{quoted}"),
            r.send("GET metadata id", h, "GET", f"{jobs}/{quoted}/metadata"),
            r.send("DELETE job id", h, "DELETE", f"{jobs}/{quoted}"),
            r.send("PUT attach id", h, "PUT", f"{jobs}/{quoted}/attach", json={"command": "true"}),
            r.send("GET jobs account", h, "GET", jobs, params={"account": h}),
            r.send("GET jobs name", h, "GET", jobs, params={"name": h[:200]}),
            r.send("GET jobs time_window", h, "GET", jobs, params={"time_window": h}),
            r.send("GET jobs allusers", h, "GET", jobs, params={"allusers": h}),
            r.send(
                "GET partitions",
                h,
                "GET",
                f"/status/{stack.system}/partitions",
                params={"show_hidden": h},
            ),
        ]

    await _each(HOSTILE, probes)
    # An environment value is data, whatever it holds (only a NUL cannot be passed on):
    accepted = [o for o in r.outcomes if o.label == "POST job env value"]
    assert accepted
    for o in accepted:
        assert o.response.status_code == (400 if "\x00" in o.value else 201), o.response.text
    r.assert_only_2xx_and_4xx()
    await _no_canary_once_jobs_ended(r, alice_async, stack)


async def test_attach_command_stays_one_argument(
    stack: StackInfo, alice_async, layout: dict[str, str]
) -> None:
    """The attach command runs in `bash -c` inside the job: each of these, correctly quoted, is
    harmless there (the canary is inside a quoted argument), but would run it if the command
    could break out of its argument to the login shell."""
    jobs = jobs_url(stack)
    out = layout["out"]
    submitted = await alice_async.post(
        jobs, json={"job": {"workingDirectory": out, "script": "#!/bin/bash\nsleep 120\n"}}
    )
    assert submitted.status_code == 201, submitted.text
    job_id = submitted.json()["jobId"]
    try:
        for _ in range(60):
            state = (await alice_async.get(f"{jobs}/{job_id}")).json()["jobs"][0]["status"]
            if state["state"] == "RUNNING":
                break
            await asyncio.sleep(1)
        escapes = [
            f"true ' ; {R} ; '",
            f'true " ; {R} ; "',
            f"true '\"'\"' ; {R} ; '\"'\"'",
            f"true '\n{R}\n'",
            f"echo '$({R})' `# {R}`",
            f"true \\' ; : '{R}'",
        ]
        for command in escapes:
            response = await alice_async.put(f"{jobs}/{job_id}/attach", json={"command": command})
            assert response.status_code in (204, 400), (command, response.text)
        # The command does run, inside the job's allocation, with the caller's working dir.
        marker = f"{out}/attached-{CANARY.tag}"
        ran = await alice_async.put(
            f"{jobs}/{job_id}/attach",
            json={"command": f"echo \"$SLURM_JOB_ID\" > '{marker}'"},
        )
        assert ran.status_code == 204, ran.text
        seen = await alice_async.get(f"{ops(stack)}/view", params={"path": marker})
        assert seen.json()["output"].strip() == job_id
        nul = await alice_async.put(f"{jobs}/{job_id}/attach", json={"command": "true\x00; x"})
        assert nul.status_code == 400
    finally:
        await alice_async.delete(f"{jobs}/{job_id}")
    assert CANARY.hits() == []


# ------------------------------------------------------------------ /filesystem/transfer, S3


async def test_every_transfer_and_staging_field(
    stack: StackInfo, alice_async, layout: dict[str, str]
) -> None:
    r = Recorder(alice_async)
    t = transfer(stack)
    files, new = layout["files"], layout["new"]
    plain = f"{files}/plain.txt"
    unfinished: list[tuple[str, str]] = []  # (job id, staging directory)

    async def upload_through_staging(h: str) -> None:
        """Start an upload to a hostile target and finish it, so its job moves the file."""
        content = b"hello"
        started = await r.send(
            "POST transfer/upload path",
            h,
            "POST",
            f"{t}/upload",
            json={
                "path": f"{new}/{h}",
                "transferDirectives": {"transferMethod": "s3", "fileSize": len(content)},
            },
        )
        if started.status_code != 201:
            return
        body = started.json()
        job_id = body["transferJob"]["jobId"]
        part_url = body["transferDirectives"]["partsUploadUrls"][0]
        token = part_url.split("/staging/")[1].split("/")[0]
        async with httpx.AsyncClient(timeout=60) as bare:  # staging URLs carry no bearer
            put = await bare.put(part_url, content=content)
            etag = put.headers.get("ETag", "")
            xml = (
                "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber>"
                f"<ETag>{etag}</ETag></Part></CompleteMultipartUpload>"
            )
            done = await bare.post(body["transferDirectives"]["completeUploadUrl"], content=xml)
        r.outcomes.append(Outcome("PUT staging part", h, put))
        r.outcomes.append(Outcome("POST staging complete", h, done))
        assert etag == f'"{hashlib.md5(content).hexdigest()}"'  # noqa: S324 - S3's ETag
        if done.status_code != 200:
            unfinished.append((job_id, unverified_claims(token)["p"]))

    def probes(h: str) -> list[Awaitable]:
        at, made = f"{files}/{h}", f"{new}/{h}"
        quoted = quote(h, safe="")
        send = r.send
        return [
            send(
                "POST transfer/cp source",
                h,
                "POST",
                f"{t}/cp",
                json={"sourcePath": at, "targetPath": f"{made}.cp"},
            ),
            send(
                "POST transfer/cp target",
                h,
                "POST",
                f"{t}/cp",
                json={"sourcePath": plain, "targetPath": f"{made}.cp2", "dereference": True},
            ),
            send(
                "POST transfer/cp account",
                h,
                "POST",
                f"{t}/cp",
                json={"sourcePath": plain, "targetPath": f"{new}/acct", "account": h},
            ),
            send(
                "POST transfer/mv",
                h,
                "POST",
                f"{t}/mv",
                json={"sourcePath": f"{made}.nothing", "targetPath": f"{made}.mv"},
            ),
            send("DELETE transfer/rm", h, "DELETE", f"{t}/rm", params={"path": f"{made}.none"}),
            send(
                "DELETE transfer/rm account",
                h,
                "DELETE",
                f"{t}/rm",
                params={"path": f"{new}/none", "account": h},
            ),
            send(
                "POST transfer/compress",
                h,
                "POST",
                f"{t}/compress",
                json={"path": at, "targetPath": f"{made}.tgz"},
            ),
            send(
                "POST transfer/compress pattern",
                h,
                "POST",
                f"{t}/compress",
                json={"path": files, "targetPath": f"{made}.p.tgz", "matchPattern": h},
            ),
            send(
                "POST transfer/extract",
                h,
                "POST",
                f"{t}/extract",
                json={"path": f"{files}/a.tar.gz", "targetPath": made},
            ),
            send(
                "POST transfer/download path",
                h,
                "POST",
                f"{t}/download",
                json={"path": at, "transferDirectives": {"transferMethod": "s3"}},
            ),
            send(
                "POST transfer/download method",
                h,
                "POST",
                f"{t}/download",
                json={"path": plain, "transferDirectives": {"transferMethod": h}},
            ),
            send(
                "POST transfer/upload size",
                h,
                "POST",
                f"{t}/upload",
                json={
                    "path": f"{new}/sz",
                    "transferDirectives": {"transferMethod": "s3", "fileSize": h},
                },
            ),
            upload_through_staging(h),
            # the staging endpoints, with the hostile value as token, part number and body
            send(
                "PUT staging token",
                h,
                "PUT",
                f"/staging/{quoted}/parts/1",
                content=b"x",
                headers={"Authorization": ""},
            ),
            send("POST staging token", h, "POST", f"/staging/{quoted}/complete", content=b"x"),
            send("GET staging token", h, "GET", f"/staging/{quoted}/object"),
            send(
                "PUT staging part number", h, "PUT", f"/staging/x.y.z/parts/{quoted}", content=b"x"
            ),
        ]

    await _each(HOSTILE, probes)
    for job_id, staging in unfinished:  # uploads whose parts never came would wait for hours
        await alice_async.delete(f"{jobs_url(stack)}/{job_id}")
        await alice_async.delete(f"{ops(stack)}/rm", params={"path": staging})
    r.assert_only_2xx_and_4xx()
    staged = [o for o in r.outcomes if o.label == "POST staging complete"]
    assert staged
    assert all(o.response.status_code == 200 for o in staged)
    await _no_canary_once_jobs_ended(r, alice_async, stack)
    # The staged uploads arrived under their hostile names: quoted, not interpreted.
    listing = await alice_async.get(f"{ops(stack)}/ls", params={"path": new})
    names = {e["name"] for e in listing.json()["output"]}
    assert {h for h in HOSTILE if _plain_name(h)} <= names


async def test_hostile_complete_documents_are_refused(stack: StackInfo, alice_async) -> None:
    """XML bombs and external entities in CompleteMultipartUpload: 400, never parsed."""
    started = await alice_async.post(
        f"{transfer(stack)}/upload",
        json={
            "path": f"{stack.users['alice'].home}/never-{CANARY.tag}",
            "transferDirectives": {"transferMethod": "s3", "fileSize": 1},
        },
    )
    assert started.status_code == 201, started.text
    body = started.json()
    token = body["transferDirectives"]["completeUploadUrl"].split("/staging/")[1].split("/")[0]
    documents = [
        '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
        "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>&e;</ETag></Part>"
        "</CompleteMultipartUpload>",
        '<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa">'
        '<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;">]>'
        "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>&c;</ETag></Part>"
        "</CompleteMultipartUpload>",
        "<not-closed",
        "",
        "<CompleteMultipartUpload><Part><PartNumber>x</PartNumber></Part></CompleteMultipartUpload>",
    ]
    try:
        async with httpx.AsyncClient(timeout=60) as bare:
            for document in documents:
                response = await bare.post(
                    body["transferDirectives"]["completeUploadUrl"], content=document
                )
                assert response.status_code == 400, (document[:40], response.text)
                assert "root:" not in response.text
    finally:
        await alice_async.delete(f"{jobs_url(stack)}/{body['transferJob']['jobId']}")
        await alice_async.delete(f"{ops(stack)}/rm", params={"path": unverified_claims(token)["p"]})
        for log in body["transferJob"]["logs"].values():
            await alice_async.delete(f"{ops(stack)}/rm", params={"path": log})
