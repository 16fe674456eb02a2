from __future__ import annotations

import asyncio
import threading

import pytest

from firecrest_server.auth.principals import PrincipalPolicy, nss_uid, refusal
from firecrest_server.config import PrincipalPolicyConfig
from firecrest_server.errors import Forbidden

DEFAULT = PrincipalPolicyConfig()
UIDS = {"alice": 1001, "daemon": 1, "nobody": 65534, "svc": 990, "root": 0, "toor": 0}


@pytest.mark.parametrize(
    ("user", "uid", "refused"),
    [
        ("alice", 1001, False),
        ("alice", 1000, False),
        ("alice", 999, True),
        ("root", None, True),
        ("root", 1001, True),  # by name, whatever a directory says
        ("toor", 0, True),  # by uid, whatever the name
        ("daemon", 1, True),
        ("nobody", 65534, True),
        ("overflow", 4294967294, True),
        ("ghost", None, True),  # unknown to the source
    ],
)
def test_default_refuses_root_system_accounts_and_unknown(user, uid, refused) -> None:
    assert (refusal(DEFAULT, user, uid) is not None) == refused


def test_allow_and_deny_rules() -> None:
    config = PrincipalPolicyConfig(allow_users=["svc"], deny_users=["alice"], min_uid=500)
    assert refusal(config, "svc", 100) is None
    assert refusal(config, "alice", 5000) is not None
    assert refusal(config, "bob", 499) is not None
    assert refusal(config, "bob", 500) is None
    # an allow rule never reaches root, by name or by uid
    assert refusal(PrincipalPolicyConfig(allow_users=["toor"]), "toor", 0) is not None


def test_unknown_users_may_be_left_to_sshd() -> None:
    config = PrincipalPolicyConfig(unknown_users="allow")
    assert refusal(config, "ghost", None) is None
    assert refusal(config, "root", None) is not None
    assert refusal(config, "daemon", 1) is not None


async def test_nss_lookups_are_cached_and_refusals_are_403() -> None:
    now = [0.0]
    calls: list[str] = []

    def lookup(name: str) -> int | None:
        calls.append(name)
        return UIDS.get(name)

    policy = PrincipalPolicy(DEFAULT, lookup=lookup, clock=lambda: now[0])
    for _ in range(3):
        assert await policy.check_token("alice", {}) == 1001
        with pytest.raises(Forbidden, match="User daemon may not use this service"):
            await policy.check_token("daemon", {"uid": 5000})  # claims ignored with nss
    assert calls == ["alice", "daemon"]
    now[0] = DEFAULT.cache_ttl + 1
    assert await policy.check_grant("alice", None) == 1001
    assert calls == ["alice", "daemon", "alice"]


async def test_uid_from_claim_and_from_grant() -> None:
    config = PrincipalPolicyConfig(uid_source="claim", uid_claim="uidNumber")
    policy = PrincipalPolicy(config, lookup=lambda name: pytest.fail("no NSS lookup"))
    assert await policy.check_token("alice", {"uidNumber": 1001}) == 1001
    assert await policy.check_token("alice", {"uidNumber": "1001"}) == 1001
    for claims in ({"uidNumber": 1}, {}, {"uidNumber": True}, {"uidNumber": "-5"}):
        with pytest.raises(Forbidden):
            await policy.check_token("alice", claims)
    assert await policy.check_grant("alice", 1001) == 1001
    with pytest.raises(Forbidden):
        await policy.check_grant("alice", None)


def test_nss_uid_reads_this_hosts_name_service() -> None:
    assert nss_uid("root") == 0
    assert nss_uid("no-such-login-here") is None


async def test_simultaneous_requests_share_one_lookup_and_survive_a_cancelled_one() -> None:
    release = threading.Event()
    calls: list[str] = []

    def lookup(name: str) -> int | None:
        calls.append(name)
        release.wait(5)
        return UIDS.get(name)

    policy = PrincipalPolicy(DEFAULT, lookup=lookup)
    waiting = [asyncio.create_task(policy.check_token("alice", {})) for _ in range(50)]
    await asyncio.sleep(0.05)
    waiting[0].cancel()  # the request that started the lookup goes away
    release.set()
    results = await asyncio.gather(*waiting, return_exceptions=True)
    assert isinstance(results[0], asyncio.CancelledError)
    assert results[1:] == [1001] * 49
    assert calls == ["alice"]
    # Remembered afterwards, as before.
    assert await policy.check_token("alice", {}) == 1001
    assert calls == ["alice"]
