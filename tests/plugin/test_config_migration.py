"""Configurations written for aiida-firecrest 1.0 (and for other transports) work unchanged.

The stack test has the published 1.0.0 (its own venv, ``tests/e2e/published_plugin.py``)
configure a computer and export its configuration with ``verdi computer export config``; this
plugin then configures a computer with that YAML file as is and passes ``verdi computer test``.
1.0 stores ``client_secret`` as the absolute path of a secret file it wrote.
"""

from __future__ import annotations

import base64
import shutil
import uuid
import warnings
from pathlib import Path
from urllib.parse import unquote_plus

import pytest
import yaml

from aiida_firecrest.client.auth import basic_authorization, client_credentials_request
from aiida_firecrest.client.errors import AuthenticationError
from aiida_firecrest.client_secret import PATH_HINT, names_a_file, secret_source
from aiida_firecrest.transport import FirecrestTransport
from firecrest_dev.aiida_env import computer_settings
from firecrest_dev.info import StackInfo

from ..e2e.published_plugin import Verdi, published_venv, verdi_in
from .conftest import scheduler_type
from .test_transport_setup import _cli

SECRET = "s3cr3t-from-a-file"


# ------------------------------------------------------------------------- pure logic


def test_an_absolute_path_to_an_existing_file_is_read_as_the_secret(tmp_path: Path) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text(SECRET + "\n")  # 1.0 strips the file's content too
    assert names_a_file(str(secret_file))
    assert secret_source(str(secret_file))() == SECRET
    # read at each use: a rotated secret is picked up
    secret_file.write_text("rotated")
    assert secret_source(str(secret_file))() == "rotated"


@pytest.mark.parametrize(
    "value",
    ["plain-secret", "/no/such/file/anywhere", "relative/path", "/+abc==", ""],
)
def test_anything_else_is_the_secret_itself(value: str) -> None:
    assert not names_a_file(value)
    assert secret_source(value)() == value


def test_a_directory_or_an_empty_file_is_not_a_secret(tmp_path: Path) -> None:
    assert not names_a_file(str(tmp_path))
    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(AuthenticationError, match="is empty"):
        secret_source(str(empty))()


def test_client_secret_post_and_basic_requests() -> None:
    form, headers = client_credentials_request("id", "sec", "client_secret_post")
    assert form == {"grant_type": "client_credentials", "client_id": "id", "client_secret": "sec"}
    assert "Authorization" not in headers
    form, headers = client_credentials_request("id", "sec", "client_secret_basic")
    assert form == {"grant_type": "client_credentials"}  # the secret is not in the body
    assert headers["Authorization"] == basic_authorization("id", "sec")
    with pytest.raises(ValueError, match="unknown"):
        client_credentials_request("id", "sec", "private_key_jwt")  # type: ignore[arg-type]


def test_basic_credentials_are_form_encoded_before_base64() -> None:
    """RFC 6749 2.3.1: a ':' in the id or secret must not split the pair."""
    value = basic_authorization("svc:a b", "p@ss:wörd/+")
    scheme, encoded = value.split(" ")
    assert scheme == "Basic"
    pair = base64.b64decode(encoded).decode("ascii")
    raw_id, raw_secret = pair.split(":")  # exactly one separator
    assert (unquote_plus(raw_id), unquote_plus(raw_secret)) == ("svc:a b", "p@ss:wörd/+")


def _transport(**extra: object) -> FirecrestTransport:
    return FirecrestTransport(
        machine="x", url="http://h", compute_resource="c", token_uri="http://h/token",
        client_id="id", client_secret="sec", **extra,
    )  # fmt: skip


def test_shell_options_are_accepted() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        transport = _transport(use_login_shell=False, safe_interval=2.5)
    assert [str(w.message) for w in caught] == [
        "The firecrest transport runs no shell: use_login_shell has no effect"
    ]
    assert transport.get_safe_open_interval() == 2.5  # honoured, as 1.0 did
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        default = _transport(use_login_shell=None, safe_interval=None)
    assert caught == []  # unset (what `verdi computer configure` stores by default): silent
    assert default.get_safe_open_interval() == 0
    with pytest.raises(ValueError, match="safe_interval"):
        _transport(safe_interval=-1)
    with pytest.raises(ValueError, match="token_endpoint_auth_method"):
        _transport(token_endpoint_auth_method="client_secret_jwt")


