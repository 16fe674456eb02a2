"""CA serials from Redis: unique across replicas, and still issued while Redis is down."""

from __future__ import annotations

import asyncio
import base64
import struct

import asyncssh
from redis.asyncio import Redis

from firecrest_dev.redis_process import RedisProcess
from firecrest_server.config import CertificateAuthorityCredentials
from firecrest_server.ssh.credentials import CertificateAuthority
from firecrest_server.state.serials import RedisSerials


def serial_of(cert: asyncssh.SSHCertificate | None) -> int:
    """The serial as sshd reads it from the certificate's wire form (ed25519: key type, nonce,
    public key, then the uint64 serial)."""
    assert cert is not None
    blob = base64.b64decode(cert.export_certificate().split()[1])
    offset = 0
    for _ in range(3):
        (length,) = struct.unpack_from(">I", blob, offset)
        offset += 4 + length
    return struct.unpack_from(">Q", blob, offset)[0]


def authority(redis_server: RedisProcess, errors: list[str]) -> CertificateAuthority:
    ca_key = asyncssh.generate_private_key("ssh-ed25519").export_private_key().decode()
    config = CertificateAuthorityCredentials(type="ca", ca_key=ca_key)
    serials = RedisSerials(Redis.from_url(redis_server.url), "firecrest", errors.append)
    return CertificateAuthority(config, serials)


async def test_replicas_never_issue_the_same_serial(
    redis: Redis, redis_server: RedisProcess
) -> None:
    errors: list[str] = []
    replicas = [authority(redis_server, errors) for _ in range(3)]
    issued = await asyncio.gather(*(replicas[i % 3].client_key("alice", None) for i in range(30)))
    serials = sorted(serial_of(cert) for _key, cert in issued)
    assert serials == list(range(1, 31))
    assert errors == []


async def test_fallback_serials_cannot_meet_counted_ones(
    redis: Redis, redis_server: RedisProcess
) -> None:
    errors: list[str] = []
    ca = authority(redis_server, errors)
    redis_server.stop()
    try:
        issued = [await ca.client_key("alice", None) for _ in range(5)]
    finally:
        redis_server.start()
    serials = {serial_of(cert) for _key, cert in issued}
    assert len(serials) == 5
    assert all(2**63 <= serial < 2**64 for serial in serials)
    assert errors == ["serial"] * 5
