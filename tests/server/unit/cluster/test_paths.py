"""Only the path checker makes a CheckedPath: what operations require has been checked."""

from __future__ import annotations

import re
from pathlib import Path

import firecrest_server
from firecrest_server.cluster.paths import CheckedPath, checked_path
from firecrest_server.config import SystemConfig

PACKAGE = Path(firecrest_server.__file__).parent


def test_checked_path_is_made_only_by_the_checker() -> None:
    makers = [
        f"{path.relative_to(PACKAGE)}:{number}"
        for path in PACKAGE.rglob("*.py")
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(r"\bCheckedPath\(", line) and "NewType" not in line
    ]
    assert makers == ["cluster/paths.py:" + str(_maker_line())]


def _maker_line() -> int:
    lines = (PACKAGE / "cluster" / "paths.py").read_text().splitlines()
    return next(i for i, line in enumerate(lines, 1) if "return CheckedPath(" in line)


def test_the_checked_form_is_what_operations_get() -> None:
    system = SystemConfig.model_validate(
        {
            "name": "cluster",
            "ssh": {
                "host": "login",
                "known_hosts": "/dev/null",
                "credentials": {"type": "static_keys", "keys": {}},
            },
            "file_systems": [{"path": "/home"}],
        }
    )
    path: CheckedPath = checked_path(system, "/home/alice//x/../y")
    assert path == "/home/alice/y"
