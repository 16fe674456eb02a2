"""The staging operations behind /transfer/upload, /transfer/download and the staging URLs.

Upload: a staging directory ``<work dir>/.firecrest-staging/<id>`` (0700) holds ``data``, which
each part is written into at its own offset, a ``part-NNNNN`` file per received part holding its
ETag, and ``complete`` once the client's CompleteMultipartUpload matched every part. The
transfer job waits for ``complete``, moves ``data`` onto the target (one rename: readers never
see half a file) and removes the directory. Download: the job checks the file is readable; the
signed URL then streams it straight from the cluster, with Range support.
"""

from __future__ import annotations

import contextlib
import hashlib
import posixpath
import uuid
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass

import asyncssh
from defusedxml import ElementTree

from ..cluster import CheckedPath, Remote, sftp_request
from ..cluster.failures import sftp_error
from ..cluster.sftp import is_dir, sftp_text
from ..errors import ApiError, BadRequest, PayloadTooLarge, RequestTimeout
from ..filesystem import transfer_jobs
from ..filesystem.special import refuse_special
from ..models.transfer import S3TransferDirectives, TransferJob
from .logins import StagingLogin, staging_login
from .sealing import KeySealer
from .tokens import StagingGrant, UrlSigner

STAGING_DIR = ".firecrest-staging"
UPLOAD_DONE = "Multipart file upload successfully completed"
DOWNLOAD_READY = "File was successfully staged for download"
MAX_COMPLETE_BODY = 4 * 1024 * 1024  # 10,000 parts of XML fit easily
# S3's limit on the parts of one upload, and the highest part number the staging route takes.
MAX_PARTS = 10_000

# $1 staging directory, $2 target path, $3 seconds to wait for the client's last part.
_WAIT_AND_MOVE = (
    "deadline=$(( $(date +%s) + $3 )); "
    'until [ -e "$1/complete" ]; do '
    'if [ "$(date +%s)" -ge "$deadline" ]; then '
    'echo "the upload was not completed in time" >&2; rm -rf -- "$1"; exit 1; fi; '
    "sleep 1; done; "
    'mv -f -- "$1/data" "$2"; moved=$?; rm -rf -- "$1"; exit $moved'
)


class NoSuchUpload(ApiError):
    status_code = 404


@dataclass(frozen=True)
class Staging:
    """What making a staging URL takes besides the caller: the signer, the sealer of keys
    (key_service mode), and the URL the server is reached at."""

    signer: UrlSigner
    sealer: KeySealer
    base_url: str


def part_range(grant: StagingGrant, number: int) -> tuple[int, int]:
    """(offset, length) of part ``number`` (1-based)."""
    if not 1 <= number <= grant.parts:
        raise BadRequest(f"part number must be between 1 and {grant.parts}")
    offset = (number - 1) * grant.part_size
    return offset, min(grant.part_size, grant.size - offset)


