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
    path: str = Field(validation_alias=AliasChoices("path", "sourcePath", "source_path"))
    target_path: str
    match_pattern: str | None = None
    dereference: bool = False
    compression: Compression = "gzip"
    account: str | None = None


class TransferExtractRequest(CamelModel):
    path: str = Field(validation_alias=AliasChoices("path", "sourcePath", "source_path"))
    target_path: str
    compression: Compression = "gzip"
    account: str | None = None


class TransferDirectives(CamelModel):
    transfer_method: str = "s3"
    file_size: int | None = None


class TransferUploadRequest(CamelModel):
    path: str = Field(validation_alias=AliasChoices("path", "targetPath", "target_path"))
    transfer_directives: TransferDirectives = TransferDirectives()
    account: str | None = None


class TransferDownloadRequest(CamelModel):
    path: str = Field(validation_alias=AliasChoices("path", "sourcePath", "source_path"))
    transfer_directives: TransferDirectives = TransferDirectives()
    account: str | None = None


class StagedTransferResponse(CamelModel):
    transfer_job: TransferJob
    # S3 staging: partsUploadUrls, completeUploadUrl, maxPartSize (upload) or downloadUrl.
    transfer_directives: dict
