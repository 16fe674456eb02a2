"""/status: the systems this server fronts, and liveness."""

from __future__ import annotations

import math
from datetime import UTC, datetime

from fastapi import APIRouter

from ... import FIRECREST_API_VERSION, __version__
from ...config import SystemConfig
from ...errors import ServiceUnavailable
from ...health import HealthMonitor
from ...models.status import (
    DataOperationInfo,
    FileSystemInfo,
    LivenessResponse,
    Probing,
    ProbingService,
    SchedulerInfo,
    ServerInfo,
    ServiceHealth,
    ServiceType,
    SSHInfo,
    SSHTimeouts,
    System,
    SystemsResponse,
    UserInfoResponse,
)
from ...status.userinfo import user_info
from ..deps import PrincipalDep, RemoteDep, RuntimeDep
from . import compute, filesystem_extensions

router = APIRouter(prefix="/status", tags=["status"])

# Extensions beyond FirecREST v2 that this server offers; clients detect them here.
CAPABILITIES: list[str] = [*filesystem_extensions.CAPABILITIES, *compute.CAPABILITIES]


def _seconds(value: float) -> int:
    # FirecREST's timeouts are whole seconds; ours may be fractions: never advertise less.
    return math.ceil(value)


def _when(epoch: float | None) -> datetime | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, tz=UTC)


def _health(system: SystemConfig, health: HealthMonitor) -> list[ServiceHealth] | None:
    # As FirecREST v2: only probes that ran, and nothing (null) before the first run. A probe
    # that could not run because the login failed counts as unhealthy.
    reported = [
        ServiceHealth(
            service_type=r.service_type,
            last_checked=_when(r.last_checked),
            latency=r.latency,
            healthy=bool(r.healthy),
            message=r.message,
            path=r.path,
        )
        for r in health.services(system.name)
        if r.last_checked is not None
    ]
    return reported or None


def _probing(system: SystemConfig, health: HealthMonitor) -> Probing:
    timeout = ProbingService(timeout=_seconds(system.ssh.command_timeout))
    services: dict[ServiceType, ProbingService] = (
        {"ssh": timeout, "scheduler": timeout, "filesystem": timeout}
        if health.probed(system.name)
        else {}
    )
    return Probing(services=services, interval_check=_seconds(system.probe_interval))


def _describe(system: SystemConfig, health: HealthMonitor) -> System:
    ssh = system.ssh
    return System(
        name=system.name,
        ssh=SSHInfo(
            host=ssh.host,
            port=ssh.port,
            proxy_host=ssh.proxy.host if ssh.proxy else None,
            proxy_port=ssh.proxy.port if ssh.proxy else None,
            timeout=SSHTimeouts(
                # One timeout covers connecting and logging in here.
                connection=_seconds(ssh.connect_timeout),
                login=_seconds(ssh.connect_timeout),
                command_execution=_seconds(ssh.command_timeout),
                idle_timeout=_seconds(ssh.idle_timeout),
                keep_alive=_seconds(ssh.keepalive_interval),
            ),
        ),
        scheduler=SchedulerInfo(
            type=system.scheduler.type,
            version=system.scheduler.version,
            timeout=_seconds(system.scheduler.command_timeout),
        ),
        services_health=_health(system, health),
        probing=_probing(system, health),
        last_health_check=_when(health.last_run(system.name)),
        file_systems=[
            FileSystemInfo(
                path=fs.path, data_type=fs.data_type, default_work_dir=fs.default_work_dir
            )
            for fs in system.file_systems
        ],
        data_operation=DataOperationInfo(
            max_ops_file_size=system.data_operation.max_ops_file_size,
            datatransfer_jobs_directives=system.data_operation.transfer_job_directives,
        ),
        server=ServerInfo(
            version=__version__, api_version=FIRECREST_API_VERSION, capabilities=CAPABILITIES
        ),
    )


@router.get("/systems", response_model=SystemsResponse, response_model_by_alias=True)
async def list_systems(runtime: RuntimeDep, _principal: PrincipalDep) -> SystemsResponse:
    return SystemsResponse(systems=[_describe(s, runtime.health) for s in runtime.settings.systems])


@router.get("/{system_name}/userinfo", response_model=UserInfoResponse)
async def get_userinfo(remote: RemoteDep) -> UserInfoResponse:
    return await user_info(remote)


@router.get("/liveness", response_model=LivenessResponse, include_in_schema=True)
@router.get("/liveness/", include_in_schema=False)
async def liveness(runtime: RuntimeDep) -> LivenessResponse:
    # Unauthenticated, and not rate limited: load balancers and orchestrators poll it.
    if runtime.drain.draining:
        # Stopping (SIGTERM): still serving, but the balancer should send nothing new here.
        raise ServiceUnavailable("this replica is shutting down", retry_after=1)
    runs, age = runtime.health.liveness()
    return LivenessResponse(
        healthcheck_runs={
            name: datetime.fromtimestamp(epoch, tz=UTC) for name, epoch in runs.items()
        },
        last_update=age,
    )
