"""Pure parsing and argv building for Slurm jobs, on outputs captured from Slurm 22.05."""

import pytest

from firecrest_server.errors import BadRequest
from firecrest_server.models.compute import JobDescription
from firecrest_server.scheduler import slurm_jobs as slurm

S = slurm.SEP
SACCT = (
    f"2{S}1{S}stack{S}3:0{S}alice{S}testacct{S}na|me{S}node1{S}debug{S}4294901758{S}FAILED{S}None"
    f"{S}0{S}1795699443{S}1795699443{S}1795699443{S}00:00:00{S}UNLIMITED{S}alice{S}/home/alice\n"
    f"2.batch{S}1{S}stack{S}3:0{S}{S}testacct{S}batch{S}node1{S}{S}{S}FAILED{S}{S}0{S}1795699443"
    f"{S}1795699443{S}1795699443{S}00:00:00{S}{S}{S}\n"
)
SQUEUE = (
    f"7{S}1{S}{S}{S}alice{S}testacct{S}long job{S}node1{S}debug{S}4294901757{S}RUNNING{S}None"
    f"{S}1:05{S}1795699500{S}1795699501{S}1795703101{S}{S}1:00:00{S}alice{S}/home/alice/w d\n"
)


def test_sacct_rows_become_a_job_with_its_steps() -> None:
    jobs = slurm.jobs_from_rows(slurm.parse_rows(SACCT), from_squeue=False, cluster="c")
    job = jobs["2"]
    assert job.name == "na|me"
    assert job.status.state == "FAILED"
    assert job.status.exit_code == 3
    assert job.status.interrupt_signal == 0
    assert job.status.state_reason is None
    assert job.time.limit is None  # UNLIMITED
    assert job.time.start == 1795699443
    assert [t.id for t in job.tasks] == ["2.batch"]
    assert job.working_directory == "/home/alice"


def test_squeue_rows_parse_durations_and_paths_with_spaces() -> None:
    job = slurm.jobs_from_rows(slurm.parse_rows(SQUEUE), from_squeue=True, cluster="c")["7"]
    assert job.status.state == "RUNNING"
    assert job.time.elapsed == 65
    assert job.time.limit == 3600
    assert job.cluster == "c"
    assert job.working_directory == "/home/alice/w d"


def test_merge_prefers_live_state_until_accounting_has_a_final_one() -> None:
    accounted = slurm.jobs_from_rows(slurm.parse_rows(SACCT), from_squeue=False, cluster="c")
    pending = accounted["2"].model_copy(
        update={"status": accounted["2"].status.model_copy(update={"state": "PENDING"})}
    )
    live = slurm.jobs_from_rows(
        slurm.parse_rows(SQUEUE.replace("7", "2", 1)), from_squeue=True, cluster="c"
    )
    assert slurm.merge({"2": pending}, live)[0].status.state == "RUNNING"
    assert slurm.merge(accounted, live)[0].status.state == "FAILED"


def test_durations() -> None:
    assert slurm._duration("2-03:04:05") == ((2 * 24 + 3) * 60 + 4) * 60 + 5
    assert slurm._duration("04:05") == 245
    assert slurm._duration("UNLIMITED") is None


def test_sbatch_argv_quotes_nothing_itself_and_refuses_control_characters() -> None:
    job = JobDescription(
        working_directory="/home/a", name="x; rm -rf ~", account="acc", script="#!/bin/sh"
    )
    argv = slurm.sbatch_argv(job, "/home/a", None)
    assert "--job-name=x; rm -rf ~" in argv  # one argument; shlex.join quotes it later
    assert "--export=ALL" in argv
    with pytest.raises(BadRequest):
        slurm.sbatch_argv(JobDescription(working_directory="/h", name="a\nb"), "/h", None)


def test_environment_names_are_checked_and_values_kept_verbatim() -> None:
    env = slurm.job_environment({"A": "x\n'$(touch y)'", "B_2": ""})
    assert env["A"] == "x\n'$(touch y)'"
    assert slurm.job_environment(["K=V=W"]) == {"K": "V=W"}
    for bad in ({"1A": "x"}, {"A-B": "x"}, ["NOEQUALS"]):
        with pytest.raises(BadRequest):
            slurm.job_environment(bad)


def test_job_ids() -> None:
    assert slurm.parse_job_id("123\n") == "123"
    assert slurm.parse_job_id("123;cluster\n") == "123"
    with pytest.raises(ValueError, match="no job id"):
        slurm.parse_job_id("")
    with pytest.raises(BadRequest):
        slurm.checked_job_id("1;id")


