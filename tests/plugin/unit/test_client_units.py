"""Unit tests for the client's pure pieces: error mapping, retry decisions, token refresh timing
(with a fake clock), job states, wire parsing, S3 part arithmetic, local tar rewriting."""

from __future__ import annotations

import asyncio
import errno
import ssl
import stat
import tarfile
import time
from pathlib import Path

import httpx
import jwt
import pytest

from aiida_firecrest import local_tar, trees
from aiida_firecrest.client import auth, errors, is_final_state
from aiida_firecrest.client.models import (
    DEFAULT_MAX_OPS_FILE_SIZE,
    FileEntry,
    SystemInfo,
    permission_bits,
)
from aiida_firecrest.client.retry import RetryPolicy, parse_retry_after
from aiida_firecrest.client.session import default_tls_context
from aiida_firecrest.client.staging import (
    StagedDownload,
    StagedUpload,
    complete_multipart_xml,
    part_ranges,
)

# ------------------------------------------------------------------------------ error mapping


@pytest.mark.parametrize(
    ("status", "message", "expected", "code"),
    [
        (404, "/x: No such file or directory", FileNotFoundError, errno.ENOENT),
        (
            500,
            "Remote process failed with exit status:1 and error message:ls: cannot access "
            "'/x': No such file or directory",
            FileNotFoundError,
            errno.ENOENT,
        ),
        (404, "Gone fishing", FileNotFoundError, errno.ENOENT),
        (403, "/x: Permission denied", PermissionError, errno.EACCES),
        (403, "User may not use system cluster", PermissionError, errno.EACCES),
        (400, "chown: changing ownership: Operation not permitted", PermissionError, errno.EPERM),
        (400, "/x: File exists", FileExistsError, errno.EEXIST),
        (400, "/x: Is a directory", IsADirectoryError, errno.EISDIR),
        (400, "/x: Not a directory", NotADirectoryError, errno.ENOTDIR),
        (400, "rmdir: Directory not empty", OSError, errno.ENOTEMPTY),
        (408, "Remote process failed with exit status:124", TimeoutError, errno.ETIMEDOUT),
        # FirecREST before v2's PR #24 answered a remote timeout(1) with a 500.
        (
            500,
            "Remote process failed with exit status:124 and error message:",
            TimeoutError,
            errno.ETIMEDOUT,
        ),
        (413, "File is larger than 5242880 bytes", OSError, errno.EFBIG),
        (500, "Internal server error", OSError, None),
    ],
)
def test_error_mapping(status, message, expected, code) -> None:
    error = errors.error_for_message(message, status_code=status, request_id="rid")
    assert isinstance(error, expected)
    assert isinstance(error, errors.FirecrestError)
    assert str(error) == message  # the server's message, unchanged
    assert error.errno == code
    assert error.status_code == status
    assert error.request_id == "rid"


def test_job_not_found_and_unauthorized() -> None:
    assert isinstance(
        errors.error_for_message("Job not found.", status_code=404), errors.JobNotFoundError
    )
    unauthorized = errors.error_for_message("Invalid token", status_code=401)
    assert isinstance(unauthorized, errors.AuthenticationError)
    assert isinstance(unauthorized, PermissionError)


def test_unknown_endpoint_is_not_a_missing_file() -> None:
    response = httpx.Response(
        404,
        json={"message": "Not Found"},
        request=httpx.Request("POST", "http://x/filesystem/c/transfer/upload"),
    )
    error = errors.error_from_response(response)
    assert isinstance(error, errors.EndpointNotFoundError)
    assert not isinstance(error, FileNotFoundError)
    assert (
        str(error) == "POST /filesystem/c/transfer/upload: the server does not serve this endpoint"
    )


def test_error_message_from_bodies() -> None:
    json_body = httpx.Response(400, json={"message": "bad thing", "errorType": "error"})
    assert errors.error_message(json_body) == "bad thing"
    html_body = httpx.Response(502, text="<html>Bad Gateway</html>")
    assert errors.error_message(html_body) == "<html>Bad Gateway</html>"
    empty = httpx.Response(503)
    assert "503" in errors.error_message(empty)
    response = httpx.Response(404, json={"message": "x: No such file or directory"})
    response.headers["x-request-id"] = "abc"
    error = errors.error_from_response(response)
    assert isinstance(error, FileNotFoundError)
    assert error.request_id == "abc"


