"""Authentication: bearer tokens validated against the identity provider's keys."""

from firecrest_server.auth.jwks import JWKSCache, load_public_keys
from firecrest_server.auth.tokens import Principal, TokenRejected, TokenValidator

__all__ = ["JWKSCache", "Principal", "TokenRejected", "TokenValidator", "load_public_keys"]
