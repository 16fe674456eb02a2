import pytest

from firecrest_server.filesystem.ranges import RangeNotSatisfiable, parse_range


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("bytes=0-99", (0, 99)),
        ("bytes=100-", (100, 999)),
        ("bytes=-100", (900, 999)),
        ("bytes=-5000", (0, 999)),
        ("bytes=990-5000", (990, 999)),
        ("bytes=0-1,5-6", None),  # multiple ranges: ignored, whole file
        ("items=0-1", None),
    ],
)
def test_parse_range(header, expected) -> None:
    assert parse_range(header, 1000) == expected


@pytest.mark.parametrize("header", ["bytes=1000-", "bytes=5-4", "bytes=-0"])
def test_unsatisfiable(header) -> None:
    with pytest.raises(RangeNotSatisfiable) as excinfo:
        parse_range(header, 1000)
    assert excinfo.value.status_code == 416
    assert excinfo.value.headers["Content-Range"] == "bytes */1000"


@pytest.mark.parametrize("header", ["bytes=-1", "bytes=-100", "bytes=0-", "bytes=0-0", "bytes=5-9"])
def test_every_range_of_an_empty_file_is_unsatisfiable(header) -> None:
    with pytest.raises(RangeNotSatisfiable) as excinfo:
        parse_range(header, 0)
    assert excinfo.value.headers["Content-Range"] == "bytes */0"


def test_an_empty_file_without_range_or_with_an_ignored_one_is_sent_whole() -> None:
    assert parse_range(None, 0) is None
    assert parse_range("bytes=0-1,5-6", 0) is None


@pytest.mark.parametrize("size", [1, 2, 1000])
@pytest.mark.parametrize("header", ["bytes=-1", "bytes=0-", "bytes=0-0", "bytes=-99999"])
def test_satisfiable_ranges_stay_inside_the_file(header, size) -> None:
    first, last = parse_range(header, size)
    assert 0 <= first <= last <= size - 1
