"""AiiDA scheduler ``firecrest``: Slurm jobs through a FirecREST v2 API.

It reuses aiida-core's Slurm plugin for what does not touch the cluster (the ``#SBATCH`` header,
job resources, and ``parse_output``'s out-of-memory / walltime / node-failure detection) and
replaces every shell command with an API request made by the ``firecrest`` transport's client:

- ``submit_job``: ``POST /compute/{system}/jobs`` with the script already uploaded;
- ``get_jobs``: ONE ``GET /compute/{system}/jobs?time_window=1h&job_ids=...`` naming the jobs
  AiiDA asks about (up to 500 per request), then a ``GET /compute/{system}/jobs/{id}`` only
  for requested jobs that listing missed. A server with the ``compute.jobs.ids`` extension
  lists just the named jobs, so a poll costs accounting (``sacct``) the jobs being tracked,
  not the user's whole recent history: with 600 jobs in the last hour, the window listing
  cost slurmdbd and MariaDB ~7x the CPU of one naming 100 jobs, and moved 340 KB. A plain
  FirecREST ignores ``job_ids`` and lists the shortest window (queued, running and ended
  within the hour); the jobs wanted are picked out of it and those that ended earlier are
  asked for by id. A requested job the server answers "Job not found" for is asked again a
  few times before it is taken as gone: AiiDA reads a missing job as finished, and a plain
  FirecREST can briefly not know a job it has just accepted (our server never does). When
  the listing itself fails (a 5xx, 400 or 413 after the client's retries, or an answer that is not
  a list of jobs, as FirecREST v2 gives when one job in the window has a hostile name), every
  requested job is asked for by id instead, so calculations keep running;
- ``get_detailed_job_info``: the job's final state in the shape ``parse_output`` reads;
- ``kill_job``: ``DELETE /compute/{system}/jobs/{id}``; never raises.

The scheduler API is synchronous; the calls run on the engine's event loop through the
transport's ``run_command_blocking``.
"""

from __future__ import annotations

import asyncio
import datetime
from typing import Any, Literal, overload

from aiida.common.exceptions import FeatureNotAvailable
from aiida.schedulers import SchedulerError
from aiida.schedulers.datastructures import JobInfo, JobState
from aiida.schedulers.plugins.slurm import SlurmScheduler

from .client import FirecrestClient
from .client.errors import FirecrestError, JobNotFoundError
from .client.slurm import HELD_REASONS, JOB_STATES, Phase, first_state_name
from .transport import FirecrestTransport

# The phases of Slurm's job states (``client.slurm``) as AiiDA's job states.
_AIIDA_STATES = {
    Phase.QUEUED: JobState.QUEUED,
    Phase.HELD: JobState.QUEUED_HELD,
    Phase.RUNNING: JobState.RUNNING,
    Phase.SUSPENDED: JobState.SUSPENDED,
    Phase.FINISHED: JobState.DONE,
}
# Re-asks for a requested job the server does not know (seconds to wait before each).
NOT_FOUND_RETRIES = (0.5, 1.0, 2.0)
# The listing's look back for ended jobs (FirecREST API >= 2.6; older servers ignore it): the
# shortest; the few tracked jobs that ended earlier are asked for one by one.
LISTING_WINDOW = "1h"
# Job ids named per listing: 500 keep the request line a few KB (servers limit it to 8-16 KB)
# and below our server's 1000.
IDS_PER_LISTING = 500


def aiida_state(slurm_state: str) -> JobState:
    """AiiDA's job state for a bare Slurm state name (UNDETERMINED for one Slurm does not
    document)."""
    phase = JOB_STATES.get(slurm_state)
    return JobState.UNDETERMINED if phase is None else _AIIDA_STATES[phase]


def _timestamp(epoch: Any) -> datetime.datetime | None:
    if not isinstance(epoch, int | float) or epoch <= 0:
        return None
    return datetime.datetime.fromtimestamp(epoch, tz=datetime.UTC)


