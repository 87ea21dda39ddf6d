"""Join tokens that also let a joining agent trust the server, like K3s' secure tokens.

``sampan token`` prints ``K10<sha256 of the cluster CA's PEM>::<secret>``. With such a token the
agent first fetches the CA from the server's public ``/cacerts`` (without sending anything
secret), checks it against the hash, and from then on talks to the server only over TLS verified
against that CA, for the name every API server certificate here carries
(``kubernetes.default.svc``; node serving certificates may never carry it, see
sampan/apiserver/nodecerts.py). A bare secret (the token file's content) still joins, without
verifying the server, and the agent says so.
"""

from __future__ import annotations

import hashlib
import re
import ssl

PREFIX = "K10"
SEPARATOR = "::"
SERVER_NAME = "kubernetes.default.svc"  # in every API server certificate (pki.CLUSTER_NAMES)
CA_PATH = "/cacerts"
_HASH = re.compile(r"[0-9a-f]{64}")


class JoinError(Exception):
    """The server could not be trusted as the token says."""


def ca_hash(ca_pem: bytes) -> str:
    return hashlib.sha256(ca_pem).hexdigest()


def format_token(secret: str, ca_pem: bytes | None) -> str:
    return f"{PREFIX}{ca_hash(ca_pem)}{SEPARATOR}{secret}" if ca_pem else secret


def parse_token(token: str) -> tuple[str | None, str]:
    """(the CA hash or None, the secret the server knows)."""
    token = token.strip()
    if token.startswith(PREFIX) and SEPARATOR in token:
        digest, secret = token[len(PREFIX):].split(SEPARATOR, 1)
        if not _HASH.fullmatch(digest.lower()) or not secret:
            raise JoinError("malformed token: expected K10<64 hex digits>::<secret>")
        return digest.lower(), secret
    return None, token


def verified_context(ca_pem: bytes, expected_hash: str) -> ssl.SSLContext:
    """A TLS context trusting only ``ca_pem``, once it matches the token's hash."""
    if ca_hash(ca_pem) != expected_hash:
        raise JoinError("the server's CA does not match the token (wrong server, or a token of another cluster)")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies the chain and the host name
    try:
        ctx.load_verify_locations(cadata=ca_pem.decode("ascii", errors="replace"))
    except ssl.SSLError as exc:
        raise JoinError(f"the server's CA is not a usable certificate: {exc}") from exc
    return ctx


async def trusted_context(server: str, expected_hash: str) -> ssl.SSLContext:
    """Fetches the CA from ``server`` (TLS not verified yet, no credentials sent) and checks it."""
    from sampan.client.lite import LiteHttpClient

    probe = LiteHttpClient(server, False)
    try:
        status, body = await probe.fetch_public(CA_PATH)
    except (OSError, TimeoutError) as exc:
        raise JoinError(f"cannot fetch the server's CA from {server}{CA_PATH}: {exc}") from exc
    finally:
        await probe.close()
    if status != 200:
        raise JoinError(f"the server answered {status} for {CA_PATH}")
    return verified_context(body, expected_hash)