def test_network_errors_are_oserrors() -> None:
    refused = errors.error_from_network(httpx.ConnectError("refused"), "http://x")
    assert isinstance(refused, ConnectionError)
    slow = errors.error_from_network(httpx.ReadTimeout("slow"), "http://x")
    assert isinstance(slow, TimeoutError)


def test_unavailable_means_the_api_could_not_be_used_at_all() -> None:
    refused = errors.error_from_network(httpx.ConnectError("refused"), "http://x")
    broke = errors.error_from_network(httpx.RemoteProtocolError("gone"), "http://x")
    slow = errors.error_from_network(httpx.ReadTimeout("slow"), "http://x")
    assert errors.is_unavailable(refused)
    assert errors.is_unavailable(broke)
    assert errors.is_unavailable(slow)
    for status in (424, 429, 502, 503, 504):  # 424: FirecREST v2 lost its SSH connection
        assert errors.is_unavailable(errors.error_from_response(httpx.Response(status)))
    # Wrapped (archives.py says what it was doing, `from` the cause).
    wrapped = OSError("Error while creating the tar archive")
    wrapped.__cause__ = refused
    assert errors.is_unavailable(wrapped)
    # Answers about the files, or about the request, are not.
    missing = httpx.Response(404, json={"message": "x: No such file or directory"})
    assert not errors.is_unavailable(errors.error_from_response(missing))
    remote_timeout = httpx.Response(408, json={"message": "Remote process failed"})
    assert not errors.is_unavailable(errors.error_from_response(remote_timeout))
    assert not errors.is_unavailable(errors.error_from_response(httpx.Response(500)))
    assert not errors.is_unavailable(OSError("local"))
    assert not errors.is_unavailable(None)


# ------------------------------------------------------------------------------------ retry


def _response(status: int, **headers: str) -> httpx.Response:
    return httpx.Response(status, headers=headers)


@pytest.mark.parametrize(
    ("idempotent", "outcome", "retry"),
    [
        (True, _response(200), False),
        (True, _response(404), False),
        (True, _response(500), False),
        (True, _response(502), True),
        (True, _response(503), True),
        (True, _response(504), True),
        (False, _response(502), False),
        (False, _response(503), False),
        (True, _response(424), True),  # FirecREST v2: SSH connection lost; retried as our 503
        (False, _response(424), False),
        (True, _response(429), True),
        (False, _response(429), True),  # rate limited: nothing happened
        (True, httpx.ConnectError("refused"), True),
        (False, httpx.ConnectError("refused"), True),  # never reached the server
        (False, httpx.ConnectTimeout("slow"), True),
        (True, httpx.ReadTimeout("slow"), True),
        (False, httpx.ReadTimeout("slow"), False),  # may have run
        (True, httpx.RemoteProtocolError("dropped"), True),
        (False, httpx.RemoteProtocolError("dropped"), False),
        (True, ValueError("a bug"), False),
    ],
)
def test_retry_decisions(idempotent, outcome, retry) -> None:
    policy = RetryPolicy()
    if isinstance(outcome, httpx.Response):
        assert policy.should_retry(idempotent=idempotent, response=outcome) is retry
    else:
        assert policy.should_retry(idempotent=idempotent, exception=outcome) is retry


def test_retry_waits_grow_and_honour_retry_after() -> None:
    policy = RetryPolicy(initial_wait=1.0, max_wait=8.0, max_retry_after=60, jitter=lambda: 1.0)
    assert [policy.wait(n) for n in (1, 2, 3, 4, 5, 6)] == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    low = RetryPolicy(initial_wait=1.0, jitter=lambda: 0.0)
    assert low.wait(3) == 2.0  # at least half the backoff
    assert policy.wait(1, _response(429, **{"Retry-After": "7"})) == 7.0
    assert policy.wait(1, _response(503, **{"Retry-After": "3"})) == 3.0
    assert policy.wait(1, _response(429, **{"Retry-After": "3600"})) == 60  # capped
    assert policy.wait(2, _response(429)) == 2.0  # no header: backoff
    assert policy.wait(2, _response(502, **{"Retry-After": "30"})) == 2.0  # only 429/503


