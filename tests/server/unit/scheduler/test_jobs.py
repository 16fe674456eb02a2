"""Job operations over a stand-in runner: how Slurm's answers become HTTP statuses."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from firecrest_server.cluster import CommandResult, Remote
from firecrest_server.cluster.names import IdNames
from firecrest_server.errors import ApiError, BadRequest, Conflict, Forbidden, NotFound
from firecrest_server.scheduler import jobs
from firecrest_server.scheduler.refusals import submit_error


class _Runner:
    """Answers each program (argv[0], or `scontrol show`/`scontrol write`) with fixed output."""

    def __init__(self, answers: dict[str, tuple[int, str, str]]) -> None:
        self.answers = answers
        self.username = "alice"
        self.calls: list[list[str]] = []

    async def run(self, argv, *, stdin=None, env=None, timeout=None, idempotent=True):
        self.calls.append(list(argv))
        key = " ".join(argv[:2]) if argv[0] == "scontrol" else argv[0]
        status, out, err = self.answers.get(key, (0, "", ""))
        return CommandResult(tuple(argv), status, out.encode(), err.encode())


class _System:
    class scheduler:  # mirrors the config attribute
        command_timeout = 30


def _remote(**answers: tuple[int, str, str]) -> Remote:
    runner = _Runner({k.replace("_", " "): v for k, v in answers.items()})
    return Remote(system=_System(), runner=runner, names=IdNames())  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "stderr",
    [
        "sbatch: error: Batch job submission failed: Pathname of a file, directory or other "
        "parameter too long",
        "sbatch: error: Unable to open file /home/alice/nonexist.sh",
        "sbatch: error: Batch script contains DOS line breaks (\\r\\n)\n"
        "sbatch: error: instead of expected UNIX line breaks (\\n).",
        "sbatch: error: Batch script is empty!",
        "/bin/bash: Argument list too long",
    ],
)
def test_submissions_sbatch_refuses_are_400(stderr: str) -> None:
    error = submit_error(stderr, 1)
    assert isinstance(error, BadRequest)


def test_an_unknown_sbatch_failure_stays_a_server_error() -> None:
    error = submit_error("sbatch: error: odd", 1)
    assert type(error) is ApiError


@pytest.mark.parametrize(
    ("stderr", "error"),
    [
        ("srun: error: Unable to create step for job 5: Access/permission denied", Forbidden),
        ('srun: error: Invalid numeric value "0" for --jobid.', NotFound),
        ("srun: error: Numeric argument (9223372036854775807) to big for --jobid.", NotFound),
        ("srun: error: Unable to confirm allocation for job 5: Invalid job id specified", NotFound),
        (
            "srun: error: Slurm job 5 has expired\n"
            "srun: Check SLURM_JOB_ID environment variable. Expired or invalid job 5",
            Conflict,
        ),
    ],
)
async def test_attach_refusals(stderr: str, error: type[ApiError]) -> None:
    remote = _remote(srun=(1, "", stderr))
    with pytest.raises(error):
        await jobs.attach(remote, "5", "true")


@pytest.mark.parametrize(
    ("stderr", "error"),
    [
        ("scancel: error: Kill job error on job id 5: Invalid job id specified", NotFound),
        ("scancel: error: Kill job error on job id 5: Access/permission denied", Forbidden),
        (
            "scancel: Terminating job 5\nscancel: error: Kill job error on job id 5: "
            "Job/step already completing or completed",
            Conflict,
        ),
    ],
)
async def test_cancel_refusals(stderr: str, error: type[ApiError]) -> None:
    with pytest.raises(error):
        await jobs.cancel(_remote(scancel=(1, "", stderr)), "5")


async def test_cancel_of_a_running_job_succeeds() -> None:
    remote = _remote(scancel=(0, "", "scancel: Terminating job 5\n"))
    await jobs.cancel(remote, "5")
    assert remote.runner.calls == [["scancel", "--verbose", "5"]]


async def test_metadata_answers_only_for_the_job_asked_about() -> None:
    # `scontrol show job 0` lists every job, bob's included
    listing = (
        "JobId=1 JobName=a UserId=alice(1001) StdOut=/home/alice/a.out\n"
        "JobId=16 JobName=b UserId=bob(1002) StdOut=/home/bob/secret.out\n"
    )
    remote = _remote(scontrol_show=(0, listing, ""), scontrol_write=(0, "", ""))
    with pytest.raises(NotFound, match="Job not found"):
        await jobs.metadata(remote, "0")
    shown = await jobs.metadata(remote, "1")
    assert shown.standard_output == "/home/alice/a.out"


async def test_metadata_of_another_users_job_is_not_found() -> None:
    listing = "JobId=16 JobName=b UserId=bob(1002) StdOut=/home/bob/secret.out\n"
    remote = _remote(scontrol_show=(0, listing, ""), scontrol_write=(1, "", "denied"))
    with pytest.raises(NotFound):
        await jobs.metadata(remote, "16")


async def test_a_name_the_accounting_database_cannot_compare_is_400() -> None:
    # slurmdbd on latin1 tables refuses a UTF-8 literal (MySQL 1267); it used to be a 503
    # "the scheduler did not answer", with a Retry-After that could never help.
    remote = _remote(sacct=(1, "", "sacct: error: Unknown error 1267\n"))
    with pytest.raises(BadRequest, match="character set"):
        await jobs.list_jobs(remote, name="\u00fcn\u00ef")


async def test_a_scheduler_that_does_not_answer_is_still_503() -> None:
    remote = _remote(sacct=(1, "", "sacct: error: Problem talking to the database"))
    with pytest.raises(ApiError) as raised:
        await jobs.list_jobs(remote)
    assert raised.value.status_code == 503


@pytest.mark.parametrize("odd", ["\n", "\r\n", "\x1f", "\t"])
async def test_values_that_would_make_the_job_unlistable_are_refused(odd: str) -> None:
    from firecrest_server.models.compute import JobDescription

    remote = _remote()
    remote.system = SimpleNamespace(  # type: ignore[assignment]
        file_systems=[SimpleNamespace(path="/home")], name="c", scheduler=_System.scheduler
    )
    job = JobDescription(working_directory=f"/home/alice/a{odd}b", script="true")
    with pytest.raises(BadRequest, match="workingDirectory"):
        await jobs.submit(remote, job)
    # sbatch names a job after its script file: the same for the script's path
    job = JobDescription(working_directory="/home/alice", script_path=f"/home/alice/a{odd}b")
    with pytest.raises(BadRequest, match="scriptPath"):
        await jobs.submit(remote, job)
    assert remote.runner.calls == []  # type: ignore[attr-defined]


_S = "\x1f"
_ROW = _S.join(
    [
        "2",
        "1",
        "c",
        "0:0",
        "alice",
        "acct",
        "a",
        "n1",
        "debug",
        "1",
        "RUNNING",
        "None",
        "5",
        "1795699443",
        "1795699443",
        "Unknown",
        "00:00:00",
        "60",
        "alice",
        "/home/alice",
    ]
)


def _ages(known: dict[str, float | None]):
    async def marker_age(remote: Remote, job_id: str) -> float | None:
        return known.get(job_id)

    return marker_age


async def test_jobs_by_id_ask_accounting_for_the_named_jobs_only(monkeypatch) -> None:
    monkeypatch.setattr(jobs, "_marker_age", _ages({"9": 5.0, "10": jobs.UNLISTED_GRACE + 1}))
    remote = _remote(sacct=(0, _ROW + "\n", ""), squeue=(1, "", "Invalid job id specified"))
    remote.system.name = "c"  # type: ignore[attr-defined]
    found = await jobs.jobs_by_id(remote, ["2", "9", "10", "11"])
    # listed by Slurm, just submitted (PENDING), and neither; an old marker is no evidence
    assert {job.job_id: job.status.state for job in found} == {"2": "RUNNING", "9": "PENDING"}
    sacct = next(argv for argv in remote.runner.calls if argv[0] == "sacct")
    assert "--jobs=2,9,10,11" in sacct
    assert not any(arg.startswith("--starttime") for arg in sacct)


async def test_jobs_by_id_with_a_filter_report_no_unlisted_job(monkeypatch) -> None:
    monkeypatch.setattr(jobs, "_marker_age", _ages({"9": 5.0}))
    remote = _remote(sacct=(0, "", ""), squeue=(0, "", ""))
    remote.system.name = "c"  # type: ignore[attr-defined]
    # a job just submitted may not carry this name: it is not claimed to
    assert await jobs.jobs_by_id(remote, ["9"], name="other") == []
    assert [job.job_id for job in await jobs.jobs_by_id(remote, ["9"])] == ["9"]


async def test_an_id_slurm_wraps_to_another_job_gets_nothing(monkeypatch) -> None:
    # 4294967298 is 2**32 + 2: Slurm answers with job 2
    monkeypatch.setattr(jobs, "_marker_age", _ages({}))
    remote = _remote(sacct=(0, _ROW + "\n", ""), squeue=(0, "", ""))
    remote.system.name = "c"  # type: ignore[attr-defined]
    assert await jobs.jobs_by_id(remote, ["4294967298"]) == []
    with pytest.raises(NotFound, match="Job not found"):
        await jobs.get_job(remote, "4294967298")
    assert [job.job_id for job in await jobs.jobs_by_id(remote, ["2"])] == ["2"]


async def test_an_array_id_lists_its_tasks() -> None:
    task = _ROW.replace("2", "7_3", 1)
    remote = _remote(sacct=(0, task + "\n", ""), squeue=(0, "", ""))
    remote.system.name = "c"  # type: ignore[attr-defined]
    assert [job.job_id for job in await jobs.list_jobs(remote, job_ids=["7"])] == ["7_3"]
