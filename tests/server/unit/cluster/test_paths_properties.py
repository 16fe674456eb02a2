"""checked_path, for arbitrary input: never a path outside the configured file systems."""

from __future__ import annotations

import posixpath

from hypothesis import given, settings
from hypothesis import strategies as st

from firecrest_server.cluster.paths import checked_path
from firecrest_server.config import SystemConfig
from firecrest_server.errors import BadRequest

FILE_SYSTEMS = ["/home", "/tmp", "/scratch/project", "/data/"]


def _system(paths: list[str]) -> SystemConfig:
    return SystemConfig.model_validate(
        {
            "name": "c",
            "ssh": {"host": "h", "known_hosts": "/k", "credentials": {"type": "ca", "ca_key": "K"}},
            "file_systems": [{"path": p} for p in paths],
        }
    )


SYSTEM = _system(FILE_SYSTEMS)
ROOTS = [posixpath.normpath(p) for p in FILE_SYSTEMS]

# Paths built from the pieces that matter (slashes, dots, the roots' own names, near misses)
# plus arbitrary text, so both the structure and the characters are explored.
segments = st.one_of(
    st.sampled_from(
        [
            "",
            ".",
            "..",
            "...",
            "home",
            "tmp",
            "scratch",
            "project",
            "data",
            "etc",
            "passwd",
            "homex",
            "tmpfoo",
            "alice",
            "~",
            "\x00",
            " ",
            "%2e%2e",
            "\u2024\u2024",
            "\\",
        ]
    ),
    st.text(max_size=6),
)
paths = st.one_of(
    st.lists(segments, max_size=10).map("/".join),
    st.lists(segments, max_size=10).map(lambda s: "/" + "/".join(s)),
    st.lists(segments, max_size=10).map(lambda s: "//" + "/".join(s)),
    st.text(max_size=40),
)


def _inside(path: str) -> bool:
    return any(path == root or path.startswith(root.rstrip("/") + "/") for root in ROOTS)


@settings(max_examples=2000)
@given(paths)
def test_checked_path_never_escapes(path: str) -> None:
    try:
        result = checked_path(SYSTEM, path)
    except BadRequest:
        return
    assert _inside(result), (path, result)
    assert result == posixpath.normpath(result)  # what was checked is what is used
    assert ".." not in result.split("/")
    assert "\x00" not in result
    assert result.startswith("/")
    assert not result.startswith("//")


@given(paths)
def test_checked_path_is_idempotent(path: str) -> None:
    try:
        result = checked_path(SYSTEM, path)
    except BadRequest:
        return
    assert checked_path(SYSTEM, result) == result


@given(st.sampled_from(ROOTS), st.lists(st.sampled_from(["a", "b", ".", ".."]), max_size=8))
def test_dotdot_is_resolved_lexically_before_the_check(root: str, parts: list[str]) -> None:
    path = posixpath.join(root, *parts)
    normal = posixpath.normpath(path)
    try:
        assert checked_path(SYSTEM, path) == normal
        assert _inside(normal)
    except BadRequest:
        assert not _inside(normal)


@given(st.text(max_size=30))
def test_without_file_systems_any_absolute_path_is_normalised(path: str) -> None:
    try:
        result = checked_path(_system([]), path)
    except BadRequest:
        assert not path.startswith("/") or "\x00" in path
        return
    assert result == posixpath.normpath(result)
    assert result.startswith("/")
    assert not result.startswith("//")