def upload_parts(size: int, part_size: int) -> int:
    """How many parts an upload of ``size`` bytes takes; 400 for a size this server cannot take.

    Checked before anything is created: the answer lists one URL per part, so an unchecked
    size would have the server build an unbounded list (a 10**30 byte "file" is 6 * 10**22 URLs).
    """
    if size < 0:
        raise BadRequest("`fileSize` must not be negative")
    parts = max(1, -(-size // part_size))  # integer ceiling: no float overflow for huge sizes
    if parts > MAX_PARTS:
        raise BadRequest(
            f"`fileSize` must be at most {MAX_PARTS * part_size} bytes "
            f"({MAX_PARTS} parts of {part_size} bytes)"
        )
    return parts


def _wait_argv(staging: str, target: str, timeout: float) -> list[str]:
    return ["bash", "-c", _WAIT_AND_MOVE, "bash", staging, target, str(int(timeout))]


async def create_upload(
    remote: Remote,
    target: CheckedPath,
    size: int,
    signer: UrlSigner,
    base_url: str,
    account: str | None,
    login: StagingLogin,
    uid: int | None = None,
) -> tuple[TransferJob, S3TransferDirectives]:
    system = remote.system
    part_size = system.data_operation.staging_part_size
    parts = upload_parts(size, part_size)
    parent = posixpath.dirname(target)
    await remote.sftp(parent, lambda sftp: sftp.stat(parent))  # 404 before any job is queued
    staging = (
        f"{transfer_jobs.work_directory(system, remote.username)}/{STAGING_DIR}/{uuid.uuid4().hex}"
    )

    async def prepare(sftp: asyncssh.SFTPClient) -> None:
        await sftp.makedirs(posixpath.dirname(staging), exist_ok=True)
        await sftp.mkdir(staging, asyncssh.SFTPAttrs(permissions=0o700))
        async with sftp.open(f"{staging}/data", "wb"):
            pass

    await remote.sftp(staging, prepare)
    grant = StagingGrant(
        kind="upload",
        user=remote.username,
        system=system.name,
        path=staging,
        size=size,
        part_size=part_size,
        parts=parts,
        sealed_key=login.sealed_key,
        uid=uid,
    )
    token = signer.sign(grant, login.ttl)
    job = await transfer_jobs.submit(
        remote,
        "IngressFileTransfer",
        [_wait_argv(staging, target, system.data_operation.staging_upload_timeout)],
        UPLOAD_DONE,
        account,
    )
    base = f"{base_url.rstrip('/')}/staging/{token}"
    directives = S3TransferDirectives(
        parts_upload_urls=[f"{base}/parts/{n}" for n in range(1, grant.parts + 1)],
        complete_upload_url=f"{base}/complete",
        max_part_size=part_size,
    )
    return job, directives


async def write_part(
    remote: Remote, grant: StagingGrant, number: int, body: AsyncIterator[bytes]
) -> str:
    """Write part ``number`` at its offset; its ETag (the MD5 of its bytes, as in S3).

    Each SFTP request is bounded by the SFTP deadline on its own (the body may be slow).
    """
    offset, length = part_range(grant, number)
    data_path = f"{grant.path}/data"
    digest = hashlib.md5()  # noqa: S324 - S3's ETag definition, not a security measure
    received = 0
    deadline = remote.sftp_deadline
    async with remote.sftp_session() as sftp:
        try:
            opening = sftp.open(data_path, asyncssh.FXF_WRITE, encoding=None)
            file = await sftp_request(opening, deadline, data_path)
            try:
                async for chunk in body:
                    if received + len(chunk) > length:
                        raise BadRequest(f"part {number} must be {length} bytes")
                    await sftp_request(file.write(chunk, offset + received), deadline, data_path)
                    digest.update(chunk)
                    received += len(chunk)
            except RequestTimeout:
                raise  # the channel is hung: closing the file would wait behind it
            except BaseException:
                with contextlib.suppress(Exception):
                    await sftp_request(file.close(), deadline, data_path)
                raise
            await sftp_request(file.close(), deadline, data_path)
        except asyncssh.SFTPNoSuchFile:
            raise NoSuchUpload("The upload does not exist (expired or completed)") from None
        except asyncssh.SFTPError as exc:
            raise sftp_error(exc, data_path) from None
        if received != length:
            raise BadRequest(f"part {number} must be {length} bytes, got {received}")
        etag = f'"{digest.hexdigest()}"'

        async def mark() -> None:
            async with await sftp.open(f"{grant.path}/part-{number:05d}", "w") as marker:
                await marker.write(etag)

        try:
            await sftp_request(mark(), deadline, grant.path)
        except asyncssh.SFTPError as exc:
            raise sftp_error(exc, grant.path) from None
    return etag


async def read_complete_request(body: AsyncIterable[bytes]) -> bytes:
    """The CompleteMultipartUpload document, read as it arrives and refused (413) as soon as it
    passes MAX_COMPLETE_BODY, so an oversized one is never held whole in memory."""
    document = bytearray()
    async for chunk in body:
        document += chunk
        if len(document) > MAX_COMPLETE_BODY:
            raise PayloadTooLarge(
                f"CompleteMultipartUpload document exceeds {MAX_COMPLETE_BODY} bytes"
            )
    return bytes(document)


def parse_complete_request(body: bytes) -> dict[int, str]:
    """PartNumber -> ETag from an S3 CompleteMultipartUpload document (namespace optional)."""
    if len(body) > MAX_COMPLETE_BODY:
        raise BadRequest("CompleteMultipartUpload document too large")
    try:
        root = ElementTree.fromstring(body)
    except Exception:  # defusedxml raises several types for malformed or hostile XML
        raise BadRequest("Malformed CompleteMultipartUpload document") from None
    parts: dict[int, str] = {}
    for element in root.iter():
        if element.tag.rsplit("}", 1)[-1] != "Part":
            continue
        fields = {child.tag.rsplit("}", 1)[-1]: (child.text or "").strip() for child in element}
        try:
            parts[int(fields["PartNumber"])] = fields["ETag"].strip('"')
        except (KeyError, ValueError):
            raise BadRequest("Each Part needs a PartNumber and an ETag") from None
    return parts


async def complete_upload(remote: Remote, grant: StagingGrant, body: bytes) -> None:
    claimed = parse_complete_request(body)

    async def finish(sftp: asyncssh.SFTPClient) -> None:
        try:
            names = {sftp_text(n.filename) for n in await sftp.readdir(grant.path)}
        except asyncssh.SFTPNoSuchFile:
            raise NoSuchUpload("The upload does not exist (expired or completed)") from None
        expected = set(range(1, grant.parts + 1))
        received = {int(n[5:]) for n in names if n.startswith("part-") and n[5:].isdigit()}
        if received != expected or set(claimed) != expected:
            missing = sorted(expected - received)
            raise BadRequest(f"Parts missing or not listed: {missing[:20]}")
        for number in sorted(expected):
            async with await sftp.open(f"{grant.path}/part-{number:05d}", "r") as marker:
                stored = (await marker.read()).strip('"')
            if stored != claimed[number]:
                raise BadRequest(f"ETag of part {number} does not match")
        async with await sftp.open(f"{grant.path}/complete", "w"):
            pass

    await remote.sftp(grant.path, finish)


async def create_download(
    remote: Remote,
    source: CheckedPath,
    signer: UrlSigner,
    base_url: str,
    account: str | None,
    login: StagingLogin,
    uid: int | None = None,
) -> tuple[TransferJob, S3TransferDirectives]:
    system = remote.system
    attrs = await remote.sftp(source, lambda sftp: sftp.stat(source))
    # The job's `head --bytes=0` would block on a FIFO; the staged download would then hang.
    refuse_special(source, attrs.permissions)
    if is_dir(attrs):
        raise BadRequest(f"{source}: Is a directory")
    job = await transfer_jobs.submit(
        remote,
        "OutgressFileTransfer",
        [["head", "--bytes=0", "--", source]],  # fails the job if the file cannot be read
        DOWNLOAD_READY,
        account,
    )
    grant = StagingGrant(
        kind="download",
        user=remote.username,
        system=system.name,
        path=source,
        size=attrs.size or 0,
        sealed_key=login.sealed_key,
        uid=uid,
    )
    token = signer.sign(grant, login.ttl)
    url = f"{base_url.rstrip('/')}/staging/{token}/object"
    return job, S3TransferDirectives(download_url=url)


async def start_upload(
    remote: Remote,
    target: CheckedPath,
    size: int,
    staging: Staging,
    account: str | None,
    uid: int | None = None,
) -> tuple[TransferJob, S3TransferDirectives]:
    """A large upload to ``target``: the staging URLs for its parts, and the job that moves
    the assembled file into place."""
    upload_parts(size, remote.system.data_operation.staging_part_size)
    # Before anything is created on the cluster: a key service that refuses leaves nothing.
    login = await staging_login(remote, remote.credentials, staging.sealer)
    return await create_upload(
        remote, target, size, staging.signer, staging.base_url, account, login, uid=uid
    )


async def start_download(
    remote: Remote,
    source: CheckedPath,
    staging: Staging,
    account: str | None,
    uid: int | None = None,
) -> tuple[TransferJob, S3TransferDirectives]:
    """A large download of ``source``: the job that checks it, and the URL to fetch it from."""
    login = await staging_login(remote, remote.credentials, staging.sealer)
    return await create_download(
        remote, source, staging.signer, staging.base_url, account, login, uid=uid
    )
