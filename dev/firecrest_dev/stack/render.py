"""Configuration files of the stack's daemons: templates shipped beside this module, rendered
with `string.Template` (``$name``; none of these formats uses ``$`` itself) into DIR."""

from __future__ import annotations

import shutil
from importlib.resources import files
from pathlib import Path
from string import Template


def render(template: str, **values: object) -> str:
    """The text of ``templates/<template>`` with every ``$name`` replaced; a name the template
    uses but ``values`` lacks is an error (KeyError), never an empty setting."""
    text = files(__package__).joinpath("templates", template).read_text()
    return Template(text).substitute({key: str(value) for key, value in values.items()})


def write_file(path: Path, text: str, mode: int = 0o644, owner: str | None = None) -> Path:
    path.write_text(text)
    path.chmod(mode)
    if owner:
        shutil.chown(path, owner, owner)
    return path