def job_info(job: dict[str, Any]) -> JobInfo:
    """AiiDA's JobInfo from a FirecREST v2 job record."""
    info = JobInfo()
    status = job.get("status") or {}
    times = job.get("time") or {}
    state = first_state_name(job)
    info.job_id = str(job["jobId"])
    info.title = job.get("name") or ""
    info.job_substate = state
    info.job_state = aiida_state(state)
    reason = status.get("stateReason") or ""
    info.annotation = reason
    if info.job_state == JobState.QUEUED and any(r in reason for r in HELD_REASONS):
        info.job_state = JobState.QUEUED_HELD
    if status.get("exitCode") is not None:
        info.exit_status = status["exitCode"]
    if status.get("interruptSignal"):
        info.terminating_signal = status["interruptSignal"]
    # aiida-core types these fields without None, although an unknown one is None (its own
    # note on JobInfo): a value the record lacks is stored as None, as AiiDA's plugins do.
    info.job_owner = job.get("user")  # type: ignore[assignment]
    info.num_machines = job.get("allocationNodes") or None  # type: ignore[assignment]
    if job.get("nodes"):
        info.allocated_machines_raw = job["nodes"]
    info.queue_name = job.get("partition") or None  # type: ignore[assignment]
    info.account = job.get("account")  # type: ignore[assignment]
    if times.get("elapsed") is not None:
        info.wallclock_time_seconds = times["elapsed"]
    if times.get("limit") is not None:
        info.requested_wallclock_time_seconds = times["limit"]
    if (start := _timestamp(times.get("start"))) is not None:
        info.dispatch_time = start
    if (end := _timestamp(times.get("end"))) is not None and info.job_state == JobState.DONE:
        info.finish_time = end
    info.raw_data = job
    return info


def detailed_job_info(job: dict[str, Any]) -> dict[str, str | int]:
    """A job record as ``{retval, stdout, stderr}`` of an ``sacct --parsable`` call: a header
    line and one line of values, which is what ``SlurmScheduler.parse_output`` reads."""
    status, times = job.get("status") or {}, job.get("time") or {}
    fields = {
        "JobID": str(job["jobId"]),
        "JobName": job.get("name") or "",
        "State": first_state_name(job),
        "ExitCode": f"{status.get('exitCode') or 0}:{status.get('interruptSignal') or 0}",
        "Reason": status.get("stateReason") or "",
        "Partition": job.get("partition") or "",
        "Account": job.get("account") or "",
        "NNodes": str(job.get("allocationNodes") or ""),
        "NodeList": job.get("nodes") or "",
        "ElapsedRaw": str(times.get("elapsed") or ""),
        "TimelimitRaw": str(times.get("limit") or ""),
        "Start": str(times.get("start") or ""),
        "End": str(times.get("end") or ""),
    }
    header = "|".join(fields)
    values = "|".join(str(v).replace("|", " ") for v in fields.values())
    return {"retval": 0, "stdout": f"{header}\n{values}\n", "stderr": ""}


def _listing_broken(exc: BaseException) -> bool:
    """Whether a failed listing is worth replacing by per-job lookups: the server failed on it
    (5xx, after the client's retries) or refused it (400; 413: an answer too large to send),
    or its answer was not a list of jobs. Not for authentication, permission or network
    failures: lookups would fail alike."""
    if isinstance(exc, FirecrestError):
        status = exc.status_code
        return status is not None and (status >= 500 or status in (400, 413))
    # response.json() of a non-JSON body, .get of a non-object, a record without "jobId".
    return isinstance(exc, ValueError | AttributeError | KeyError | TypeError)