# ------------------------------------------------------------------- against the stack


async def _whoami(transport: FirecrestTransport) -> str:
    await transport.open_async()
    try:
        return await transport.whoami_async()
    finally:
        await transport.close_async()


@pytest.mark.stack
@pytest.mark.parametrize("method", ["client_secret_post", "client_secret_basic"])
async def test_both_client_auth_methods_against_the_provider(
    stack: StackInfo, tmp_path: Path, method: str
) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text(stack.users["alice"].client_secret)
    settings = computer_settings(stack, token_endpoint_auth_method=method)
    assert await _whoami(FirecrestTransport(machine="m", **settings)) == "alice"
    from_file = {**settings, "client_secret": str(secret_file)}
    assert await _whoami(FirecrestTransport(machine="m", **from_file)) == "alice"
    wrong = {**settings, "client_secret": "not-the-secret"}
    with pytest.raises(AuthenticationError, match="HTTP 401") as refused:
        await _whoami(FirecrestTransport(machine="m", **wrong))
    assert "not-the-secret" not in str(refused.value)
    assert PATH_HINT not in str(refused.value)


@pytest.mark.stack
async def test_a_missing_secret_file_is_named_as_a_possible_cause(stack: StackInfo) -> None:
    missing = f"/nonexistent-{uuid.uuid4().hex}/secret"
    settings = computer_settings(stack, client_secret=missing)
    with pytest.raises(AuthenticationError, match="HTTP 401") as refused:
        await _whoami(FirecrestTransport(machine="m", **settings))
    assert PATH_HINT in str(refused.value)
    assert missing not in str(refused.value)  # it may have been a secret after all


def _ok(result) -> str:
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    return output


def _exported_by_published_plugin(verdi: Verdi, stack: StackInfo, temp_directory: str) -> Path:
    """``verdi computer export config`` of a computer that aiida-firecrest 1.0.0 configured
    with alice's secret typed in (it writes the secret to ~/.firecrest/ and keeps the path)."""
    alice = stack.users["alice"]
    answers = verdi.workdir / "answers.yaml"
    answers.write_text(
        yaml.safe_dump(
            {
                "url": stack.url,
                "token_uri": stack.token_url,
                "client_id": alice.client_id,
                "client_secret": alice.client_secret,
                "compute_resource": stack.system,
                "billing_account": stack.account,
                "temp_directory": temp_directory,
                "max_io_allowed": 8,
                "checksum_check": False,
            }
        )
    )
    _ok(
        verdi(
            "profile", "setup", "core.sqlite_dos", "-n", "--profile-name", "published",
            "--email", "published@example.org", "--first-name", "Published",
            "--last-name", "Plugin", "--institution", "tests", "--broker", "none",
        )
    )  # fmt: skip
    _ok(
        verdi(
            "computer", "setup", "-n", "--label", "old", "--hostname", stack.system,
            "--transport", "firecrest", "--scheduler", "firecrest",
            "--work-dir", "/home/alice/aiida/",
        )
    )  # fmt: skip
    _ok(verdi("computer", "configure", "firecrest", "old", "-n", "--config", str(answers)))
    exported = verdi.workdir / "old-config.yaml"
    _ok(verdi("computer", "export", "config", "old", str(exported)))
    return exported


