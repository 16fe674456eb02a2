"""Slurm batch jobs over SSH: argv builders and output parsers (pure), no I/O here.

Output is read with an ASCII unit separator between fields (``--delimiter`` for sacct, literal
in squeue's ``-o`` format) so that job names and paths containing ``|`` parse correctly. Times
are epoch seconds through ``SLURM_TIME_FORMAT=%s``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from ..errors import BadRequest
from ..models.compute import Job, JobDescription, JobStatus, JobTask, JobTime
from .slurm_states import FINAL_STATES, normalised_state

SEP = "\x1f"
TIME_ENV = {"SLURM_TIME_FORMAT": "%s"}

SACCT_FIELDS = (
    "JobID,AllocNodes,Cluster,ExitCode,Group,Account,JobName,NodeList,Partition,Priority,"
    "State,Reason,ElapsedRaw,Submit,Start,End,Suspended,TimelimitRaw,User,WorkDir"
)
# squeue codes in the same order as SACCT_FIELDS; fields squeue cannot give are left empty.
#   %i id, %D nodes, (cluster), (exit code), %g group, %a account, %j name, %N nodelist,
#   %P partition, %Q priority, %T state, %r reason, %M time used, %V submit, %S start, %e end,
#   (suspended), %l time limit, %u user, %Z workdir
SQUEUE_FORMAT = SEP.join(
    [
        "%i",
        "%D",
        "",
        "",
        "%g",
        "%a",
        "%j",
        "%N",
        "%P",
        "%Q",
        "%T",
        "%r",
        "%M",
        "%V",
        "%S",
        "%e",
        "",
        "%l",
        "%u",
        "%Z",
    ]
)
N_FIELDS = 20

JOB_ID = re.compile(r"^[0-9]+(_[0-9]+)?$")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Ids one listing by id may name (``job_ids``): a 1000-id sacct/squeue command line stays far
# below ARG_MAX, and the request line below the HTTP server's header limit.
MAX_LISTED_JOB_IDS = 1000
TIME_WINDOWS = {"1h": "1hours", "8h": "8hours", "24h": "24hours", "3d": "3days", "7d": "7days"}


def checked_job_id(job_id: str) -> str:
    if not JOB_ID.match(job_id):
        raise BadRequest(f"Invalid job id {job_id!r}")
    return job_id


def checked_job_ids(text: str) -> list[str]:
    """The ids of a ``job_ids`` listing filter (comma separated), each checked, without repeats."""
    ids = list(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    if not ids:
        raise BadRequest("`job_ids` names no job id")
    if len(ids) > MAX_LISTED_JOB_IDS:
        raise BadRequest(
            f"`job_ids` names {len(ids)} jobs; at most {MAX_LISTED_JOB_IDS} per request"
        )
    for job_id in ids:
        checked_job_id(job_id)
    return ids


def _plain(field: str, value: str | None) -> str | None:
    """Single-line text for an sbatch option; control characters are refused, not escaped."""
    if value is None or value == "":
        return None
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise BadRequest(f"`{field}` must not contain control characters")
    return value


def job_environment(env: dict[str, str] | list[str] | None) -> dict[str, str]:
    """The job's extra environment. Names must be identifiers; values are passed verbatim."""
    if env is None:
        return {}
    if isinstance(env, list):
        pairs = {}
        for item in env:
            name, sep, value = item.partition("=")
            if not sep:
                raise BadRequest(f"environment entry {item!r} is not NAME=VALUE")
            pairs[name] = value
        env = pairs
    for name, value in env.items():
        if not ENV_NAME.match(name):
            raise BadRequest(f"invalid environment variable name {name!r}")
        if "\x00" in value:
            raise BadRequest(f"environment variable {name} contains a NUL character")
    return dict(env)


def sbatch_argv(job: JobDescription, working_directory: str, script_path: str | None) -> list[str]:
    """``sbatch --parsable`` with every user field as one quoted argument.

    The environment is not put on the command line (``--export=ALL,K=V`` splits values at
    commas); the caller passes it as the command's environment and ``--export=ALL`` hands it to
    the job unchanged, newlines and quotes included.
    """
    argv = ["sbatch", "--parsable", "--export=ALL", f"--chdir={working_directory}"]
    for option, field, value in (
        ("--job-name", "name", job.name),
        ("--account", "account", job.account),
        ("--partition", "partition", job.partition),
        ("--reservation", "reservation", job.reservation),
        ("--constraint", "constraints", job.constraints),
        ("--input", "standardInput", job.standard_input),
        ("--output", "standardOutput", job.standard_output),
        ("--error", "standardError", job.standard_error),
    ):
        checked = _plain(field, value)
        if checked is not None:
            argv.append(f"{option}={checked}")
    if script_path is not None:
        argv += ["--", script_path]
    return argv


