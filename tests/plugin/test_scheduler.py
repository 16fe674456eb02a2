"""The `firecrest` scheduler against the real Slurm, through the server, as the engine uses it."""

from __future__ import annotations

import time
import uuid

import pytest
from aiida.common.datastructures import CodeRunMode
from aiida.engine import CalcJob
from aiida.schedulers.datastructures import JobState, JobTemplate, JobTemplateCodeInfo

from aiida_firecrest.scheduler import FirecrestScheduler, detailed_job_info, job_info
from firecrest_dev.info import StackInfo

pytestmark = pytest.mark.stack


def _template(workdir: str, command: list[str], **settings) -> JobTemplate:
    template = JobTemplate()
    template.job_resource = FirecrestScheduler.create_job_resource(
        num_machines=1, num_mpiprocs_per_machine=1
    )
    template.job_name = "aiida-firecrest-test"
    template.working_directory = workdir
    template.sched_output_path = "_scheduler-stdout.txt"
    template.sched_error_path = "_scheduler-stderr.txt"
    template.codes_run_mode = CodeRunMode.SERIAL
    code = JobTemplateCodeInfo()
    code.cmdline_params = command
    code.stdout_name = "out.txt"
    template.codes_info = [code]
    for key, value in settings.items():
        setattr(template, key, value)
    return template