def test_parse_retry_after() -> None:
    assert parse_retry_after("5") == 5.0
    assert parse_retry_after("0") == 0.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    now = 1_700_000_000.0
    assert parse_retry_after("Tue, 14 Nov 2023 22:13:30 GMT", now=now) == 10.0
    assert parse_retry_after("Tue, 14 Nov 2023 22:13:00 GMT", now=now) == 0.0  # past


# ------------------------------------------------------------------------------- token refresh


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class CountingFetcher:
    def __init__(self, lifetime: float | None, delay: float = 0.0) -> None:
        self.lifetime = lifetime
        self.delay = delay
        self.calls = 0

    async def __call__(self, http: httpx.AsyncClient) -> tuple[str, float | None]:
        self.calls += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        return f"token-{self.calls}", self.lifetime


def test_refresh_time() -> None:
    assert auth.refresh_time(100, 600, 30) == 670  # 30 s ahead of expiry
    assert auth.refresh_time(100, 20, 30) == 110  # short-lived: at half its life


async def test_token_is_reused_then_refreshed_ahead_of_expiry() -> None:
    clock, fetch = FakeClock(), CountingFetcher(lifetime=600)
    source = auth.RefreshingToken(fetch, clock=clock, min_validity=30)
    assert await source.token(None) == "token-1"
    clock.now += 569
    assert await source.token(None) == "token-1"
    clock.now += 1  # 30 s before expiry
    assert await source.token(None) == "token-2"
    assert fetch.calls == 2


async def test_invalidate_forces_a_new_token() -> None:
    clock, fetch = FakeClock(), CountingFetcher(lifetime=600)
    source = auth.RefreshingToken(fetch, clock=clock)
    await source.token(None)
    source.invalidate()
    assert await source.token(None) == "token-2"


async def test_unknown_lifetime_uses_the_default() -> None:
    clock, fetch = FakeClock(), CountingFetcher(lifetime=None)
    source = auth.RefreshingToken(fetch, clock=clock, default_lifetime=60, min_validity=10)
    await source.token(None)
    clock.now += 49
    await source.token(None)
    assert fetch.calls == 1
    clock.now += 1
    await source.token(None)
    assert fetch.calls == 2


async def test_concurrent_callers_share_one_refresh() -> None:
    clock, fetch = FakeClock(), CountingFetcher(lifetime=600, delay=0.05)
    source = auth.RefreshingToken(fetch, clock=clock)
    tokens = await asyncio.gather(*(source.token(None) for _ in range(20)))
    assert set(tokens) == {"token-1"}
    assert fetch.calls == 1


async def test_a_still_valid_token_is_served_during_a_refresh() -> None:
    clock, fetch = FakeClock(), CountingFetcher(lifetime=600, delay=0.05)
    source = auth.RefreshingToken(fetch, clock=clock, min_validity=30)
    await source.token(None)
    clock.now += 580  # due for refresh, 20 s left
    refreshing = asyncio.create_task(source.token(None))
    await asyncio.sleep(0.01)
    assert await source.token(None) == "token-1"  # no waiting behind the refresh
    assert await refreshing == "token-2"


async def test_static_token() -> None:
    source = auth.StaticToken("abc")
    assert await source.token(None) == "abc"
    source.invalidate()
    assert await source.token(None) == "abc"
    assert "abc" not in repr(source)
    with pytest.raises(ValueError, match="empty"):
        auth.StaticToken("")


def test_jwt_lifetime() -> None:
    now = time.time()
    token = jwt.encode({"exp": int(now) + 300, "sub": "x"}, "k" * 32, algorithm="HS256")
    assert auth.jwt_lifetime(token, now=now) == pytest.approx(300, abs=1)
    assert auth.jwt_lifetime("not-a-jwt") is None
    no_exp = jwt.encode({"sub": "x"}, "k" * 32, algorithm="HS256")
    assert auth.jwt_lifetime(no_exp) is None