def parse_job_id(stdout: str) -> str:
    """``--parsable`` prints ``ID`` or ``ID;cluster``."""
    first = stdout.strip().splitlines()[-1] if stdout.strip() else ""
    job_id = first.split(";")[0].strip()
    if not JOB_ID.match(job_id):
        raise ValueError(f"sbatch printed no job id: {stdout!r}")
    return job_id


def sacct_argv(
    username: str,
    *,
    job_ids: Iterable[str] = (),
    all_users: bool = False,
    account: str | None = None,
    name: str | None = None,
    time_window: str = "24h",
) -> list[str]:
    argv = ["sacct", "--noheader", "--parsable2", f"--delimiter={SEP}", f"--format={SACCT_FIELDS}"]
    ids = list(job_ids)
    if ids:
        argv.append(f"--jobs={','.join(ids)}")
    else:
        argv.append(f"--starttime=now-{TIME_WINDOWS[time_window]}")
    if all_users:
        argv.append("--allusers")
    else:
        argv.append(f"--user={username}")
    if account:
        argv.append(f"--accounts={_plain('account', account)}")
    if name:
        argv.append(f"--name={_plain('name', name)}")
    return argv


def squeue_argv(
    username: str,
    *,
    job_ids: Iterable[str] = (),
    all_users: bool = False,
    account: str | None = None,
    name: str | None = None,
) -> list[str]:
    argv = ["squeue", "--noheader", "--states=all", f"--format={SQUEUE_FORMAT}"]
    ids = list(job_ids)
    if ids:
        argv.append(f"--jobs={','.join(ids)}")
    if not all_users:
        argv.append(f"--user={username}")
    if account:
        argv.append(f"--account={_plain('account', account)}")
    if name:
        argv.append(f"--name={_plain('name', name)}")
    return argv


def _int(value: str) -> int | None:
    try:
        return int(value)
    except ValueError:
        return None


def _digits(value: str) -> bool:
    """ASCII digits only: str.isdigit() is also true for "¹" and the like, which int() refuses."""
    return value.isascii() and value.isdigit()


def _duration(value: str) -> int | None:
    """Seconds from ``[days-][hh:]mm:ss`` (squeue's %M / %l), None for UNLIMITED and the like."""
    if _digits(value):
        return int(value)
    match = re.fullmatch(r"(?:(\d+)-)?(?:(\d+):)?(\d+):(\d+)", value)
    if not match:
        return None
    days, hours, minutes, seconds = (int(g) if g else 0 for g in match.groups())
    return ((days * 24 + hours) * 60 + minutes) * 60 + seconds


def exit_code(value: str) -> tuple[int | None, int | None]:
    code, _, signal = value.partition(":")
    return _int(code), _int(signal)


def parse_rows(stdout: str) -> list[list[str]]:
    rows = []
    # Only "\n" ends a row: str.splitlines() also splits at \x0b, \x0c, \x1c-\x1e, \x85 and
    # \u2028/\u2029, which job names and working directories may contain; such a row would be
    # cut, fail the field count, and its job would vanish from every listing.
    for line in stdout.split("\n"):
        fields = line.split(SEP)
        if len(fields) == N_FIELDS:
            rows.append(fields)
    return rows


def _status(fields: list[str]) -> JobStatus:
    state, by = normalised_state(fields[10])
    reason = fields[11] if fields[11] not in ("", "None") else by
    code, signal = exit_code(fields[3])
    return JobStatus(state=state, state_reason=reason, exit_code=code, interrupt_signal=signal)


def _time(fields: list[str], *, from_squeue: bool) -> JobTime:
    limit = fields[17]
    if from_squeue:
        limit_s = _duration(limit)
        elapsed = _duration(fields[12])
    else:
        minutes = _int(limit)
        limit_s = minutes * 60 if minutes is not None else None
        elapsed = _int(fields[12])
    return JobTime(
        elapsed=elapsed,
        start=_int(fields[14]),
        end=_int(fields[15]),
        suspended=_duration(fields[16]) if fields[16] else None,
        limit=limit_s,
    )


