from __future__ import annotations

import pytest

from firecrest_server.status.userinfo import (
    UnexpectedOutput,
    accounts_argv,
    default_account_argv,
    parse_accounts,
    parse_id,
)


def test_id_with_names() -> None:
    user, group, groups = parse_id("uid=1001(alice) gid=1001(alice) groups=1001(alice),27(sudo)\n")
    assert (user.id, user.name) == ("1001", "alice")
    assert (group.id, group.name) == ("1001", "alice")
    assert [(g.id, g.name) for g in groups] == [("1001", "alice"), ("27", "sudo")]


def test_id_group_names_with_spaces_and_selinux_context() -> None:
    text = (
        "uid=70001(jdoe) gid=513(domain users) groups=513(domain users),70002(hpc team) "
        "context=unconfined_u:unconfined_r:unconfined_t:s0-s0:c0.c1023"
    )
    user, group, groups = parse_id(text)
    assert user.name == "jdoe"
    assert group.name == "domain users"
    assert [g.name for g in groups] == ["domain users", "hpc team"]


def test_ids_without_names_are_named_by_number() -> None:
    user, group, groups = parse_id("uid=1234 gid=5678 groups=5678,42(wheel)")
    assert (user.id, user.name) == ("1234", "1234")
    assert (group.id, group.name) == ("5678", "5678")
    assert [(g.id, g.name) for g in groups] == [("5678", "5678"), ("42", "wheel")]


def test_missing_groups_falls_back_to_the_primary_group() -> None:
    _, group, groups = parse_id("uid=1(a) gid=2(b)")
    assert groups == [group]


@pytest.mark.parametrize("text", ["", "alice", "uid=x(alice) gid=1(a)", "groups=1(a)"])
def test_unexpected_id_output(text: str) -> None:
    with pytest.raises(UnexpectedOutput):
        parse_id(text)


def test_accounts_marks_the_default_and_drops_repeats() -> None:
    accounts = parse_accounts("testacct\nproj2\ntestacct\n\n", "proj2\n")
    assert [(a.name, a.default) for a in accounts] == [("testacct", False), ("proj2", True)]


def test_accounts_without_a_known_default() -> None:
    accounts = parse_accounts("a\nb\n", None)
    assert [a.default for a in accounts] == [False, False]


def test_no_associations_is_an_empty_list() -> None:
    assert parse_accounts("", "") == []


def test_account_queries_name_the_user_as_a_value_not_a_keyword() -> None:
    assert accounts_argv("where") == [
        "sacctmgr", "-n", "-P", "show", "assoc", "user=where", "format=account",
    ]  # fmt: skip
    assert default_account_argv("where")[5] == "name=where"
