"""/status: the systems this server fronts, and liveness."""

from __future__ import annotations

from fastapi import APIRouter

from ... import FIRECREST_API_VERSION, __version__
from ...config import SystemConfig
from ...errors import ServiceUnavailable
from ...health import HealthMonitor
from ...models.status import (
    DataOperationInfo,
    FileSystemInfo,
    LivenessResponse,
    SchedulerInfo,
    ServerInfo,
    ServiceHealth,
    SSHInfo,
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


def _describe(system: SystemConfig, health: HealthMonitor) -> System:
    return System(
        name=system.name,
        ssh=SSHInfo(host=system.ssh.host, port=system.ssh.port),
        scheduler=SchedulerInfo(type=system.scheduler.type, version=system.scheduler.version),
        file_systems=[
            FileSystemInfo(
                path=fs.path, data_type=fs.data_type, default_work_dir=fs.default_work_dir
            )
            for fs in system.file_systems
        ],
        data_operation=DataOperationInfo(
            max_ops_file_size=system.data_operation.max_ops_file_size,
            transfer_job_directives=system.data_operation.transfer_job_directives,
        ),
        services_health=[
            ServiceHealth(
                service_type=r.service_type,
                last_checked=r.last_checked,
                latency=r.latency,
                healthy=r.healthy,
                message=r.message,
                path=r.path,
            )
            for r in health.services(system.name)
        ],
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
    return LivenessResponse(healthcheck_runs=runs, last_update=age)
