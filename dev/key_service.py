"""A small SSH key service for the local stack, speaking FirecREST's SSHService protocol.

    .venv/bin/python dev/key_service.py DIR/stack.json --port PORT

``POST /api/v1/ssh-keys`` with ``Authorization: Bearer <access token>`` and the JSON body
``{"duration": "1min", "username": "alice"}`` answers 201 with
``{"sshKey": {"privateKey": ..., "publicKey": <certificate>}}``: a fresh ed25519 key and a
certificate for it, signed by the stack's user CA, whose only principal is the username, valid
for the duration asked (at most 10 minutes). The token is checked with the API server's settings
(signature against the identity provider's JWKS, issuer, audience, expiry; no leeway), and its
username claim must be the username asked for: a token for alice never gets a key for bob (403).
``GET /health`` answers 200.

It exists so that the API server's ``key_service`` credential mode can be tested end to end on
the stack (tests/server/test_credential_modes.py). A site's real key service (CSCS runs one
for FirecREST) has its own policies; this one has only the checks above.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import jwt

from firecrest_server.config import CertificateAuthorityCredentials
from firecrest_server.ssh.credentials import CertificateAuthority

MAX_SECONDS = 600
_DURATION = re.compile(r"^(\d+)(s|min|h)?$")


def _seconds(duration: str) -> int:
    match = _DURATION.match(duration)
    if not match:
        raise ValueError(f"bad duration {duration!r}")
    value, unit = int(match[1]), match[2] or "s"
    return value * {"s": 1, "min": 60, "h": 3600}[unit]


class KeyIssuer:
    def __init__(self, stack_json: Path) -> None:
        stack = json.loads(stack_json.read_text())
        # The API server's own token settings (JSON is YAML: the stack writes it as JSON).
        config = json.loads((stack_json.parent / "server" / "config.yaml").read_text())
        self.auth = config["auth"]
        self.ca_key = Path(stack["ssh"]["ca_key"]).read_text()
        self.jwks = jwt.PyJWKClient(self.auth["jwks_url"], cache_keys=True)
        self.authorities: dict[int, CertificateAuthority] = {}  # per validity, in seconds

    def username_of(self, token: str) -> str:
        key = self.jwks.get_signing_key_from_jwt(token)
        claims = jwt.decode(
            token,
            key.key,
            algorithms=self.auth["algorithms"],
            audience=self.auth["audience"],
            issuer=self.auth["issuer"],
            options={"require": ["exp", "iss", "aud"]},
        )
        return str(claims[self.auth["username_claim"]])

    def issue(self, username: str, seconds: int) -> dict[str, str]:
        # The server's own built-in CA mints the key: the same certificate policy (one
        # principal, no forwarding, pty or rc), with the validity asked for.
        authority = self.authorities.get(seconds)
        if authority is None:
            credentials = CertificateAuthorityCredentials(
                type="ca", ca_key=self.ca_key, validity=seconds
            )
            authority = self.authorities.setdefault(seconds, CertificateAuthority(credentials))
        key, cert = asyncio.run(authority.client_key(username, None))
        assert cert is not None
        return {
            "privateKey": key.export_private_key().decode(),
            "publicKey": cert.export_certificate().decode(),
        }


def handler_for(issuer: KeyIssuer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/health":
                self._answer(HTTPStatus.OK, {"status": "ok"})
            else:
                self._answer(HTTPStatus.NOT_FOUND, {"message": "not found"})

        def do_POST(self) -> None:
            if self.path != "/api/v1/ssh-keys":
                self._answer(HTTPStatus.NOT_FOUND, {"message": "not found"})
                return
            header = self.headers.get("Authorization", "")
            if not header.startswith("Bearer "):
                self._answer(HTTPStatus.UNAUTHORIZED, {"message": "a bearer token is required"})
                return
            try:
                owner = issuer.username_of(header.removeprefix("Bearer "))
            except jwt.PyJWKClientConnectionError as exc:
                self._answer(HTTPStatus.SERVICE_UNAVAILABLE, {"message": f"no JWKS: {exc}"})
                return
            except (jwt.PyJWTError, KeyError) as exc:
                self._answer(HTTPStatus.UNAUTHORIZED, {"message": f"invalid token: {exc}"})
                return
            try:
                length = int(self.headers.get("Content-Length", "0"))
                if not 0 <= length <= 4096:
                    raise ValueError("the body must be 0 to 4096 bytes")
                body = json.loads(self.rfile.read(length) or b"{}")
                username = str(body["username"])
                seconds = _seconds(str(body.get("duration", "1min")))
                if seconds <= 0:
                    raise ValueError("the duration must be positive")
            except (ValueError, KeyError, TypeError) as exc:
                self._answer(HTTPStatus.BAD_REQUEST, {"message": f"bad request: {exc}"})
                return
            if username != owner:
                self._answer(HTTPStatus.FORBIDDEN, {"message": f"this token is not {username}'s"})
                return
            key = issuer.issue(username, min(seconds, MAX_SECONDS))
            self._answer(HTTPStatus.CREATED, {"sshKey": key})

        def _answer(self, status: HTTPStatus, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:
            pass  # quiet: the API server logs what matters

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("stack_json", type=Path)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    issuer = KeyIssuer(args.stack_json.resolve())
    server = ThreadingHTTPServer(("127.0.0.1", args.port), handler_for(issuer))
    server.serve_forever()


if __name__ == "__main__":
    main()
