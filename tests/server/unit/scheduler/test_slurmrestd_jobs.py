"""slurmrestd v0.0.38 JSON <-> the API's job shapes, on answers captured from Slurm 22.05.8."""

from __future__ import annotations

import pytest

from firecrest_server.errors import BadRequest
from firecrest_server.models.compute import JobDescription
from firecrest_server.scheduler import slurmrestd_jobs as restjson

# GET /slurm/v0.0.38/jobs (trimmed to the fields read): a job that exited 3, one killed by
# SIGKILL, one running without a time limit, and a task of an array job.
CONTROLLER = {
    "jobs": [
        {
            "job_id": 2,
            "array_job_id": 0,
            "array_task_id": None,
            "name": "exit-three",
            "user_name": "alice",
            "group_name": "alice",
            "account": "testacct",
            "partition": "debug",
            "cluster": "stack",
            "nodes": "node1",
            "node_count": 1,
            "job_state": "FAILED",
            "state_reason": "NonZeroExitCode",
            "exit_code": 768,
            "start_time": 1796671009,
            "end_time": 1796671011,
            "suspend_time": 0,
            "time_limit": None,
            "priority": 4294901759,
            "current_working_directory": "/tmp",
        },
        {
            "job_id": 3,
            "array_job_id": 0,
            "array_task_id": None,
            "name": "killed",
            "user_name": "alice",
            "job_state": "FAILED",
            "state_reason": "JobLaunchFailure",
            "exit_code": 9,
            "start_time": 1796671009,
            "end_time": 1796671009,
            "node_count": 1,
            "partition": "debug",
            "nodes": "node1",
            "current_working_directory": "/tmp",
        },
        {
            "job_id": 4,
            "array_job_id": 0,
            "array_task_id": None,
            "name": "running",
            "user_name": "bob",
            "job_state": "RUNNING",
            "state_reason": "None",
            "exit_code": 0,
            "start_time": 1000,
            "end_time": 1828206949,
            "time_limit": 60,
            "node_count": 1,
            "partition": "debug",
            "nodes": "node1",
            "current_working_directory": "/home/bob",
        },
        {
            "job_id": 12,
            "array_job_id": 10,
            "array_task_id": 2,
            "name": "array",
            "user_name": "alice",
            "job_state": "PENDING",
            "state_reason": "Priority",
            "start_time": 0,
            "end_time": 0,
            "node_count": 1,
            "partition": "debug",
            "nodes": "",
            "current_working_directory": "/tmp",
        },
    ]
}

# GET /slurmdb/v0.0.38/jobs?step=3 (trimmed): accounting's record with its batch step.
ACCOUNTING = {
    "errors": [],
    "jobs": [
        {
            "job_id": 3,
            "array": {"job_id": 0, "task": None, "task_id": None},
            "name": "killed",
            "user": "alice",
            "group": "alice",
            "account": "testacct",
            "partition": "debug",
            "cluster": "stack",
            "nodes": "node1",
            "allocation_nodes": 1,
            "priority": 4294901759,
            "working_directory": "/tmp",
            "state": {"current": "FAILED", "reason": "None"},
            "exit_code": {
                "status": "SIGNALED",
                "return_code": None,
                "signal": {"signal_id": 9, "name": "Killed"},
            },
            "time": {"elapsed": 0, "start": 1796671009, "end": 1796671009, "suspended": 0},
            "steps": [
                {
                    "step": {"job_id": 3, "id": "batch", "name": "batch"},
                    "state": "CANCELLED",
                    "exit_code": {"status": "SIGNALED", "signal": {"signal_id": 9}},
                    "time": {"elapsed": 0, "start": 1796671009, "end": 1796671009},
                }
            ],
        }
    ],
}


def test_the_controllers_wait_status_is_split_as_sacct_shows_it() -> None:
    jobs = restjson.jobs_from_controller(CONTROLLER, cluster="c", now=1060)
    assert (jobs["2"].status.exit_code, jobs["2"].status.interrupt_signal) == (3, 0)
    assert (jobs["3"].status.exit_code, jobs["3"].status.interrupt_signal) == (0, 9)
    assert jobs["2"].status.state_reason == "NonZeroExitCode"
    assert jobs["2"].time.elapsed == 2
    assert jobs["2"].time.limit is None  # no limit is null in v0.0.38
    assert jobs["2"].cluster == "stack"
    assert jobs["3"].cluster == "c"


def test_running_jobs_count_elapsed_until_now_and_limits_in_seconds() -> None:
    running = restjson.jobs_from_controller(CONTROLLER, cluster="c", now=1060)["4"]
    assert running.status.state == "RUNNING"
    assert running.status.state_reason is None  # "None", as squeue prints it
    assert running.time.elapsed == 60
    assert running.time.limit == 3600
    assert running.user == "bob"


def test_array_tasks_are_named_as_squeue_names_them_and_zero_times_are_unknown() -> None:
    task = restjson.jobs_from_controller(CONTROLLER, cluster="c", now=1060)["10_2"]
    assert task.job_id == "10_2"
    assert (task.time.start, task.time.end, task.time.elapsed) == (None, None, 0)


def test_accounting_records_become_jobs_with_their_steps_as_tasks() -> None:
    job = restjson.jobs_from_accounting(ACCOUNTING, cluster="c")["3"]
    assert (job.status.state, job.status.state_reason) == ("FAILED", None)
    assert (job.status.exit_code, job.status.interrupt_signal) == (0, 9)
    assert job.allocation_nodes == 1
    assert job.working_directory == "/tmp"
    assert [(t.id, t.status.state, t.status.interrupt_signal) for t in job.tasks] == [
        ("3.batch", "CANCELLED", 9)
    ]


def test_broken_records_are_skipped_not_fatal() -> None:
    body = {"jobs": [None, {"name": "no id"}, {"job_id": "x"}, *CONTROLLER["jobs"][:1]]}
    assert list(restjson.jobs_from_controller(body, cluster="c")) == ["2"]
    assert restjson.jobs_from_accounting({"jobs": None}, cluster="c") == {}


def test_the_job_description_carries_every_field_and_a_default_path() -> None:
    job = JobDescription(
        working_directory="/home/a",
        name="n; rm -rf ~",
        account="acc",
        partition="debug",
        reservation="r",
        constraints="c1&c2",
        standard_input="/dev/null",
        standard_output="out-%j",
        standard_error="err-%j",
        script="#!/bin/sh\n",
    )
    desc = restjson.job_desc(job, "/home/a", {"A": "1,2", "PATH": "/opt/bin"})
    assert desc == {
        "current_working_directory": "/home/a",
        "environment": {"PATH": "/opt/bin", "A": "1,2"},
        "name": "n; rm -rf ~",
        "account": "acc",
        "partition": "debug",
        "reservation": "r",
        "constraints": "c1&c2",
        "standard_input": "/dev/null",
        "standard_output": "out-%j",
        "standard_error": "err-%j",
    }
    assert restjson.job_desc(JobDescription(working_directory="/w", script="x"), "/w", {})[
        "environment"
    ] == {"PATH": restjson.DEFAULT_PATH}


def test_control_characters_are_refused_as_for_sbatch() -> None:
    with pytest.raises(BadRequest):
        restjson.job_desc(JobDescription(working_directory="/w", name="a\nb"), "/w", {})


def test_submitted_ids_and_script_names() -> None:
    assert restjson.submitted_job_id({"job_id": 42}) == "42"
    with pytest.raises(ValueError, match="no job id"):
        restjson.submitted_job_id({"errors": [{"error": "x"}]})
    assert restjson.script_name("/home/a/run.sh") == "run.sh"