def test_scontrol_fields_with_spaces_and_output_patterns() -> None:
    out = (
        "JobId=5 JobName=my job UserId=alice(1001) WorkDir=/home/alice/a b "
        "StdErr=/home/alice/a b/err-%j.txt StdIn=/dev/null StdOut=/home/alice/%x-%j.out Power="
    )
    fields = slurm.parse_scontrol_job(out)
    assert fields["JobName"] == "my job"
    assert fields["WorkDir"] == "/home/alice/a b"
    assert slurm.expand_output_path(fields["StdErr"], "5", fields) == "/home/alice/a b/err-5.txt"
    assert slurm.expand_output_path(fields["StdOut"], "5", fields) == "/home/alice/my job-5.out"


# `scontrol show -o job 0` lists every job (ids beyond 32 bits wrap to 0): one line per job.
SCONTROL_ALL = (
    "JobId=1 JobName=a UserId=alice(1001) GroupId=alice(1001) StdOut=/home/alice/a.out\n"
    "JobId=16 JobName=b UserId=bob(1002) GroupId=bob(1002) StdOut=/home/bob/secret.out\n"
)
SCONTROL_TASK = (
    "JobId=21 ArrayJobId=20 ArrayTaskId=1 JobName=arr UserId=alice(1001) StdOut=/home/alice/o\n"
)


@pytest.mark.parametrize(
    ("stdout", "job_id", "shown"),
    [
        (SCONTROL_ALL, "0", False),
        (SCONTROL_ALL, "4294967296", False),
        (SCONTROL_ALL, "1", True),
        (SCONTROL_ALL, "01", True),
        (SCONTROL_TASK, "21", True),
        (SCONTROL_TASK, "20", True),  # an array job, through its task
        (SCONTROL_TASK, "20_1", True),
        (SCONTROL_TASK, "20_2", False),
        (SCONTROL_TASK, "21_1", False),
        ("", "5", False),
    ],
)
def test_shows_job_only_for_the_job_asked_about(stdout: str, job_id: str, shown: bool) -> None:
    assert slurm.shows_job(slurm.parse_scontrol_job(stdout), job_id) is shown


@pytest.mark.parametrize("odd", ["\u2028", "\u2029", "\x85", "\x0c", "\x1c", "\x1e"])
def test_a_job_whose_name_holds_a_unicode_line_break_is_still_listed(odd: str) -> None:
    # str.splitlines() splits at these too: the row was cut and the job vanished.
    row = SACCT.splitlines()[0].split(S)
    row[6], row[19] = f"name{odd}x", f"/home/alice/w{odd}d"
    job = slurm.jobs_from_rows(slurm.parse_rows(S.join(row) + "\n"), from_squeue=False, cluster="c")
    assert job["2"].name == f"name{odd}x"
    assert job["2"].working_directory == f"/home/alice/w{odd}d"


def test_non_ascii_digits_are_not_numbers() -> None:
    assert slurm._duration("¹") is None
    assert not slurm.shows_job({"JobId": "1", "ArrayJobId": "¹"}, "2")


def test_job_ids_of_a_listing_filter() -> None:
    assert slurm.checked_job_ids(" 12, 13,,12,7_2 ") == ["12", "13", "7_2"]
    for bad in ("", " , ", "12,1;id", "12,-1", "12 13"):
        with pytest.raises(BadRequest):
            slurm.checked_job_ids(bad)
    many = ",".join(str(i) for i in range(slurm.MAX_LISTED_JOB_IDS + 1))
    with pytest.raises(BadRequest, match="at most"):
        slurm.checked_job_ids(many)
    assert len(slurm.checked_job_ids(many.rsplit(",", 1)[0])) == slurm.MAX_LISTED_JOB_IDS


def test_merge_keeps_the_controllers_description_over_accountings_first_one() -> None:
    # 22.05's accounting calls a just-finished job "allocation", in no partition, for a
    # second or two.
    first_record = SACCT.replace("na|me", "allocation").replace(f"{S}debug{S}", f"{S}{S}", 1)
    accounted = slurm.jobs_from_rows(slurm.parse_rows(first_record), from_squeue=False, cluster="c")
    assert accounted["2"].partition == ""
    live = slurm.jobs_from_rows(
        slurm.parse_rows(SQUEUE.replace("7", "2", 1)), from_squeue=True, cluster="c"
    )
    merged = slurm.merge(accounted, live)[0]
    assert (merged.name, merged.partition) == ("long job", "debug")
    assert (merged.status.state, merged.status.exit_code) == ("FAILED", 3)
