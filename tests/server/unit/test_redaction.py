from __future__ import annotations

import jwt
import pytest

from firecrest_server.redaction import REDACTED, redact, redact_path

TOKEN = jwt.encode({"sub": "alice", "exp": 2_000_000_000}, "k" * 32, algorithm="HS256")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"/staging/{TOKEN}/parts/3", f"/staging/{REDACTED}/parts/3"),
        ("/staging/not-a-jwt-at-all/object", f"/staging/{REDACTED}/object"),
        (f"Authorization: Bearer {TOKEN}", f"Authorization: Bearer {REDACTED}"),
        ("authorization: bearer abc.def", f"authorization: bearer {REDACTED}"),
        (f"token={TOKEN}&x=1", f"token={REDACTED}&x=1"),
        (f"{TOKEN[:-10]}", REDACTED),  # a truncated token still is one
        ("/home/alice/file.txt", "/home/alice/file.txt"),
        ("Remote process failed with exit status:1", "Remote process failed with exit status:1"),
    ],
)
def test_redact(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_no_part_of_the_token_survives() -> None:
    text = redact(f"x {TOKEN} y")
    for part in TOKEN.split("."):
        assert part not in text


def test_redact_path_only_touches_staging_capabilities() -> None:
    assert redact_path("/filesystem/c/ops/ls") == "/filesystem/c/ops/ls"
    assert redact_path(f"/api/staging/{TOKEN}/complete") == f"/api/staging/{REDACTED}/complete"
