"""Error messages through the API are FirecREST v2's, word for word: clients match on them.

FirecREST v2 runs ``stat``, ``ls``, ``dd`` ... and answers with their stderr framed as
``Remote process failed with exit status:N and error message:STDERR``; the published
aiida-firecrest 1.0 takes a 404 from ``ops/stat`` as "not found" only when it says ``cannot
statx``. This server answers these operations over SFTP; the oracle here is the real program,
run as alice on the same cluster (the stack is this machine) on the same path.
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator

import httpx
import pytest

from firecrest_dev.info import StackInfo

pytestmark = pytest.mark.stack

FRAME = "Remote process failed with exit status:{} and error message:"


@pytest.fixture
def api(stack: StackInfo, token_for) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=f"{stack.url}/filesystem/{stack.system}/ops",
        headers={"Authorization": f"Bearer {token_for('alice')}"},
        timeout=60,
    ) as client:
        yield client


@pytest.fixture
def work(api: httpx.Client, stack: StackInfo) -> Iterator[str]:
    path = f"{stack.users['alice'].home}/wording-{uuid.uuid4().hex[:10]}"
    assert api.post("/mkdir", json={"path": path}).status_code == 201
    yield path
    assert api.delete("/rm", params={"path": path}).status_code == 204


def _as_alice(*argv: str) -> tuple[int, str]:
    """Exit status and stderr of ``argv`` run as alice in the C locale, on this machine."""
    result = subprocess.run(
        ["runuser", "-u", "alice", "--", "env", "LC_ALL=C", *argv],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return result.returncode, result.stderr.strip()


def _message(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    return response.json()["message"]


@pytest.mark.parametrize("name", ["missing", "a b", "it's"])
def test_stat_ls_view_not_found_say_what_the_programs_say(
    api: httpx.Client, work: str, name: str
) -> None:
    path = f"{work}/{name}"
    for endpoint, argv in (
        ("/stat", ["stat", "-c", "%s", "--", path]),
        ("/ls", ["ls", "-l", "--", path]),
        ("/view", ["dd", f"if={path}", "bs=1", "count=1"]),
    ):
        status, stderr = _as_alice(*argv)
        assert "No such file or directory" in stderr  # the oracle failed as expected
        assert _message(api.get(endpoint, params={"path": path}), 404) == (
            FRAME.format(status) + stderr
        )


def test_aiida_firecrest_1_0_reads_a_missing_file_as_not_found(
    api: httpx.Client, work: str
) -> None:
    # What its convert_header_exceptions looks for, and what pyfirecrest looks for.
    message = _message(api.get("/stat", params={"path": f"{work}/nope"}), 404)
    assert "cannot statx" in message
    assert "No such file or directory" in message


def test_changes_say_what_the_programs_say(api: httpx.Client, work: str) -> None:
    existing, link, target = f"{work}/d", f"{work}/l", f"{work}/t"
    assert api.post("/mkdir", json={"path": existing}).status_code == 201
    # A dangling link: `ln -s` would put a new link inside a directory a link points to.
    assert api.post("/symlink", json={"sourcePath": target, "linkPath": link}).status_code == 201
    cases = [
        (api.post("/mkdir", json={"path": existing}), 400, ["mkdir", "--", existing]),
        (
            api.post("/mkdir", json={"path": f"{work}/x/y"}),
            404,
            ["mkdir", "--", f"{work}/x/y"],
        ),
        (
            api.post("/symlink", json={"sourcePath": target, "linkPath": link}),
            400,
            ["ln", "-s", "--", target, link],
        ),
        (
            api.put("/chmod", json={"path": f"{work}/x", "mode": "700"}),
            404,
            ["chmod", "700", "--", f"{work}/x"],
        ),
    ]
    # Root's file in alice's directory: alice finds it, but may not change it (EPERM).
    rooted = f"{work}/root-owned"
    with open(rooted, "w"):
        pass
    cases.append(
        (
            api.put("/chmod", json={"path": rooted, "mode": "600"}),
            403,
            ["chmod", "600", "--", rooted],
        )
    )
    for response, status, argv in cases:
        exit_status, stderr = _as_alice(*argv)
        assert exit_status != 0
        assert _message(response, status) == FRAME.format(exit_status) + stderr


def test_reads_that_run_the_program_pass_its_words_through(api: httpx.Client, work: str) -> None:
    path = f"{work}/nope"
    for endpoint, argv in (
        ("/head", ["head", "--", path]),
        ("/tail", ["tail", "--", path]),
        ("/checksum", ["sha256sum", "--", path]),
        ("/download", ["base64", "--wrap=0", "--", path]),
    ):
        exit_status, stderr = _as_alice(*argv)
        assert _message(api.get(endpoint, params={"path": path}), 404) == (
            FRAME.format(exit_status) + stderr
        )


def test_a_directory_where_a_file_is_read(api: httpx.Client, work: str) -> None:
    # FirecREST v2's dd also writes its transfer statistics (with a timing) after this line.
    exit_status, stderr = _as_alice("dd", f"if={work}", "bs=1", "count=1", "status=none")
    assert stderr.startswith("dd: error reading")
    assert _message(api.get("/view", params={"path": work}), 400) == (
        FRAME.format(exit_status) + stderr
    )
