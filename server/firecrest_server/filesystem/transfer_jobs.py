"""Transfer jobs: cp, mv, rm, compress and extract as Slurm batch jobs (FirecREST v2 /transfer).

Each operation here is a recipe: the commands, the job name and the success phrase of one kind
of transfer job (the staging recipes are in ``staging/s3.py``).

For work too long for a synchronous request. The job script is generated: every command is an
argv list whose words are quoted one by one (``script_word``: single quotes, or bash's ``$'...'``
for values with control characters, which sbatch would otherwise refuse), so no user value is
ever script text. The last line prints the phrase clients look for in the job's output log
("Files were successfully ..."); with ``set -e`` it is printed only if every command succeeded.
"""

from __future__ import annotations

import re
import shlex
import uuid
from collections.abc import Sequence

from ..cluster import CheckedPath, Remote
from ..config import SystemConfig
from ..errors import BadRequest
from ..models.compute import JobDescription
from ..models.filesystem import Compression
from ..models.transfer import TransferJob, TransferJobLogs
from ..scheduler import jobs
from . import archives, copying
from .changes import rm_argv


def script_word(value: str) -> str:
    """``value`` as one bash word that keeps the script free of control characters.

    ``shlex.quote`` would leave a CR or LF of a file name raw in the script, and sbatch refuses
    any script with a CR LF in it ("DOS line breaks"). Such values use bash's ANSI-C quoting
    instead, in which only a backslash and a single quote are special besides the escapes.
    """
    if not any(ord(c) < 32 or ord(c) == 127 for c in value):
        return shlex.quote(value)
    escaped = "".join(
        "\\\\"
        if c == "\\"
        else "\\'"
        if c == "'"
        else f"\\x{ord(c):02x}"
        if ord(c) < 32 or ord(c) == 127
        else c
        for c in value
    )
    return f"$'{escaped}'"


def transfer_script(
    commands: Sequence[Sequence[str]], success: str, directives: Sequence[str] = ()
) -> str:
    lines = ["#!/bin/bash", *directives, "set -euo pipefail"]
    lines += [" ".join(map(script_word, argv)) for argv in commands]
    lines.append(shlex.join(["echo", success]))
    return "\n".join(lines) + "\n"


# What an account name may contain where it is put into an `#SBATCH` directive line: sbatch
# splits those lines into words itself, so whitespace or quotes would add options of their own.
_DIRECTIVE_VALUE = re.compile(r"[^\s'\"\\#]+")


def _directives(system: SystemConfig, account: str | None) -> list[str]:
    directives = []
    for line in system.data_operation.transfer_job_directives:
        if "{account}" in line:
            if not account:
                raise BadRequest("`account` is required for transfer jobs on this system")
            if not _DIRECTIVE_VALUE.fullmatch(account):
                raise BadRequest(f"Invalid account {account!r}")
            line = line.replace("{account}", account)
        directives.append(line)
    return directives


def work_directory(system: SystemConfig, username: str) -> str:
    """Where transfer jobs run and keep their logs: ``<default work dir fs>/<username>``."""
    default = next((fs for fs in system.file_systems if fs.default_work_dir), None)
    if default is None:
        raise BadRequest(f"system {system.name} has no default work directory for transfer jobs")
    return f"{default.path.rstrip('/')}/{username}"


async def submit(
    remote: Remote,
    name: str,
    commands: Sequence[Sequence[str]],
    success: str,
    account: str | None = None,
) -> TransferJob:
    system = remote.system
    directory = work_directory(system, remote.username)
    tag = uuid.uuid4().hex
    logs = TransferJobLogs(
        output_log=f"{directory}/.f7t_file_handling_job_{tag}.log",
        error_log=f"{directory}/.f7t_file_handling_job_error_{tag}.log",
    )
    script = transfer_script(commands, success, _directives(system, account))
    job = JobDescription(
        name=name,
        account=account or None,
        working_directory=directory,
        standard_input="/dev/null",
        standard_output=logs.output_log,
        standard_error=logs.error_log,
        script=script,
    )
    job_id = await jobs.submit(remote, job)
    return TransferJob(job_id=job_id, system=system.name, working_directory=directory, logs=logs)


# ------------------------------------------------------------------------------------ recipes


async def copy(
    remote: Remote,
    source: CheckedPath,
    target: CheckedPath,
    dereference: bool,
    account: str | None,
) -> TransferJob:
    argv = copying.cp_argv(source, target, dereference)
    return await submit(remote, "CopyFiles", [argv], "Files were successfully copied.", account)


async def move(
    remote: Remote, source: CheckedPath, target: CheckedPath, account: str | None
) -> TransferJob:
    argv = copying.mv_argv(source, target)
    return await submit(remote, "MoveFiles", [argv], "Files were successfully moved.", account)


async def remove(remote: Remote, path: CheckedPath, account: str | None) -> TransferJob:
    argv = rm_argv(path)
    return await submit(remote, "DeleteFiles", [argv], "Files were successfully removed.", account)


async def compress(
    remote: Remote,
    source: CheckedPath,
    target: CheckedPath,
    *,
    compression: Compression,
    dereference: bool,
    match_pattern: str | None,
    account: str | None,
) -> TransferJob:
    argv = archives.compress_argv(
        source,
        target,
        compression=compression,
        dereference=dereference,
        match_pattern=match_pattern,
    )
    return await submit(
        remote, "CompressFiles", [argv], "Files were successfully compressed.", account
    )


async def extract(
    remote: Remote,
    source: CheckedPath,
    target: CheckedPath,
    compression: Compression,
    account: str | None,
) -> TransferJob:
    argv = archives.extract_argv(source, target, remote.system.data_operation, compression)
    return await submit(
        remote, "ExtractFiles", [argv], "Files were successfully extracted.", account
    )