async def test_token_command_runs_without_blocking_and_reads_jwt_expiry() -> None:
    token = jwt.encode({"exp": int(time.time()) + 900}, "k" * 32, algorithm="HS256")
    clock = FakeClock()
    source = auth.token_command(f"printf '%s\\n' {token}", clock=clock)
    assert await source.token(None) == token
    clock.now += 800
    assert await source.token(None) == token  # not run again: 100 s left
    with pytest.raises(errors.AuthenticationError, match="exit status 3"):
        await auth.token_command("echo oops >&2; exit 3").token(None)
    with pytest.raises(errors.AuthenticationError, match="no token"):
        await auth.token_command("true").token(None)


def test_client_credentials_repr_hides_the_secret() -> None:
    source = auth.client_credentials("http://idp/token", "my-client", "s3cr3t-value")
    assert "s3cr3t-value" not in repr(source)


# --------------------------------------------------------------------------- job states, wire


@pytest.mark.parametrize(
    ("state", "final"),
    [
        ("COMPLETED", True),
        ("FAILED", True),
        ("CANCELLED by 1001", True),
        ("TIMEOUT", True),
        ("OUT_OF_MEMORY", True),
        (["COMPLETED"], True),
        ("COMPLETED,FAILED", True),
        ("PENDING", False),
        ("RUNNING", False),
        ("CONFIGURING", False),  # pyfirecrest's "contains F" quirk would say final
        ("COMPLETING", False),
        ("COMPLETED,RUNNING", False),
        ("F", True),  # PBS
        ("", False),
        (None, False),
    ],
)
def test_final_job_states(state, final) -> None:
    assert is_final_state(state) is final


def test_system_info_capabilities_and_limit() -> None:
    ours = SystemInfo.from_wire(
        {
            "name": "cluster",
            "dataOperation": {"maxOpsFileSize": 5242880},
            "fileSystems": [{"path": "/home", "dataType": "users", "defaultWorkDir": True}],
            "server": {"capabilities": ["filesystem.ops.cp", "filesystem.tree"], "version": "1"},
        }
    )
    assert ours.supports("filesystem.ops.cp")
    assert not ours.supports("filesystem.ops.mv")
    assert ours.max_ops_file_size == 5242880
    assert ours.default_work_dirs == ("/home",)
    plain = SystemInfo.from_wire({"name": "daint", "ssh": {"host": "x"}})
    assert plain.capabilities == frozenset()
    assert plain.max_ops_file_size == DEFAULT_MAX_OPS_FILE_SIZE == 1024 * 1024


def test_ls_entries() -> None:
    entry = FileEntry.from_wire(
        {
            "name": "run.sh",
            "type": "-",
            "linkTarget": None,
            "user": "1001",
            "group": "1001",
            "permissions": "rwsr-x--T",
            "lastModified": "2024-10-23T09:06:00",
            "size": "123",
        }
    )
    assert entry.size == 123
    assert entry.is_file
    assert entry.mode == stat.S_IFREG | 0o4750 | stat.S_ISVTX
    assert entry.mtime == 1729674360.0
    assert permission_bits("rwxr-xr-x") == 0o755
    assert permission_bits("rw-r-Sr--") == 0o2644
    assert permission_bits("") == 0


# ---------------------------------------------------------------------------- staging arithmetic


TRANSFER_JOB = {"jobId": 7, "system": "cluster", "logs": {"outputLog": "/o", "errorLog": "/e"}}


@pytest.mark.parametrize(
    "answer",
    [
        {  # FirecREST v2
            "transferJob": TRANSFER_JOB,
            "partsUploadUrls": ["https://s3/1", "https://s3/2"],
            "maxPartSize": 4,
            "completeUploadUrl": "https://s3/done",
        },
        {  # in the directives, snake_case
            "transferJob": TRANSFER_JOB,
            "transfer_directives": {
                "transfer_method": "s3",
                "parts_upload_urls": ["https://s3/1", "https://s3/2"],
                "max_part_size": 4,
                "complete_upload_url": "https://s3/done",
            },
        },
    ],
)
def test_staged_upload_answer(answer) -> None:
    staged = StagedUpload.from_wire(answer)
    assert staged.part_urls == ("https://s3/1", "https://s3/2")
    assert staged.part_size == 4
    assert staged.complete_url == "https://s3/done"
    assert (staged.job.job_id, staged.job.output_log) == ("7", "/o")


