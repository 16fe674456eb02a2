from typing import Literal

from pydantic import AliasChoices, Field

from .base import CamelModel


class JobDescription(CamelModel):
    """A batch job to submit; field names follow FirecREST v2 (and slurmrestd's job_desc)."""

    name: str | None = None
    account: str | None = None
    reservation: str | None = None
    partition: str | None = None
    working_directory: str = Field(
        validation_alias=AliasChoices(
            "workingDirectory",
            "working_directory",
            "currentWorkingDirectory",
            "current_working_directory",
        )
    )
    standard_input: str | None = None
    standard_output: str | None = None
    standard_error: str | None = None
    env: dict[str, str] | list[str] | None = Field(
        default=None, validation_alias=AliasChoices("env", "environment")
    )
    constraints: str | None = None
    script: str | None = None
    script_path: str | None = None


class SubmitRequest(CamelModel):
    job: JobDescription


class SubmitResponse(CamelModel):
    job_id: str


class JobStatus(CamelModel):
    state: str
    state_reason: str | None = None
    exit_code: int | None = None
    interrupt_signal: int | None = None


class JobTime(CamelModel):
    elapsed: int | None = None
    start: int | None = None
    end: int | None = None
    suspended: int | None = None
    limit: int | None = None


class JobTask(CamelModel):
    id: str
    name: str
    status: JobStatus
    time: JobTime


class Job(CamelModel):
    job_id: str
    name: str
    status: JobStatus
    tasks: list[JobTask] | None = None
    time: JobTime
    account: str | None = None
    allocation_nodes: int
    cluster: str
    group: str | None = None
    nodes: str
    partition: str
    kill_request_user: str | None = None
    user: str | None = None
    working_directory: str
    priority: int | None = None


class JobsResponse(CamelModel):
    jobs: list[Job]


class JobMetadata(CamelModel):
    job_id: str
    script: str | None = None
    standard_input: str | None = None
    standard_output: str | None = None
    standard_error: str | None = None


class JobMetadataResponse(CamelModel):
    jobs: list[JobMetadata]


class AttachRequest(CamelModel):
    command: str


TimeWindow = Literal["1h", "8h", "24h", "3d", "7d"]


class Node(CamelModel):
    sockets: int | None = None
    cores: int | None = None
    threads: int | None = None
    cpus: int
    cpu_load: float | None = None
    free_memory: int | None = None
    features: str | list[str] | None = None
    name: str
    address: str | None = None
    hostname: str | None = None
    state: list[str]
    partitions: list[str] | None = None
    weight: int | None = None
    alloc_memory: int | None = None
    alloc_cpus: int | None = None
    idle_cpus: int | None = None


class NodesResponse(CamelModel):
    nodes: list[Node]


class Partition(CamelModel):
    name: str
    cpus: int | None = None
    total_nodes: int | None = None
    partition: str | list[str]


class PartitionsResponse(CamelModel):
    partitions: list[Partition]


class Reservation(CamelModel):
    name: str
    node_list: str
    end_time: int
    start_time: int
    features: str | None = None
    state: str | None = None


class ReservationsResponse(CamelModel):
    reservations: list[Reservation]
