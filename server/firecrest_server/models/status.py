from typing import Any

from .base import CamelModel


class ServiceHealth(CamelModel):
    service_type: str  # ssh | scheduler | filesystem
    last_checked: float | None = None
    latency: float | None = None
    healthy: bool | None = None
    message: str | None = None
    path: str | None = None


class SchedulerInfo(CamelModel):
    type: str
    version: str


class SSHInfo(CamelModel):
    host: str
    port: int


class FileSystemInfo(CamelModel):
    path: str
    data_type: str
    default_work_dir: bool


class DataOperationInfo(CamelModel):
    max_ops_file_size: int
    transfer_job_directives: list[str]


class ServerInfo(CamelModel):
    """This server's own identity (an addition to FirecREST's shape; clients ignore it)."""

    name: str = "firecrest-server"
    version: str
    api_version: str
    capabilities: list[str]


class System(CamelModel):
    name: str
    ssh: SSHInfo
    scheduler: SchedulerInfo
    file_systems: list[FileSystemInfo]
    data_operation: DataOperationInfo
    services_health: list[ServiceHealth] | None = None
    server: ServerInfo


class SystemsResponse(CamelModel):
    systems: list[System]


class LivenessResponse(CamelModel):
    healthcheck_runs: dict[str, Any]
    last_update: int


class PosixIdentity(CamelModel):
    id: str  # a string on the wire, as in FirecREST
    name: str


class Account(CamelModel):
    name: str
    default: bool


class UserInfoResponse(CamelModel):
    user: PosixIdentity
    group: PosixIdentity
    groups: list[PosixIdentity]
    # None when the scheduler's accounting could not be asked (no sacctmgr, no slurmdbd).
    accounts: list[Account] | None = None