class FirecrestScheduler(SlurmScheduler):
    """Slurm through a FirecREST v2 API; to be paired with the ``firecrest`` transport."""

    _logger = SlurmScheduler._logger.getChild("firecrest")
    # The engine then hands over the ids of every job it tracks in one get_jobs call, which
    # costs one listing request; the ids let get_jobs re-check the few that listing missed.
    _features = {"can_query_by_user": False}

    # ------------------------------------------------------------------------------ plumbing

    def _firecrest(self) -> FirecrestTransport:
        transport = self.transport
        if not isinstance(transport, FirecrestTransport):
            raise SchedulerError("the firecrest scheduler needs the firecrest transport")
        return transport

    # ------------------------------------------------------------------------------- submit

    def submit_job(self, working_directory: str, filename: str) -> str:
        script = f"{working_directory.rstrip('/')}/{filename}"
        transport = self._firecrest()
        try:
            job_id: str = transport.run_command_blocking(
                transport.client.submit_job,
                transport.compute_resource,
                working_directory=working_directory,
                script_path=script,
            )
            return job_id
        except FirecrestError as exc:
            raise SchedulerError(f"submitting {script} failed: {exc}") from exc

    # -------------------------------------------------------------------------------- query

    # The same overloads as aiida-core's Scheduler.get_jobs: the result's shape follows as_dict.
    @overload
    def get_jobs(
        self,
        jobs: list[str] | None = None,
        user: str | None = None,
        as_dict: Literal[False] = False,
    ) -> list[JobInfo]: ...

    @overload
    def get_jobs(
        self,
        jobs: list[str] | None = None,
        user: str | None = None,
        as_dict: Literal[True] = ...,
    ) -> dict[str, JobInfo]: ...

    def get_jobs(
        self,
        jobs: list[str] | None = None,
        user: str | None = None,
        as_dict: bool = False,
    ) -> list[JobInfo] | dict[str, JobInfo]:
        transport = self._firecrest()
        try:
            records = transport.run_command_blocking(self._collect, [str(j) for j in jobs or []])
        except FirecrestError as exc:
            raise SchedulerError(f"listing jobs failed: {exc}") from exc
        infos = [job_info(record) for record in records]
        if as_dict:
            return {info.job_id: info for info in infos}
        return infos

    async def _collect(self, wanted: list[str]) -> list[dict[str, Any]]:
        transport = self._firecrest()
        client, system = transport.client, transport.compute_resource
        try:
            listed = await self._listing(client, system, wanted)
        except Exception as exc:
            if not wanted or not _listing_broken(exc):
                raise
            # One hostile or corrupt record in the user's accounting window can break the
            # listing for every job (FirecREST v2 answers 500); AiiDA pauses a calculation
            # after 5 failed updates. The jobs AiiDA tracks can still be asked for by id.
            self.logger.warning(
                f"listing jobs failed ({exc!r:.200}); asking for {len(wanted)} job(s) by id"
            )
            listed = {}
        missing = [job_id for job_id in wanted if job_id not in listed]
        found = await asyncio.gather(*(self._one(client, system, job_id) for job_id in missing))
        for job in (j for j in found if j is not None):
            listed[str(job["jobId"])] = job
        if wanted:
            return [listed[job_id] for job_id in wanted if job_id in listed]
        return list(listed.values())

    async def _listing(
        self, client: FirecrestClient, system: str, wanted: list[str]
    ) -> dict[str, Any]:
        """The user's jobs by id: the ``wanted`` ones where the server lists by id, else the
        recent window."""
        chunks = [wanted[i : i + IDS_PER_LISTING] for i in range(0, len(wanted), IDS_PER_LISTING)]
        first = await client.list_jobs(
            system, time_window=LISTING_WINDOW, job_ids=chunks[0] if chunks else None
        )
        listed = {str(job["jobId"]): job for job in first}
        if len(chunks) > 1 and listed.keys() <= set(chunks[0]):
            # The server listed by id (a plain FirecREST lists the window whatever is named,
            # and once is enough): ask for the rest of the ids together.
            rest = await asyncio.gather(
                *(
                    client.list_jobs(system, time_window=LISTING_WINDOW, job_ids=chunk)
                    for chunk in chunks[1:]
                )
            )
            listed.update((str(job["jobId"]), job) for jobs in rest for job in jobs)
        return listed

    async def _one(
        self, client: FirecrestClient, system: str, job_id: str
    ) -> dict[str, Any] | None:
        for delay in (*NOT_FOUND_RETRIES, None):
            try:
                records = await client.get_job(system, job_id)
            except JobNotFoundError:
                records = []
            if records:
                return records[0]
            if delay is None:
                return None  # gone: AiiDA takes a job it is not told about as finished
            await asyncio.sleep(delay)
        return None

    def get_detailed_job_info(self, job_id: str) -> dict[str, str | int]:
        """The job's final Slurm record, in the ``sacct --parsable`` shape that the Slurm
        plugin's ``parse_output`` reads (so out-of-memory and walltime failures are told
        apart)."""
        transport = self._firecrest()
        try:
            records: list[dict[str, Any]] = transport.run_command_blocking(
                transport.client.get_job, transport.compute_resource, str(job_id)
            )
        except FirecrestError as exc:
            raise FeatureNotAvailable(f"no detailed information for job {job_id}: {exc}") from exc
        if not records:
            raise FeatureNotAvailable(f"no detailed information for job {job_id}")
        return detailed_job_info(records[0])

    # --------------------------------------------------------------------------------- kill

    def kill_job(self, jobid: str) -> bool:
        try:
            transport = self._firecrest()
            transport.run_command_blocking(
                transport.client.cancel_job, transport.compute_resource, str(jobid)
            )
        except (FirecrestError, SchedulerError) as exc:
            self.logger.warning(f"cancelling job {jobid} failed: {exc}")
            return False
        return True
