"""Forwarded headers are believed from trusted proxies only, and only as far as they reach."""

from __future__ import annotations

import ipaddress

import pytest

from firecrest_server.forwarding import ForwardedHeadersMiddleware, resolve_client

PROXIES = [ipaddress.ip_network("10.0.0.0/24"), ipaddress.ip_network("fd00::/64")]


def _headers(**named: str) -> list[tuple[bytes, bytes]]:
    return [(k.replace("_", "-").encode(), v.encode()) for k, v in named.items()]


def test_an_untrusted_peer_cannot_set_its_address_or_scheme() -> None:
    forged = _headers(x_forwarded_for="203.0.113.9", x_forwarded_proto="https")
    assert resolve_client("198.51.100.7", forged, PROXIES, "x-forwarded") is None
    forged = _headers(forwarded="for=203.0.113.9;proto=https")
    assert resolve_client("198.51.100.7", forged, PROXIES, "forwarded") is None
    assert resolve_client(None, forged, PROXIES, "forwarded") is None


def test_a_trusted_proxy_names_the_client_and_scheme() -> None:
    headers = _headers(x_forwarded_for="203.0.113.9", x_forwarded_proto="https")
    assert resolve_client("10.0.0.5", headers, PROXIES, "x-forwarded") == ("203.0.113.9", "https")
    headers = _headers(forwarded='for="[2001:db8::1]:4711";proto=https')
    assert resolve_client("fd00::2", headers, PROXIES, "forwarded") == ("2001:db8::1", "https")


def test_what_a_client_wrote_before_its_proxy_appended_is_skipped() -> None:
    # The client sent "X-Forwarded-For: 1.2.3.4"; the proxy appended the address it saw.
    headers = _headers(x_forwarded_for="1.2.3.4, 203.0.113.9")
    assert resolve_client("10.0.0.5", headers, PROXIES, "x-forwarded") == ("203.0.113.9", None)
    # Two trusted proxies in a row: the walk goes on past the inner one.
    headers = _headers(x_forwarded_for="1.2.3.4, 203.0.113.9, 10.0.0.7")
    assert resolve_client("10.0.0.5", headers, PROXIES, "x-forwarded")[0] == "203.0.113.9"


def test_only_the_configured_kind_of_header_is_read() -> None:
    # Proxies that set X-Forwarded-For pass a client's own "Forwarded" header on untouched.
    headers = _headers(forwarded="for=1.2.3.4;proto=https", x_forwarded_for="203.0.113.9")
    assert resolve_client("10.0.0.5", headers, PROXIES, "x-forwarded") == ("203.0.113.9", None)
    headers = _headers(forwarded="for=203.0.113.9", x_forwarded_for="1.2.3.4")
    assert resolve_client("10.0.0.5", headers, PROXIES, "forwarded") == ("203.0.113.9", None)


@pytest.mark.parametrize("hop", ["unknown", "_hidden", "not an address", ""])
def test_a_hop_that_is_not_an_address_stops_at_the_last_known(hop: str) -> None:
    headers = _headers(forwarded=f"for={hop}, for=10.0.0.9")
    assert resolve_client("10.0.0.5", headers, PROXIES, "forwarded")[0] == "10.0.0.9"


def test_no_headers_from_a_proxy_leave_the_proxy_as_the_client() -> None:
    assert resolve_client("10.0.0.5", [], PROXIES, "x-forwarded") == ("10.0.0.5", None)


def test_schemes_other_than_http_and_https_are_ignored() -> None:
    headers = _headers(x_forwarded_for="203.0.113.9", x_forwarded_proto="javascript")
    assert resolve_client("10.0.0.5", headers, PROXIES, "x-forwarded") == ("203.0.113.9", None)


def test_an_ipv4_mapped_peer_is_matched_as_ipv4() -> None:
    headers = _headers(x_forwarded_for="203.0.113.9")
    assert resolve_client("::ffff:10.0.0.5", headers, PROXIES, "x-forwarded")[0] == "203.0.113.9"


def test_several_header_lines_are_one_list() -> None:
    headers = _headers(x_forwarded_for="1.2.3.4") + _headers(x_forwarded_for="203.0.113.9")
    assert resolve_client("10.0.0.5", headers, PROXIES, "x-forwarded")[0] == "203.0.113.9"


async def test_the_middleware_rewrites_the_scope_it_passes_on() -> None:
    seen: list[dict] = []

    async def app(scope, receive, send) -> None:
        seen.append(scope)

    middleware = ForwardedHeadersMiddleware(app, PROXIES, "x-forwarded")
    headers = _headers(x_forwarded_for="203.0.113.9", x_forwarded_proto="https")
    scope = {"type": "http", "client": ("10.0.0.5", 5000), "scheme": "http", "headers": headers}
    await middleware(scope, None, None)
    await middleware({**scope, "client": ("198.51.100.7", 5000)}, None, None)
    assert (seen[0]["client"], seen[0]["scheme"]) == (("203.0.113.9", 0), "https")
    assert (seen[1]["client"], seen[1]["scheme"]) == (("198.51.100.7", 5000), "http")
    assert scope["client"] == ("10.0.0.5", 5000)  # the caller's scope is left alone
