"""The slurmrestd client's own logic: token check, error reading, an unreachable daemon."""

from __future__ import annotations

import socket

import jwt
import pytest

from firecrest_server.cluster.slurmrestd import RestAnswer, SlurmRestClient, check_token
from firecrest_server.config import SchedulerConfig
from firecrest_server.errors import Forbidden, ServiceUnavailable


def _token(**claims) -> str:
    return jwt.encode(claims, "k" * 32, algorithm="HS256")


def test_a_token_must_name_the_caller_in_slurms_claim() -> None:
    token = _token(sun="alice", preferred_username="alice")
    assert check_token(token, "alice") == token
    with pytest.raises(Forbidden, match="sun"):
        check_token(_token(preferred_username="alice"), "alice")
    # The API server acts as alice: Slurm must not act as bob.
    with pytest.raises(Forbidden):
        check_token(_token(sun="bob", preferred_username="alice"), "alice")
    with pytest.raises(Forbidden):
        check_token(None, "alice")
    with pytest.raises(Forbidden):
        check_token("not-a-jwt", "alice")


def test_empty_results_are_not_errors_and_errors_read_as_one_line() -> None:
    nothing = RestAnswer(
        200, {"errors": [{"error_number": 9003, "error": "Nothing found with query"}]}
    )
    assert nothing.errors == []
    refused = RestAnswer(
        500,
        {
            "errors": [
                {"error_code": 2000, "error": "Invalid partition name specified"},
                {"error_number": 2017, "error": "Invalid job id specified", "description": "d"},
            ]
        },
    )
    assert refused.error_text() == ("Invalid partition name specified; Invalid job id specified d")
    assert RestAnswer(502, {}).error_text() == "HTTP 502"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_an_unreachable_slurmrestd_is_503_with_retry_after() -> None:
    config = SchedulerConfig(
        connection_mode="rest",
        api_url=f"http://127.0.0.1:{_closed_port()}",
        api_version="0.0.38",
    )
    client = SlurmRestClient(config)
    try:
        with pytest.raises(ServiceUnavailable) as raised:
            await client.request(
                "GET", client.slurm("jobs"), username="alice", token=_token(sun="alice")
            )
        assert int(raised.value.headers["Retry-After"]) >= 1
        assert "unreachable" in (await client.ping() or "")
    finally:
        await client.close()
