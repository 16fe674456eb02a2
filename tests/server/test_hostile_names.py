"""File names built to break shell quoting either work or get 400 — and never run anything.

Every name hides a command that would create a canary file in alice's home (the working directory
of her SSH sessions). After driving every ops endpoint with each name, no canary may exist.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from firecrest_dev.info import StackInfo

pytestmark = pytest.mark.stack

CANARY = f"canary-{uuid.uuid4().hex[:8]}"

HOSTILE_NAMES = [
    "with space",
    "it's quoted",
    'double"quote',
    f"$(touch {CANARY})",
    f"`touch {CANARY}`",
    f"x; touch {CANARY}; y",
    f"x && touch {CANARY}",
    f"x | touch {CANARY}",
    f"'$(touch {CANARY})'",
    f'"$(touch {CANARY})"',
    f"line\ntouch {CANARY}",
    f"-rf --no-preserve-root {CANARY}",
    "-n",
    "--help",
    "ünïcödé ✓ 数据",
    "back\\slash",
    "glob*?[a]",
    "$HOME",
    "tab\there",
    f">{CANARY}",
]


@pytest.fixture
def api(stack: StackInfo, token_for) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=f"{stack.url}/filesystem/{stack.system}/ops",
        headers={"Authorization": f"Bearer {token_for('alice')}"},
        timeout=60,
    ) as client:
        yield client


@pytest.fixture
def workdir(api: httpx.Client, stack: StackInfo) -> Iterator[str]:
    path = f"{stack.users['alice'].home}/hostile-{uuid.uuid4().hex[:8]}"
    assert api.post("/mkdir", json={"path": path}).status_code == 201
    yield path
    api.delete("/rm", params={"path": path})


def _ok_or_400(response: httpx.Response, *allowed: int) -> bool:
    assert response.status_code in (*allowed, 400), (response.status_code, response.text)
    if response.status_code == 400:
        assert response.json()["message"]
    return response.status_code != 400


@pytest.mark.parametrize("name", HOSTILE_NAMES, ids=[f"name{i}" for i in range(len(HOSTILE_NAMES))])
def test_hostile_name_never_executes(
    api: httpx.Client, stack: StackInfo, workdir: str, name: str
) -> None:
    home = Path(stack.users["alice"].home)
    path = f"{workdir}/{name}"
    content = b"hostile content\n"

    uploaded = _ok_or_400(
        api.post("/upload", params={"path": workdir}, files={"file": (name, content)}), 204
    )
    if uploaded:
        listing = api.get("/ls", params={"path": workdir})
        assert listing.status_code == 200
        assert name in [e["name"] for e in listing.json()["output"]]
        assert api.get("/view", params={"path": path}).json()["output"] == content.decode()
        assert api.get("/head", params={"path": path, "lines": 1}).status_code == 200
        assert api.get("/tail", params={"path": path, "bytes": 3}).status_code == 200
        checksum = api.get("/checksum", params={"path": path})
        assert checksum.json()["output"]["checksum"] == hashlib.sha256(content).hexdigest()
        assert api.get("/file", params={"path": path}).status_code == 200
        assert api.get("/stat", params={"path": path}).json()["output"]["size"] == len(content)
        assert api.get("/download", params={"path": path}).content == content
        assert api.put("/chmod", json={"path": path, "mode": "600"}).status_code == 200
        _ok_or_400(api.put("/chown", json={"path": path, "owner": "alice", "group": "alice"}), 200)
        _ok_or_400(api.post("/symlink", json={"path": path, "linkPath": f"{path}.link"}), 201)
        _ok_or_400(
            api.post(
                "/compress",
                json={"path": path, "targetPath": f"{path}.tar.gz", "compression": "gzip"},
            ),
            204,
        )
        _ok_or_400(
            api.post(
                "/compress",
                json={
                    "path": workdir,
                    "targetPath": f"{workdir}/m.tar",
                    "matchPattern": name,
                    "compression": "none",
                },
            ),
            204,
        )
        assert api.delete("/rm", params={"path": path}).status_code == 204
    created = _ok_or_400(api.post("/mkdir", json={"path": path}), 201)
    if created:
        assert api.get("/ls", params={"path": path}).status_code == 200
        assert api.delete("/rm", params={"path": path}).status_code == 204

    # The injected commands would have run in alice's home (her SSH sessions start there).
    assert not (home / CANARY).exists()
    assert not Path(workdir, CANARY).exists()
    assert not [p for p in home.rglob(f"*{CANARY}*") if p.name == CANARY]