def _wait_done(scheduler: FirecrestScheduler, job_id: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        jobs = scheduler.get_jobs(jobs=[job_id], as_dict=True)
        if job_id not in jobs or jobs[job_id].job_state == JobState.DONE:
            return
        time.sleep(0.5)
    raise AssertionError(f"job {job_id} did not finish")


def test_submit_poll_detailed_info_and_output(make_computer, stack: StackInfo, tmp_path) -> None:
    computer = make_computer()
    assert computer.scheduler_type == "firecrest"
    scheduler = computer.get_scheduler()
    workdir = f"{stack.users['alice'].home}/sched-{uuid.uuid4().hex[:8]}"
    script = scheduler.get_submit_script(
        _template(workdir, ["/bin/echo", "hello from", "aiida"], account=stack.account)
    )
    assert "#SBATCH --account=testacct" in script  # aiida-core's Slurm header writer
    local = tmp_path / "_aiidasubmit.sh"
    local.write_text(script)
    with computer.get_transport() as transport:
        transport.makedirs(workdir)
        transport.putfile(str(local), f"{workdir}/_aiidasubmit.sh")
        scheduler.set_transport(transport)
        job_id = scheduler.submit_job(workdir, "_aiidasubmit.sh")
        assert job_id.isdigit()
        # right after the submit the job is known and not done
        first = scheduler.get_jobs(jobs=[job_id], as_dict=True)
        assert first[job_id].job_state in (JobState.QUEUED, JobState.RUNNING, JobState.DONE)
        _wait_done(scheduler, job_id)
        info = scheduler.get_detailed_job_info(job_id)
        assert "COMPLETED" in info["stdout"]
        assert scheduler.parse_output(info, "", "") is None
        transport.getfile(f"{workdir}/out.txt", str(tmp_path / "out.txt"))
        assert (tmp_path / "out.txt").read_text() == "hello from aiida\n"
        listed = scheduler.get_jobs(as_dict=True)  # every job of the user in one request
        assert job_id in listed
        transport.rmtree(workdir)


def _sleep_script(scheduler, transport, workdir: str, tmp_path) -> None:
    """A `sleep 300` job's submit script in ``workdir`` on the cluster, the scheduler bound
    to ``transport``."""
    local = tmp_path / "_aiidasubmit.sh"
    local.write_text(scheduler.get_submit_script(_template(workdir, ["/bin/sleep", "300"])))
    transport.makedirs(workdir)
    transport.putfile(str(local), f"{workdir}/_aiidasubmit.sh")
    scheduler.set_transport(transport)


def test_kill_job(make_computer, stack: StackInfo, tmp_path) -> None:
    computer = make_computer()
    scheduler = computer.get_scheduler()
    workdir = f"{stack.users['alice'].home}/kill-{uuid.uuid4().hex[:8]}"
    with computer.get_transport() as transport:
        _sleep_script(scheduler, transport, workdir, tmp_path)
        job_id = scheduler.submit_job(workdir, "_aiidasubmit.sh")
        assert scheduler.kill_job(job_id) is True
        _wait_done(scheduler, job_id)
        assert "CANCELLED" in scheduler.get_detailed_job_info(job_id)["stdout"]
        assert scheduler.kill_job("999999999") is False  # never raises
        transport.rmtree(workdir)


def test_a_poll_names_its_jobs_and_gets_only_those(make_computer, stack: StackInfo, tmp_path):
    computer = make_computer()
    scheduler = computer.get_scheduler()
    workdir = f"{stack.users['alice'].home}/poll-{uuid.uuid4().hex[:8]}"
    with computer.get_transport() as transport:
        _sleep_script(scheduler, transport, workdir, tmp_path)
        ids = [scheduler.submit_job(workdir, "_aiidasubmit.sh") for _ in range(2)]
        answers: list[tuple[str | None, int]] = []

        async def record(response) -> None:
            await response.aread()
            answers.append(
                (response.request.url.params.get("job_ids"), len(response.json()["jobs"]))
            )

        transport.client.session.http.event_hooks["response"].append(record)
        try:
            polled = scheduler.get_jobs(jobs=[ids[0]], as_dict=True)
            assert list(polled) == [ids[0]]
            # one request, answered with the named job alone (not the other one, not the
            # user's earlier jobs)
            assert answers == [(ids[0], 1)]
        finally:
            transport.client.session.http.event_hooks["response"].remove(record)
            for job_id in ids:
                scheduler.kill_job(job_id)
            transport.rmtree(workdir)


def test_a_missing_requested_job_is_reported_gone_after_rechecks(make_computer) -> None:
    scheduler = make_computer().get_scheduler()
    with scheduler_transport(scheduler, make_computer):
        t0 = time.monotonic()
        assert scheduler.get_jobs(jobs=["999999998"], as_dict=True) == {}
        assert time.monotonic() - t0 >= 3  # it asked again before giving up


class scheduler_transport:
    def __init__(self, scheduler, make_computer) -> None:
        self.transport = make_computer().get_transport()
        self.scheduler = scheduler

    def __enter__(self):
        self.transport.__enter__()
        self.scheduler.set_transport(self.transport)
        return self.transport

    def __exit__(self, *exc):
        return self.transport.__exit__(*exc)


def _record(state: str, **extra) -> dict:
    return {
        "jobId": "7",
        "name": "x",
        "status": {"state": state, "stateReason": extra.pop("reason", None), "exitCode": 0},
        "time": {"elapsed": 5, "start": 1_700_000_000, "end": 1_700_000_005, "limit": 60},
        "allocationNodes": 1,
        "nodes": "node1",
        "partition": "debug",
        "user": "alice",
        **extra,
    }


@pytest.mark.parametrize(
    ("state", "exit_code"),
    [
        ("OUT_OF_MEMORY", CalcJob.exit_codes.ERROR_SCHEDULER_OUT_OF_MEMORY),
        ("TIMEOUT", CalcJob.exit_codes.ERROR_SCHEDULER_OUT_OF_WALLTIME),
        ("NODE_FAIL", CalcJob.exit_codes.ERROR_SCHEDULER_NODE_FAILURE),
        ("COMPLETED", None),
    ],
)
def test_parse_output_tells_failures_apart(state, exit_code) -> None:
    scheduler = FirecrestScheduler()
    assert scheduler.parse_output(detailed_job_info(_record(state)), "", "") == exit_code


def test_job_info_mapping() -> None:
    info = job_info(_record("PENDING", reason="JobHeldUser"))
    assert info.job_state == JobState.QUEUED_HELD
    assert job_info(_record("CANCELLED by 1001")).job_state == JobState.DONE
    running = job_info(_record("RUNNING"))
    assert running.job_state == JobState.RUNNING
    assert running.wallclock_time_seconds == 5
    assert running.requested_wallclock_time_seconds == 60
    assert running.queue_name == "debug"
    assert running.dispatch_time.timestamp() == 1_700_000_000
