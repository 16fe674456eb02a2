"""What a secret looks like in a string, and how it leaves one.

Bearer tokens and staging capabilities are JWTs; a staging URL carries one as a path segment
(``/staging/<token>/parts/1``), and a mistaken log call or exception message could carry any of
them. Log lines, error messages and metric labels pass through ``redact`` so that none of
these reaches a log store, a client or a Prometheus server.
"""

from __future__ import annotations

import re

REDACTED = "[redacted]"

# A JWS in compact form: base64url header that starts like '{"' (eyJ), payload, signature.
# The signature may be empty (alg none) and is matched too: it alone is the credential.
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
# The capability segment of a staging URL, whatever it looks like (even when not a JWT).
_STAGING_SEGMENT = re.compile(r"(/staging/)[^/?#\s]+")
# "Bearer <anything>" in a header value or message.
_BEARER = re.compile(r"(?i)(bearer\s+)[^\s\"',;]+")


def redact(text: str) -> str:
    """``text`` with every token-shaped part replaced by ``[redacted]``."""
    # Cheap prefilter: almost every log line and message has none of these.
    if (
        "eyJ" not in text
        and "/staging/" not in text
        and "earer" not in text
        and "EARER" not in text
    ):
        return text
    text = _STAGING_SEGMENT.sub(lambda m: m.group(1) + REDACTED, text)
    text = _BEARER.sub(lambda m: m.group(1) + REDACTED, text)
    return _JWT.sub(REDACTED, text)


def redact_path(path: str) -> str:
    """A request path fit for an access log (staging capabilities removed)."""
    if "/staging/" not in path:
        return path
    return _STAGING_SEGMENT.sub(lambda m: m.group(1) + REDACTED, path)
