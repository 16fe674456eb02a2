"""This server's OpenAPI against FirecREST v2's own, recorded in tests/data/.

Every difference the comparison finds must be listed in tests/data/openapi-deviations.yaml as
an extension or a deviation with its reason, and quoted in docs/api.md; a listed difference
that no longer occurs fails too, so the list stays true. No stack is needed: the document is
built in process from a configuration, as ``GET /openapi.json`` serves it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric import rsa

from firecrest_server.app import create_app
from tests.server.unit.test_app_edge import settings

from .openapi_diff import differences, operations

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data"
UPSTREAM = DATA / "firecrest-v2-openapi.json"
SOURCE = DATA / "firecrest-v2-openapi.source.json"
DEVIATIONS = DATA / "openapi-deviations.yaml"
API_DOC = ROOT / "docs" / "api.md"


def _pattern(text: str) -> re.Pattern[str]:
    # `*` is the only wildcard: the lines are full of [], {} and | that must match literally.
    return re.compile(".*".join(re.escape(part) for part in text.split("*")) + r"\Z")


@pytest.fixture(scope="module")
def ours() -> dict:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return create_app(settings(key)).openapi()


@pytest.fixture(scope="module")
def upstream() -> dict:
    return json.loads(UPSTREAM.read_text())


@pytest.fixture(scope="module")
def listed() -> list[dict]:
    return yaml.safe_load(DEVIATIONS.read_text())


@pytest.fixture(scope="module")
def found(ours, upstream) -> list[str]:
    return differences(ours, upstream)


def test_recorded_document_names_its_source(upstream) -> None:
    source = json.loads(SOURCE.read_text())
    assert source["repository"] == "https://github.com/eth-cscs/firecrest-v2"
    assert re.fullmatch(r"[0-9a-f]{40}", source["commit"])
    assert upstream["info"]["version"] == source["info_version"]
    # The recording is upstream's whole API, not a fragment.
    assert len(operations(upstream)) >= 30


def test_every_difference_is_listed_with_a_reason(found, listed) -> None:
    patterns = [_pattern(entry["difference"]) for entry in listed]
    unlisted = [line for line in found if not any(p.match(line) for p in patterns)]
    assert unlisted == [], "differences from FirecREST v2 that no entry explains"


def test_every_listed_difference_still_occurs(found, listed) -> None:
    stale = [
        e["difference"]
        for e in listed
        if not any(_pattern(e["difference"]).match(x) for x in found)
    ]
    assert stale == [], "entries in openapi-deviations.yaml that no longer occur"


def test_entries_are_explained_and_documented(listed) -> None:
    doc = API_DOC.read_text()
    for entry in listed:
        assert entry["kind"] in ("extension", "deviation"), entry
        assert len(entry["reason"]) > 20, entry
        assert f"`{entry['difference']}`" in doc, f"docs/api.md does not list {entry['difference']}"


def test_comparison_sees_a_changed_field(ours, upstream) -> None:
    # The comparison itself must be able to fail: change the type of one field and rename
    # another, as a careless model change would, and all of it shows up.
    changed = json.loads(json.dumps(ours))
    schemas = changed["components"]["schemas"]
    schemas["SubmitResponse"]["properties"]["jobId"] = {"type": "integer"}
    entry = schemas["FileEntry"]["properties"]
    entry["sizeInBytes"] = entry.pop("size")
    lines = set(differences(changed, upstream)) - set(differences(ours, upstream))
    assert (
        "POST /compute/{}/jobs: response 201: jobId: type here integer, upstream null|string"
        in lines
    )
    # FileEntry is in ls's list and in the answers of mkdir, symlink, chmod and chown.
    assert {line for line in lines if "ops/ls" in line} == {
        "GET /filesystem/{}/ops/ls: response 200: output[].sizeInBytes: only here",
        "GET /filesystem/{}/ops/ls: response 200: output[].size: only upstream",
    }
    assert len(lines) == 1 + 2 * 5
