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
        assert all(r["message"] == "all 3 workers started; serving" for r in waited)
        assert len(start_dirs() - before) == 1
    # The directory the workers met in goes with the server.
    assert start_dirs() - before == set()
