"""A server of several workers answers only once all of them have started (worker_start.py)."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from firecrest_dev.info import StackInfo
from firecrest_dev.own_server import own_server


def start_dirs() -> set[Path]:
    return set(Path(tempfile.gettempdir()).glob("firecrest-server-start-*"))


def test_the_first_answer_comes_after_every_worker_started(
    stack: StackInfo, tmp_path: Path
) -> None:
    before = start_dirs()
    with own_server(stack, tmp_path, overrides={"server": {"workers": 3}}):
        # own_server returns once liveness answered: the worker that answered had waited for
        # its two siblings before it accepted a connection.
        records = [
            json.loads(line)
            for line in (tmp_path / "server.log").read_text().splitlines()
            if line.startswith("{")
        ]
        waited = [r for r in records if r.get("logger") == "firecrest_server.worker_start"]
        assert waited, "no worker waited for its siblings"
        # Each worker saw its siblings' marks, or (later than the first) found the directory
        # already removed by a sibling that had seen them all.
        assert "all 3 workers started; serving" in {r["message"] for r in waited}
        assert all(r["message"].startswith("all ") for r in waited), waited
        # The directory the workers met in is removed once they all have: a server killed
        # later leaves nothing behind.
        assert start_dirs() - before == set()
    assert start_dirs() - before == set()
