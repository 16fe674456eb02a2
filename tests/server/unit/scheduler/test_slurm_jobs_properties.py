"""Properties of the Slurm output parsers and argv builders, for arbitrary field values."""

from __future__ import annotations

import shlex
import string

from hypothesis import given, settings
from hypothesis import strategies as st

from firecrest_server.models.compute import JobDescription
from firecrest_server.scheduler import slurm_jobs as slurm

# What Slurm can put in one field of a delimited row: anything but our separator and a line end.
field_text = st.text(
    st.characters(blacklist_characters=f"{slurm.SEP}\n\r", blacklist_categories=("Cs",)),
    max_size=40,
)
job_ids = st.integers(min_value=1, max_value=2**32 - 2).map(str)


def _row(job_id: str, fields: list[str]) -> list[str]:
    row = list(fields)
    row[0] = job_id
    return row


rows = st.lists(
    st.tuples(job_ids, st.lists(field_text, min_size=slurm.N_FIELDS, max_size=slurm.N_FIELDS)),
    max_size=8,
    unique_by=lambda pair: pair[0],
).map(lambda pairs: [_row(job_id, fields) for job_id, fields in pairs])


@given(rows)
def test_parse_rows_round_trips_any_field_values(table: list[list[str]]) -> None:
    stdout = "".join(slurm.SEP.join(row) + "\n" for row in table)
    assert slurm.parse_rows(stdout) == table


@given(rows, st.booleans())
def test_jobs_from_rows_keeps_every_job_and_its_verbatim_fields(
    table: list[list[str]], from_squeue: bool
) -> None:
    jobs = slurm.jobs_from_rows(table, from_squeue=from_squeue, cluster="c")
    assert set(jobs) == {row[0] for row in table}
    for row in table:
        job = jobs[row[0]]
        assert job.job_id == row[0]
        assert job.name == row[6]  # names are data: any text, kept as it is
        assert job.partition == row[8]
        assert job.working_directory == row[19]
        assert job.user == (row[18] or None)
        assert job.status.state  # never empty: UNKNOWN at worst


@given(rows)
def test_rows_with_the_wrong_number_of_fields_are_skipped(table: list[list[str]]) -> None:
    stdout = "".join(slurm.SEP.join(row[:-1]) + "\n" for row in table)
    assert slurm.parse_rows(stdout) == []


@given(job_ids, st.lists(job_ids, max_size=5), rows)
def test_steps_attach_to_their_job_only(job_id: str, steps: list[str], table) -> None:
    base = [job_id, *[""] * (slurm.N_FIELDS - 1)]
    step_rows = [[f"{job_id}.{n}", *[""] * (slurm.N_FIELDS - 1)] for n in range(len(steps))]
    table = [row for row in table if row[0] != job_id]
    jobs = slurm.jobs_from_rows([base, *step_rows, *table], from_squeue=False, cluster="c")
    assert [t.id for t in jobs[job_id].tasks] == [r[0] for r in step_rows]
    assert all(not j.tasks for i, j in jobs.items() if i != job_id)


# scontrol show -o: Key=Value pairs separated by single spaces. A value may hold spaces (paths,
# job names) but Slurm's own keys never follow a space inside one, which the parser relies on.
keys = st.text(string.ascii_letters, min_size=1, max_size=12).filter(lambda k: k[0].isalpha())
values = st.text(
    st.characters(blacklist_characters="=\n\r\t\x0b\x0c", blacklist_categories=("Cs", "Zl", "Zp")),
    max_size=30,
).filter(lambda v: v == v.strip() and "  " not in v)


@settings(max_examples=300)
@given(st.dictionaries(keys, values, min_size=1, max_size=12))
def test_parse_scontrol_job_round_trips(fields: dict[str, str]) -> None:
    line = " ".join(f"{k}={v}" for k, v in fields.items())
    assert slurm.parse_scontrol_job(line) == fields


@given(st.dictionaries(keys, values, min_size=1, max_size=6), st.dictionaries(keys, values))
def test_parse_scontrol_job_takes_the_first_job_of_a_listing(first, second) -> None:
    stdout = " ".join(f"{k}={v}" for k, v in first.items()) + "\n"
    stdout += " ".join(f"{k}={v}" for k, v in second.items()) + "\n"
    parsed = slurm.parse_scontrol_job(stdout)
    assert {k: parsed[k] for k in first} == first


@given(job_ids, st.one_of(st.none(), job_ids))
def test_shows_job_matches_only_the_same_number(shown: str, array: str | None) -> None:
    fields = {"JobId": shown} | ({"ArrayJobId": array, "ArrayTaskId": "3"} if array else {})
    assert slurm.shows_job(fields, shown)
    assert slurm.shows_job(fields, "0" + shown)  # the same number, written differently
    other = str(int(shown) + 1)
    assert slurm.shows_job(fields, other) == (array == other)
    if array:
        assert slurm.shows_job(fields, f"{array}_3")
        assert not slurm.shows_job(fields, f"{array}_4")


# sbatch arguments: every user value is exactly one argument, whatever it contains.
plain_values = st.text(
    st.characters(min_codepoint=32, blacklist_characters="\x7f", blacklist_categories=("Cs",)),
    min_size=1,
    max_size=40,
)


@given(
    st.fixed_dictionaries(
        {},
        optional={
            name: plain_values
            for name in (
                "name",
                "account",
                "partition",
                "reservation",
                "constraints",
                "standard_input",
                "standard_output",
                "standard_error",
            )
        },
    )
)
def test_sbatch_argv_keeps_each_value_one_argument(values: dict[str, str]) -> None:
    job = JobDescription(working_directory="/home/a b", script="true", **values)
    argv = slurm.sbatch_argv(job, "/home/a b", None)
    assert shlex.split(shlex.join(argv)) == argv
    options = {
        "name": "--job-name",
        "account": "--account",
        "partition": "--partition",
        "reservation": "--reservation",
        "constraints": "--constraint",
        "standard_input": "--input",
        "standard_output": "--output",
        "standard_error": "--error",
    }
    for field, value in values.items():
        assert f"{options[field]}={value}" in argv
    # an option name is never taken from a value: every argument is one of ours
    assert all(
        a.split("=")[0] in {"sbatch", *options.values(), "--parsable", "--export", "--chdir"}
        for a in argv
    )