@pytest.mark.stack
@pytest.mark.slow
def test_a_published_1_0_configuration_works_unchanged(stack: StackInfo, tmp_path: Path) -> None:
    from aiida import orm
    from aiida.cmdline.commands.cmd_computer import (
        computer_configure,
        computer_setup,
        computer_test,
    )

    home = stack.users["alice"].home
    temp_directory = f"{home}/.aiida-firecrest-migration-{uuid.uuid4().hex[:8]}"
    try:
        with verdi_in(published_venv(), tmp_path) as verdi:
            exported = _exported_by_published_plugin(verdi, stack, temp_directory)
            text = exported.read_text()
            config = yaml.safe_load(text)
            # What makes it a 1.0 configuration: the secret is a path to the file 1.0 wrote.
            secret_path = Path(config["client_secret"])
            assert secret_path.is_absolute()
            assert secret_path.is_relative_to(verdi.workdir / ".firecrest")
            assert secret_path.read_text().strip() == stack.users["alice"].client_secret

            label = f"fc-migrated-{uuid.uuid4().hex[:6]}"
            result = _cli(
                computer_setup,
                [
                    "-n", "--label", label, "--hostname", stack.system,
                    "--transport", "firecrest", "--scheduler", scheduler_type(),
                    "--work-dir", f"{temp_directory}/work/",
                ],
            )  # fmt: skip
            assert result.exit_code == 0, result.output
            result = _cli(computer_configure, ["firecrest", label, "-n", "--config", str(exported)])
            assert result.exit_code == 0, result.output
            computer = orm.load_computer(label)
            stored = computer.get_configuration()
            assert stored["client_secret"] == str(secret_path)  # kept as the path, unchanged
            assert stored.get("use_login_shell") is None

            result = _cli(computer_test, [label])
            assert result.exit_code == 0, result.output
            assert "[Failed]" not in result.output
            assert "alice" in result.output  # the remote user name check

            # The same file with aiida-core's options for every transport, as a core.ssh_async
            # configuration carries them: accepted, too.
            with_shell_options = tmp_path / "with-shell-options.yaml"
            with_shell_options.write_text(
                text + yaml.safe_dump({"use_login_shell": False, "safe_interval": 0.5})
            )
            result = _cli(
                computer_configure, ["firecrest", label, "-n", "--config", str(with_shell_options)]
            )
            assert result.exit_code == 0, result.output
            stored = computer.get_configuration()
            assert stored["safe_interval"] == 0.5
            assert stored["use_login_shell"] is False
            with pytest.warns(UserWarning, match="use_login_shell has no effect"):
                transport = computer.get_transport()
            assert transport.get_safe_open_interval() == 0.5
            with transport:
                assert transport.whoami() == "alice"
    finally:
        shutil.rmtree(temp_directory, ignore_errors=True)


@pytest.mark.stack
def test_configure_stores_no_shell_options_by_default(stack: StackInfo) -> None:
    from aiida import orm
    from aiida.cmdline.commands.cmd_computer import computer_configure

    computer = orm.Computer(
        label=f"fc-defaults-{uuid.uuid4().hex[:6]}",
        hostname=stack.system,
        transport_type="firecrest",
        scheduler_type=scheduler_type(),
        workdir="/home/alice/aiida",
    ).store()
    arguments = ["firecrest", computer.label, "-n"]
    for key, value in computer_settings(stack).items():
        if key != "checksum_check":
            arguments += [f"--{key.replace('_', '-')}", str(value)]
    result = _cli(computer_configure, arguments)
    assert result.exit_code == 0, result.output
    stored = computer.get_configuration()
    assert stored["use_login_shell"] is None
    assert stored["safe_interval"] == 0
    assert stored["token_endpoint_auth_method"] == "client_secret_post"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no use_login_shell warning for a fresh configuration
        assert computer.get_transport().get_safe_open_interval() == 0


@pytest.mark.stack
def test_ssh_only_keys_are_refused(stack: StackInfo, tmp_path: Path) -> None:
    """What docs/aiida.md says of a ``core.ssh_async`` configuration: its SSH-only keys must go."""
    from aiida import orm
    from aiida.cmdline.commands.cmd_computer import computer_configure

    computer = orm.Computer(
        label=f"fc-from-ssh-{uuid.uuid4().hex[:6]}",
        hostname=stack.system,
        transport_type="firecrest",
        scheduler_type=scheduler_type(),
        workdir="/home/alice/aiida",
    ).store()
    config = tmp_path / "ssh-async.yaml"
    ours = computer_settings(stack)
    config.write_text(yaml.safe_dump({**ours, "host": "cluster", "backend": "asyncssh"}))
    result = _cli(computer_configure, ["firecrest", computer.label, "-n", "--config", str(config)])
    assert result.exit_code != 0
    assert "host" in result.output
    assert not computer.is_configured
    config.write_text(yaml.safe_dump({**ours, "use_login_shell": True, "safe_interval": 0}))
    result = _cli(computer_configure, ["firecrest", computer.label, "-n", "--config", str(config)])
    assert result.exit_code == 0, result.output