def jobs_from_rows(rows: list[list[str]], *, from_squeue: bool, cluster: str) -> dict[str, Job]:
    """Jobs by id; sacct's ``ID.step`` rows become the job's tasks."""
    jobs: dict[str, Job] = {}
    steps: list[list[str]] = []
    for fields in rows:
        if "." in fields[0]:
            steps.append(fields)
            continue
        jobs[fields[0]] = Job(
            job_id=fields[0],
            name=fields[6],
            status=_status(fields),
            tasks=[],
            time=_time(fields, from_squeue=from_squeue),
            account=fields[5] or None,
            allocation_nodes=_int(fields[1]) or 0,
            cluster=fields[2] or cluster,
            group=fields[4] or None,
            nodes=fields[7] if fields[7] not in ("None assigned", "(null)") else "",
            partition=fields[8],
            kill_request_user=None,
            user=fields[18] or None,
            working_directory=fields[19],
            priority=_int(fields[9]),
        )
    for fields in steps:
        parent = jobs.get(fields[0].split(".")[0])
        if parent is not None and parent.tasks is not None:
            parent.tasks.append(
                JobTask(
                    id=fields[0],
                    name=fields[6],
                    status=_status(fields),
                    time=_time(fields, from_squeue=False),
                )
            )
    return jobs


# What a job was given at submission, which the controller reports exactly while it knows it.
_DESCRIPTIVE = (
    "name",
    "partition",
    "account",
    "group",
    "working_directory",
    "nodes",
    "allocation_nodes",
)


def merge(accounted: dict[str, Job], live: dict[str, Job]) -> list[Job]:
    """sacct and squeue views of the same jobs, merged.

    slurmctld (squeue) is the fresher source while a job is alive; accounting (sacct) lags it
    but keeps exit codes and steps, and outlives the controller's memory. A final state from
    either source wins over a live one from the other.
    """
    merged: dict[str, Job] = dict(accounted)
    for job_id, job in live.items():
        known = merged.get(job_id)
        if known is None:
            merged[job_id] = job
        elif known.status.state not in FINAL_STATES:
            merged[job_id] = job.model_copy(update={"tasks": known.tasks or job.tasks})
        else:
            # Slurm 22.05's accounting record of a job that has just ended says "allocation"
            # for its name and nothing for its partition or nodes for a second or two (sacct and
            # slurmdbd's REST API alike): the controller knows what the job was given.
            described = {
                field: getattr(job, field)
                for field in _DESCRIPTIVE
                if getattr(job, field) and getattr(job, field) != getattr(known, field)
            }
            if described:
                merged[job_id] = known.model_copy(update=described)
    return sorted(merged.values(), key=lambda j: _sort_key(j.job_id))


def _sort_key(job_id: str) -> tuple[int, int]:
    main, _, index = job_id.partition("_")
    return int(main), int(index or -1)


def parse_scontrol_job(stdout: str) -> dict[str, str]:
    """``scontrol show -o job ID`` as a dict. Values may contain spaces (paths), so split on the
    known ``Key=`` boundaries instead of on whitespace."""
    fields: dict[str, str] = {}
    for match in re.finditer(
        r"(?:^|\s)([A-Za-z][A-Za-z:/_]*)=(.*?)(?=\s[A-Za-z][A-Za-z:/_]*=|$)", stdout.strip()
    ):
        fields.setdefault(match.group(1), match.group(2))
    return fields


def _same_id(shown: str | None, wanted: str) -> bool:
    return shown is not None and _digits(shown) and int(shown) == int(wanted)


def shows_job(fields: dict[str, str], job_id: str) -> bool:
    """Whether ``scontrol show job`` output parsed into ``fields`` is about ``job_id``.

    ``ID_TASK`` names one task of an array job; a plain ID is the job itself or, for an array
    job, its tasks (listed under ``ArrayJobId``).
    """
    main, _, task = job_id.partition("_")
    if task:
        return _same_id(fields.get("ArrayJobId"), main) and _same_id(
            fields.get("ArrayTaskId"), task
        )
    return _same_id(fields.get("JobId"), main) or _same_id(fields.get("ArrayJobId"), main)


def expand_output_path(pattern: str | None, job_id: str, fields: dict[str, str]) -> str | None:
    """Slurm's filename patterns (%j, %u, %x, %%) as they resolve for this job."""
    if not pattern:
        return None
    user = fields.get("UserId", "").split("(")[0]
    replacements = {"j": job_id.split("_")[0], "u": user, "x": fields.get("JobName", ""), "%": "%"}
    return re.sub(r"%([jux%])", lambda m: replacements[m.group(1)], pattern)