def test_staged_answers_refuse_what_they_cannot_use() -> None:
    with pytest.raises(OSError, match="'streamer'"):
        StagedUpload.from_wire(
            {"transferJob": TRANSFER_JOB, "transferDirectives": {"transferMethod": "streamer"}}
        )
    with pytest.raises(OSError, match="no S3 part or complete URLs"):
        StagedUpload.from_wire({"transferJob": TRANSFER_JOB, "partsUploadUrls": ["https://s3/1"]})
    with pytest.raises(OSError, match="no download URL"):
        StagedDownload.from_wire({"transferJob": TRANSFER_JOB})
    staged = StagedDownload.from_wire(
        {"transferJob": TRANSFER_JOB, "transferDirectives": {"downloadUrl": "https://s3/f"}}
    )
    assert (staged.url, staged.job.error_log) == ("https://s3/f", "/e")


def test_s3_parts() -> None:
    assert part_ranges(10, 4, 3) == [(0, 4), (4, 4), (8, 2)]
    assert part_ranges(8, 4, 2) == [(0, 4), (4, 4)]
    with pytest.raises(OSError, match="part URLs"):
        part_ranges(10, 4, 2)
    xml = complete_multipart_xml(['"etag1"', '"etag&2"'])
    assert xml == (
        "<CompleteMultipartUpload>"
        '<Part><ETag>"etag1"</ETag><PartNumber>1</PartNumber></Part>'
        '<Part><ETag>"etag&amp;2"</ETag><PartNumber>2</PartNumber></Part>'
        "</CompleteMultipartUpload>"
    )


def test_tree_strategy_choice() -> None:
    limit = 5 * 1024 * 1024
    assert trees.choose(stream=True, entries=1, size=10**12, limit=limit) == "stream"
    assert trees.choose(stream=False, entries=100, size=1000, limit=limit) == "archive"
    assert trees.choose(stream=False, entries=3, size=1000, limit=limit) == "per-file"
    assert trees.choose(stream=False, entries=100, size=limit, limit=limit) == "per-file"


# ----------------------------------------------------------------------------- local archives


def _archive(path: Path, names: list[str]) -> None:
    source = path.parent / "content"
    source.mkdir()
    with tarfile.open(path, "w") as tar:
        for name in names:
            if name.endswith("/"):
                info = tarfile.TarInfo(name.rstrip("/"))
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                data = name.encode()
                info = tarfile.TarInfo(name)
                info.size = len(data)
                import io

                tar.addfile(info, io.BytesIO(data))


def test_extract_strips_components_but_not_dot(tmp_path) -> None:
    archive = tmp_path / "a.tar"
    _archive(archive, ["./", "./ab/", "./ab/cd/", "./ab/cd/f", "ab/g"])
    out = tmp_path / "out"
    out.mkdir()
    local_tar.extract(archive, out, strip_components=1)
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == ["cd", "cd/f", "g"]


def test_repack_drops_the_first_component_and_compresses(tmp_path) -> None:
    archive = tmp_path / "stage.tar"
    _archive(archive, ["stage/", "stage/a", "stage/sub/", "stage/sub/b"])
    target = tmp_path / "out.tar.xz"
    local_tar.repack(archive, target, compression="xz", strip_components=1)
    with tarfile.open(target, "r:xz") as tar:
        assert tar.getnames() == ["a", "sub", "sub/b"]


def test_build_measures_and_keeps_links(tmp_path) -> None:
    src = tmp_path / "src"
    (src / "d").mkdir(parents=True)
    (src / "d/f").write_text("12345")
    (src / "link").symlink_to("d/f")
    (src / "broken").symlink_to("nowhere")
    size = local_tar.measure(src, dereference=True)
    assert (size.files, size.directories, size.bytes) == (2, 1, 10)  # broken link left out
    archive = tmp_path / "a.tar"
    local_tar.build(src, archive, dereference=False)
    with tarfile.open(archive) as tar:
        assert tar.getmember("link").issym()
        assert sorted(tar.getnames()) == ["broken", "d", "d/f", "link"]


# ------------------------------------------------------------------------------ TLS settings


def test_the_default_tls_context_is_made_once_and_verifies_servers() -> None:
    context = default_tls_context()
    assert default_tls_context() is context  # shared by every client of the process
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname
