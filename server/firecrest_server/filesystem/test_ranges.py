import pytest

from .ranges import RangeNotSatisfiable, parse_range


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
