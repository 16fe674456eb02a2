from datetime import datetime
from typing import Literal

from pydantic import BaseModel

from .base import CamelModel

# The services a system's health probes check.
ServiceType = Literal["ssh", "scheduler", "filesystem"]


class ServiceHealth(CamelModel):
    """One probe's last result; only probes that ran are reported, as in FirecREST v2."""

    service_type: ServiceType
    last_checked: datetime | None = None
    latency: float | None = None
    healthy: bool
    message: str | None = None
    path: str | None = None  # filesystem probes only


class SchedulerInfo(CamelModel):
    type: Literal["slurm"]
    # Always "ssh": Slurm's commands over SSH; FirecREST's "rest"/"hybrid" use slurmrestd.
    connection_mode: Literal["ssh"] = "ssh"
    version: str
    api_url: str | None = None
    api_version: str | None = None
    timeout: int  # seconds, Slurm commands


class SSHTimeouts(CamelModel):
    """Whole seconds, rounded up (FirecREST's are integers; ours may be fractions)."""

    connection: int
    login: int
    command_execution: int
    idle_timeout: int
    keep_alive: int


class SSHInfo(CamelModel):
    host: str
    port: int
    proxy_host: str | None = None
    proxy_port: int | None = None
    timeout: SSHTimeouts


class ProbingService(CamelModel):
    timeout: int | None = None


class Probing(CamelModel):
    # Keys are the probed services (ssh, scheduler, filesystem); none when not probed.
    services: dict[ServiceType, ProbingService] | None = None
    interval_check: int


class FileSystemInfo(CamelModel):
    path: str
    data_type: Literal["users", "store", "archive", "apps", "scratch", "project"]
    default_work_dir: bool


class DataOperationInfo(BaseModel):
    """snake_case keys on the wire: FirecREST v2's model here is not camelCased."""

    max_ops_file_size: int
    datatransfer_jobs_directives: list[str]
    # FirecREST describes its external object store here; this server is its own S3 staging
    # endpoint (see staging/), so there is none to describe.
    data_transfer: None = None


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
    services_health: list[ServiceHealth] | None = None  # None until the first probe ran
    probing: Probing
    last_health_check: datetime | None = None
    file_systems: list[FileSystemInfo]
    data_operation: DataOperationInfo
    server: ServerInfo


class SystemsResponse(CamelModel):
    systems: list[System]


class LivenessResponse(CamelModel):
    healthcheck_runs: dict[str, datetime]  # system -> when it was last probed
    last_update: int  # age in seconds of the oldest probe; 0 before any


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
