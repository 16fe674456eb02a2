"""Configuring and constructing the transport: ``verdi computer setup/configure``, no network
I/O before it is needed, secrets never shown, the sync API (what ``verdi computer test`` uses)."""

from __future__ import annotations

import socket
import uuid
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from aiida_firecrest.client import RetryPolicy
from aiida_firecrest.transport import FirecrestTransport
from firecrest_dev.info import StackInfo

from .conftest import computer_settings, scheduler_type

SECRET = "s3cr3t-never-shown"


def test_auth_options() -> None:
    names = list(FirecrestTransport.get_valid_auth_params())
    assert names == [
        "url",
        "token_uri",
        "client_id",
        "client_secret",
        "token_endpoint_auth_method",
        "token_command",
        "static_token",
        "compute_resource",
        "billing_account",
        "temp_directory",
        "max_io_allowed",
        "checksum_check",
        "use_login_shell",  # aiida-core's, accepted for other transports' configurations
        "safe_interval",
    ]
    # never prompted for (test_config_migration.py: accepted from a configuration file)
    for _, spec in FirecrestTransport._common_auth_options:
        assert spec["prompt_fn"](None) is False
    assert FirecrestTransport._DEFAULT_SAFE_OPEN_INTERVAL == 0
    secret = dict(FirecrestTransport._valid_auth_options)["client_secret"]
    assert secret["hide_input"] is True
    assert secret["show_default"] is False


def test_init_does_no_network_io(monkeypatch) -> None:
    attempts = []

    def refuse(sock, address):
        attempts.append(address)
        raise ConnectionRefusedError("no network in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    transport = FirecrestTransport(
        machine="cluster",
        url="http://10.255.255.1:9",  # unroutable: would hang if anything connected
        token_uri="http://10.255.255.1:9/token",
        client_id="someone",
        client_secret=SECRET,
        compute_resource="cluster",
    )
    assert not transport.is_open
    assert SECRET not in str(transport)
    assert SECRET not in repr(transport)
    assert SECRET not in repr(transport.settings)
    assert transport.get_safe_open_interval() == 0
    assert attempts == []

    async def open_then_use() -> None:
        await transport.open_async()
        assert transport.is_open
        assert attempts == []  # opening does not connect either
        transport.client.session._retry = RetryPolicy(attempts=1)
        with pytest.raises(OSError, match="Cannot reach") as failure:
            await transport.whoami_async()
        assert SECRET not in str(failure.value)
        await transport.close_async()

    import asyncio

    asyncio.run(open_then_use())
    assert attempts  # the first operation is what reached for the network


def test_init_needs_url_system_and_credentials() -> None:
    with pytest.raises(ValueError, match="url and compute_resource"):
        FirecrestTransport(machine="x")
    with pytest.raises(ValueError, match="credentials"):
        FirecrestTransport(machine="x", url="http://h", compute_resource="c", client_id="id")
    static = FirecrestTransport(
        machine="x", url="http://h/", compute_resource="c", static_token="tok", max_io_allowed=3
    )
    assert static.settings.url == "http://h"
    assert static.settings.auth_kind() == "static_token"
    assert static.settings.max_io_allowed == 3
    command = FirecrestTransport(
        machine="x", url="http://h", compute_resource="c", token_command="oidc-token x",
        token_uri="None", client_id="None", client_secret="None", temp_directory="/scratch/u/",
    )  # fmt: skip
    assert command.settings.auth_kind() == "token_command"
    assert command.settings.temp_directory == "/scratch/u"


def _cli(command, arguments: list[str], **kwargs):
    """Invoke a verdi command as `verdi` would, with the loaded profile in the context."""
    from aiida.common.extendeddicts import AttributeDict
    from aiida.manage import get_manager

    context = AttributeDict({"profile": get_manager().get_profile()})
    return CliRunner().invoke(command, arguments, obj=context, catch_exceptions=False, **kwargs)


