"""The stack's configuration templates (dev/firecrest_dev/stack/templates) render whole."""

from __future__ import annotations

from importlib.resources import files
from string import Template

import pytest

from firecrest_dev.stack.render import render

TEMPLATES = sorted(
    entry.name for entry in files("firecrest_dev.stack").joinpath("templates").iterdir()
)


def test_the_daemons_configurations_are_templates() -> None:
    assert set(TEMPLATES) >= {
        "haproxy.cfg",
        "my.cnf",
        "redis.conf",
        "slurm.conf",
        "slurmdbd.conf",
        "sshd_config",
    }


@pytest.mark.parametrize("name", TEMPLATES)
def test_every_placeholder_is_replaced(name: str) -> None:
    text = files("firecrest_dev.stack").joinpath("templates", name).read_text()
    identifiers = Template(text).get_identifiers()
    assert identifiers, f"{name} has no placeholders: it would not need to be a template"
    rendered = render(name, **{identifier: "VALUE" for identifier in identifiers})
    assert "$" not in rendered
    assert rendered.count("VALUE") >= len(identifiers)


def test_a_missing_value_is_an_error_not_an_empty_setting() -> None:
    with pytest.raises(KeyError, match="data"):
        render("redis.conf", port=6379)
