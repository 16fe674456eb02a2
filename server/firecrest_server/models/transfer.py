from typing import Literal

from pydantic import AliasChoices, Field

from .base import CamelModel
from .filesystem import Compression


class TransferJobLogs(CamelModel):
    output_log: str
    error_log: str


class TransferJob(CamelModel):
    job_id: str
    system: str
    working_directory: str
    logs: TransferJobLogs


class TransferJobResponse(CamelModel):
    transfer_job: TransferJob


_SOURCE = AliasChoices("sourcePath", "source_path", "path")


class TransferCopyRequest(CamelModel):
    source_path: str = Field(validation_alias=_SOURCE)
    target_path: str
    account: str | None = None
    dereference: bool = False


class TransferMoveRequest(CamelModel):
    source_path: str = Field(validation_alias=_SOURCE)
    target_path: str
    account: str | None = None


class TransferCompressRequest(CamelModel):
    path: str = Field(validation_alias=AliasChoices("sourcePath", "source_path", "path"))
    target_path: str
    match_pattern: str | None = None
    dereference: bool = False
    compression: Compression = "gzip"
    account: str | None = None


class TransferExtractRequest(CamelModel):
    path: str = Field(validation_alias=AliasChoices("sourcePath", "source_path", "path"))
    target_path: str
    compression: Compression = "gzip"
    account: str | None = None


class TransferDirectives(CamelModel):
    transfer_method: str = "s3"
    file_size: int | None = None


class TransferUploadRequest(CamelModel):
    # The target on the cluster. FirecREST v2 reads it as `sourcePath` (its own example sends
    # that), pyfirecrest sends `path`; `targetPath` is accepted too.
    path: str = Field(
        validation_alias=AliasChoices(
            "sourcePath", "source_path", "path", "targetPath", "target_path"
        )
    )
    transfer_directives: TransferDirectives = TransferDirectives()
    account: str | None = None


class TransferDownloadRequest(CamelModel):
    path: str = Field(validation_alias=AliasChoices("sourcePath", "source_path", "path"))
    transfer_directives: TransferDirectives = TransferDirectives()
    account: str | None = None


class S3TransferDirectives(CamelModel):
    """Where to send or fetch the bytes: this server's own S3-compatible staging URLs.

    As in FirecREST v2, an upload sets the first three and a download ``downloadUrl``; the
    others are null."""

    transfer_method: Literal["s3"] = "s3"
    parts_upload_urls: list[str] | None = None
    complete_upload_url: str | None = None
    max_part_size: int | None = None
    download_url: str | None = None


class StagedTransferResponse(CamelModel):
    transfer_job: TransferJob
    transfer_directives: S3TransferDirectives