def test_verdi_computer_setup_and_configure(stack: StackInfo, tmp_path: Path) -> None:
    from aiida import orm
    from aiida.cmdline.commands.cmd_computer import computer_configure, computer_setup

    label = f"fc-cli-{uuid.uuid4().hex[:6]}"
    result = _cli(
        computer_setup,
        [
            "-n",
            "--label", label,
            "--hostname", stack.system,
            "--transport", "firecrest",
            "--scheduler", scheduler_type(),
            "--work-dir", "/home/alice/aiida",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    settings = computer_settings(stack, client_secret=SECRET)
    arguments = ["firecrest", label, "-n"]
    for key, value in settings.items():
        if key == "checksum_check":
            arguments.append("--checksum-check" if value else "--no-checksum-check")
        else:
            arguments += [f"--{key.replace('_', '-')}", str(value)]
    result = _cli(computer_configure, arguments)
    assert result.exit_code == 0, result.output
    assert SECRET not in result.output
    computer = orm.load_computer(label)
    stored = computer.get_authinfo(orm.User.collection.get_default()).get_auth_params()
    assert stored["client_secret"] == SECRET  # stored as given
    assert stored["compute_resource"] == stack.system

    # and again from a YAML file (`--config`), with the real secret: the transport works
    config = tmp_path / "firecrest.yaml"
    config.write_text(yaml.safe_dump(computer_settings(stack)))
    result = _cli(computer_configure, ["firecrest", label, "-n", "--config", str(config)])
    assert result.exit_code == 0, result.output
    with computer.get_transport() as transport:
        assert transport.whoami() == "alice"


def test_interactive_configure_hides_the_secret(stack: StackInfo) -> None:
    from aiida import orm
    from aiida.cmdline.commands.cmd_computer import computer_configure

    computer = orm.Computer(
        label=f"fc-prompt-{uuid.uuid4().hex[:6]}",
        hostname=stack.system,
        transport_type="firecrest",
        scheduler_type=scheduler_type(),
        workdir="/home/alice/aiida",
    ).store()
    alice = stack.users["alice"]
    answers = [
        stack.url,
        stack.token_url,
        alice.client_id,
        SECRET,
        "",  # token endpoint auth method: client_secret_post
        "",  # token command
        "",  # static token
        stack.system,
        "",  # billing account
        "",  # temp directory
        "4",
        "n",
    ]
    result = _cli(
        computer_configure, ["firecrest", computer.label], input="\n".join(answers) + "\n"
    )
    assert result.exit_code == 0, result.output
    assert SECRET not in result.output
    stored = computer.get_authinfo(orm.User.collection.get_default()).get_auth_params()
    assert stored["client_secret"] == SECRET
    assert stored["max_io_allowed"] == 4
    assert stored["token_endpoint_auth_method"] == "client_secret_post"
    # reconfiguring offers stored values as defaults, but never the secret's
    result = _cli(computer_configure, ["firecrest", computer.label], input="\n" * len(answers))
    assert result.exit_code == 0, result.output
    assert SECRET not in result.output


def test_sync_api_as_verdi_computer_test_uses_it(make_computer, stack, tmp_path) -> None:
    """whoami, makedirs, putfile, path_exists, getfile, remove: through AiiDA's blocking
    wrappers, inside ``with transport:``."""
    transport = make_computer().get_transport()
    remote = f"{stack.users['alice'].home}/sync-{uuid.uuid4().hex[:8]}"
    local = tmp_path / "probe.txt"
    local.write_text("probe")
    with transport:
        assert transport.is_open
        assert transport.whoami() == "alice"
        transport.makedirs(remote)
        transport.putfile(str(local), f"{remote}/probe.txt")
        assert transport.path_exists(f"{remote}/probe.txt")
        transport.getfile(f"{remote}/probe.txt", str(tmp_path / "back.txt"))
        assert (tmp_path / "back.txt").read_text() == "probe"
        transport.remove(f"{remote}/probe.txt")
        assert not transport.path_exists(f"{remote}/probe.txt")
        assert transport.listdir(remote) == []
        transport.rmtree(remote)
    assert not transport.is_open


@pytest.mark.parametrize("kind", ["token_command", "static_token"])
async def test_other_ways_to_authenticate(make_computer, stack, kind) -> None:
    alice = stack.users["alice"]
    value = alice.token_command if kind == "token_command" else stack.fetch_token("alice")
    computer = make_computer(token_uri="", client_id="", client_secret="", **{kind: value})
    transport = computer.get_transport()
    assert transport.settings.auth_kind() == kind
    await transport.open_async()
    try:
        assert await transport.whoami_async() == "alice"
    finally:
        await transport.close_async()


async def test_checksum_check(make_computer, stack, tmp_path) -> None:
    computer = make_computer(checksum_check=True)
    transport = computer.get_transport()
    remote = f"{stack.users['alice'].home}/sum-{uuid.uuid4().hex[:8]}"
    (tmp_path / "f").write_bytes(b"\x00checked\xff")
    await transport.open_async()
    try:
        await transport.makedirs_async(remote)
        await transport.putfile_async(tmp_path / "f", f"{remote}/f")
        await transport.getfile_async(f"{remote}/f", tmp_path / "g")
        assert (tmp_path / "g").read_bytes() == b"\x00checked\xff"
        await transport.rmtree_async(remote)
    finally:
        await transport.close_async()


async def test_concurrent_requests_are_capped_per_transport(make_computer, stack) -> None:
    import asyncio

    computer = make_computer(max_io_allowed=2)
    transport = computer.get_transport()
    await transport.open_async()
    try:
        session = transport.client.session
        peak = 0
        original = session._send

        async def counting_send(build, *, stream):
            nonlocal peak
            peak = max(peak, 2 - session._semaphore._value)
            return await original(build, stream=stream)

        session._send = counting_send
        home = stack.users["alice"].home
        results = await asyncio.gather(*(transport.isdir_async(home) for _ in range(10)))
        assert all(results)
        assert peak == 2
    finally:
        await transport.close_async()
