"""Regenerate tests/data/firecrest-v2-openapi.json from a FirecREST v2 source tree.

    python3 dev/upstream_openapi.py FIRECREST_V2_GIT [--commit REV] [--venv DIR]
        [--out tests/data/firecrest-v2-openapi.json]

FIRECREST_V2_GIT is a clone (or bare mirror) of https://github.com/eth-cscs/firecrest-v2.
Upstream publishes its OpenAPI document only as a release artefact, so it is generated here the
way its release workflow does: by importing its FastAPI application and asking it for
``app.openapi()``. That needs upstream's own dependencies, so everything happens outside this
repository: the commit is exported into a temporary directory, its ``requirements.txt`` is
installed into a throwaway virtualenv (``--venv`` to keep and reuse one), and the application
is imported there with upstream's own test configuration (``f7t-api-config.local-env-tests.yaml``,
which needs no network at import). No upstream code is copied into this repository: only the
generated document (data) and, beside it, ``firecrest-v2-openapi.source.json`` naming the
repository, commit, date, upstream version and the FastAPI/pydantic versions that rendered it.

The document is written with sorted keys, so a regeneration shows in ``git diff`` only what
changed upstream. tests/conformance/test_openapi.py compares this server's OpenAPI with it.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import venv
from pathlib import Path

REPOSITORY = "https://github.com/eth-cscs/firecrest-v2"
DEFAULT_OUT = (
    Path(__file__).resolve().parent.parent / "tests" / "data" / "firecrest-v2-openapi.json"
)

# Runs inside the throwaway virtualenv, in the exported tree; prints one JSON document.
_RENDER = """
import json, sys
import fastapi, pydantic
from firecrest.main import app
json.dump({"openapi": app.openapi(), "fastapi": fastapi.__version__,
           "pydantic": pydantic.__version__}, sys.stdout)
"""


def _git(git_dir: Path, *args: str) -> str:
    return subprocess.run(
        ["git", f"--git-dir={git_dir}", *args], check=True, capture_output=True, text=True
    ).stdout.strip()


def _git_dir(path: Path) -> Path:
    return path / ".git" if (path / ".git").exists() else path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("repo", type=Path, help="clone or bare mirror of firecrest-v2")
    parser.add_argument("--commit", default="HEAD")
    parser.add_argument("--venv", type=Path, help="virtualenv to create or reuse")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)

    git_dir = _git_dir(args.repo.resolve())
    commit = _git(git_dir, "rev-parse", f"{args.commit}^{{commit}}")
    with tempfile.TemporaryDirectory(prefix="firecrest-v2-") as tmp:
        tree = Path(tmp) / "tree"
        tree.mkdir()
        archive = subprocess.run(
            ["git", f"--git-dir={git_dir}", "archive", commit], check=True, capture_output=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
        env_dir = args.venv or Path(tmp) / "venv"
        python = env_dir / "bin" / "python"
        if not python.exists():
            venv.create(env_dir, with_pip=True)
        # The `boto3` extra pins boto3 to the botocore that aiobotocore accepts; without it
        # pip walks back through hundreds of unpinned boto3 releases (tens of minutes).
        requirements = ["-r", str(tree / "requirements.txt"), "aiobotocore[boto3]"]
        subprocess.run([str(python), "-m", "pip", "install", "-q", *requirements], check=True)
        rendered = subprocess.run(
            [str(python), "-c", _RENDER],
            cwd=tree,
            env={
                "PATH": "/usr/bin:/bin",
                "PYTHONPATH": str(tree / "src"),
                "YAML_CONFIG_FILE": str(tree / "f7t-api-config.local-env-tests.yaml"),
            },
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        changelog = (tree / "CHANGELOG.md").read_text() if (tree / "CHANGELOG.md").exists() else ""
    # Upstream's tags live on release branches (`git describe` on master names an old one), and
    # its info.version is a placeholder: the CHANGELOG's first heading names the version.
    heading = re.search(r"^## \[([^\]]+)\](.*)$", changelog, re.MULTILINE)
    result = json.loads(rendered)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result["openapi"], indent=1, sort_keys=True) + "\n")
    source = {
        "repository": REPOSITORY,
        "commit": commit,
        "commit_date": _git(git_dir, "show", "-s", "--format=%cI", commit),
        "describe": _git(git_dir, "describe", "--tags", "--always", commit),
        "info_version": result["openapi"]["info"]["version"],
        "changelog_version": (
            f"{heading[1]} ({heading[2].strip(' -')})".replace(" ()", "") if heading else None
        ),
        "rendered_with": {"fastapi": result["fastapi"], "pydantic": result["pydantic"]},
        "licence": "BSD-3-Clause (firecrest-v2's LICENSE); generated from its source, unmodified",
    }
    sidecar = args.out.with_name(args.out.name.replace(".json", ".source.json"))
    sidecar.write_text(json.dumps(source, indent=1) + "\n")
    print(f"wrote {args.out} and {sidecar.name} ({commit[:12]}, {source['describe']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
