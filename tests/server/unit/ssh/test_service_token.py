"""The probe user's service-account token: fetched, reused, renewed, and failures mapped."""

from __future__ import annotations

from urllib.parse import parse_qs

import httpx
import pytest

from firecrest_server.config import ServiceAccountToken
from firecrest_server.errors import ServiceUnavailable
from firecrest_server.ssh.credentials import CredentialError
from firecrest_server.ssh.service_token import ClientCredentialsToken, WithServiceToken

SECRET = "s3cret-never-shown"


def config(**overrides) -> ServiceAccountToken:
    return ServiceAccountToken.model_validate(
        {"token_url": "https://idp.example/token", "client_id": "probe", "client_secret": SECRET}
        | overrides
    )


class Clock:
    now = 1000.0

    def __call__(self) -> float:
        return self.now


def provider(handler, clock=None) -> tuple[ClientCredentialsToken, list[dict]]:
    forms: list[dict] = []

    def record(request: httpx.Request) -> httpx.Response:
        forms.append({k: v[0] for k, v in parse_qs(request.content.decode()).items()})
        return handler(request)

    http = httpx.AsyncClient(transport=httpx.MockTransport(record))
    return ClientCredentialsToken(config(), http, clock or Clock()), forms


async def test_a_token_is_fetched_once_and_renewed_before_it_expires() -> None:
    clock = Clock()
    issued = iter(["t1", "t2"])

    def answer(request):
        return httpx.Response(200, json={"access_token": next(issued), "expires_in": 300})

    tokens, forms = provider(answer, clock)
    assert await tokens.get() == "t1"
    clock.now += 269  # 300 s minus the 30 s renewal margin, not yet reached
    assert await tokens.get() == "t1"
    clock.now += 1
    assert await tokens.get() == "t2"
    assert len(forms) == 2
    assert forms[0] == {
        "grant_type": "client_credentials",
        "client_id": "probe",
        "client_secret": SECRET,
    }


@pytest.mark.parametrize("status", [400, 401, 500])
async def test_a_refusal_is_a_credential_error_without_the_secret(status: int) -> None:
    tokens, _ = provider(lambda request: httpx.Response(status, text=f"bad {SECRET}"))
    with pytest.raises(CredentialError) as refused:
        await tokens.get()
    assert str(status) in refused.value.message
    assert SECRET not in refused.value.message


async def test_an_unreachable_endpoint_is_503_and_an_unusable_answer_an_error() -> None:
    def unreachable(request):
        raise httpx.ConnectError("refused")

    tokens, _ = provider(unreachable)
    with pytest.raises(ServiceUnavailable):
        await tokens.get()
    tokens, _ = provider(lambda request: httpx.Response(200, json={"token_type": "Bearer"}))
    with pytest.raises(CredentialError, match="no usable token"):
        await tokens.get()


async def test_the_service_token_replaces_whatever_token_is_passed() -> None:
    seen: list[tuple[str, str | None]] = []

    class KeyService:
        async def client_key(self, username, token):
            seen.append((username, token))
            return "key", None

    tokens, _ = provider(lambda r: httpx.Response(200, json={"access_token": "svc-token"}))
    credentials = WithServiceToken(KeyService(), tokens)
    assert await credentials.client_key("probe", None) == ("key", None)
    assert await credentials.client_key("probe", "a-callers-token") == ("key", None)
    assert seen == [("probe", "svc-token"), ("probe", "svc-token")]
