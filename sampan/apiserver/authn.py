"""Who is calling: client certificates, static bearer tokens, ServiceAccount JWTs.

``Authenticator.authenticate`` returns a ``UserInfo`` or None for anonymous
requests (the caller answers 401).  Every authenticated user is also in
``system:authenticated``, as upstream's authenticator chain adds it.
"""

from __future__ import annotations

import base64
import csv
import datetime as dt
import hashlib
import hmac
import logging
import ssl
import time
import uuid
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable

from aiohttp import web

# cryptography and PyJWT (about 10 MB) are imported only when a token or key is
# actually handled: client certificates are checked with the ssl module alone.
if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    from sampan.apiserver.pki import Pki

    PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey

log = logging.getLogger(__name__)

DEFAULT_ISSUER = "https://kubernetes.default.svc.cluster.local"
AUTHENTICATED = "system:authenticated"
SA_PREFIX = "system:serviceaccount:"
SA_GROUP = "system:serviceaccounts"
# Clock skew tolerated on exp/nbf/iat, like upstream's token validator.
LEEWAY_SECONDS = 60
# kubectl exec over WebSocket may carry the token in the subprotocol list.
_WS_TOKEN_PREFIX = "base64url.bearer.authorization.k8s.io."

# (namespace, name) -> the ServiceAccount object, or None if it no longer exists.
ServiceAccountGetter = Callable[[str, str], dict | None]


@dataclass
class UserInfo:
    name: str
    uid: str = ""
    groups: list[str] = field(default_factory=list)
    extra: dict[str, list[str]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The authentication.k8s.io UserInfo shape (empty fields left out)."""
        out: dict[str, Any] = {"username": self.name}
        if self.uid:
            out["uid"] = self.uid
        if self.groups:
            out["groups"] = list(self.groups)
        if self.extra:
            out["extra"] = {k: list(v) for k, v in self.extra.items()}
        return out


def _with_authenticated(groups: Iterable[str]) -> list[str]:
    out = [g for g in groups if g]
    if AUTHENTICATED not in out:
        out.append(AUTHENTICATED)
    return out


@dataclass
class _StaticToken:
    user: str
    uid: str
    groups: list[str]


def load_token_file(path: Path) -> dict[str, _StaticToken]:
    """Read a kube-apiserver ``--token-auth-file``: token,user,uid[,"group1,group2"]."""
    tokens: dict[str, _StaticToken] = {}
    with open(path, newline="") as f:
        for line_no, record in enumerate(csv.reader(f, skipinitialspace=True), start=1):
            if not record or all(not c.strip() for c in record):
                continue
            if len(record) < 3:
                raise ValueError(
                    f"token file '{path}' must have at least 3 columns (token, user name, user uid), "
                    f"found {len(record)}"
                )
            token = record[0]
            if not token:
                log.warning("empty token in token file %s line %d, skipping", path, line_no)
                continue
            if token in tokens:
                log.warning("duplicate token in token file %s line %d, keeping the later one", path, line_no)
            groups = [g.strip() for g in record[3].split(",")] if len(record) > 3 else []
            tokens[token] = _StaticToken(record[1], record[2], [g for g in groups if g])
    return tokens


def _load_public_key(item: Any) -> list[PublicKey]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    if isinstance(item, (rsa.RSAPublicKey, ec.EllipticCurvePublicKey)):
        return [item]
    if isinstance(item, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey)):
        return [item.public_key()]
    data = Path(item).read_bytes() if isinstance(item, (str, Path)) else bytes(item)
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError:
        key = serialization.load_pem_private_key(data, password=None).public_key()  # type: ignore[union-attr]
    if not isinstance(key, (rsa.RSAPublicKey, ec.EllipticCurvePublicKey)):
        raise ValueError("service account keys must be RSA or ECDSA")
    return [key]


def key_id(key: PublicKey) -> str:
    """Upstream's ``kid``: unpadded base64url SHA-256 of the DER public key."""
    from cryptography.hazmat.primitives import serialization

    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(b"=").decode()


def _algorithm(key: PublicKey | rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> str:
    from cryptography.hazmat.primitives.asymmetric import rsa

    if isinstance(key, (rsa.RSAPublicKey, rsa.RSAPrivateKey)):
        return "RS256"
    curve = key.curve.name
    return {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}[curve]


class Authenticator:
    def __init__(
        self,
        ca_cert_path: Path | None,
        token_file: Path | None,
        service_account_public_keys: Iterable[Any],
        issuer: str | list[str] = DEFAULT_ISSUER,
        *,
        audiences: list[str] | None = None,
        service_account_getter: ServiceAccountGetter | None = None,
    ) -> None:
        self.ca_subject = _certificate_subject(Path(ca_cert_path)) if ca_cert_path else None
        self.tokens = load_token_file(Path(token_file)) if token_file else {}
        self._sa_key_sources = list(service_account_public_keys)
        self._sa_keys: list[PublicKey] | None = None
        self.issuers = [issuer] if isinstance(issuer, str) else list(issuer)
        # Like kube-apiserver, the API audiences default to the issuer.
        self.audiences = audiences if audiences is not None else list(self.issuers)
        self.service_account_getter = service_account_getter
        self._connection_users: weakref.WeakKeyDictionary[Any, UserInfo | None] = weakref.WeakKeyDictionary()

    @property
    def sa_keys(self) -> list[PublicKey]:
        """The ServiceAccount token keys, loaded when the first token needs them."""
        if self._sa_keys is None:
            self._sa_keys = [k for item in self._sa_key_sources for k in _load_public_key(item)]
        return self._sa_keys

    # --- entry point --------------------------------------------------------------------

    def authenticate(self, request: web.Request) -> UserInfo | None:
        user = self.authenticate_certificate(request)
        if user is not None:
            return user
        token = bearer_token(request)
        if token:
            return self.authenticate_token(token)
        return None

    # --- client certificates ------------------------------------------------------------

    def authenticate_certificate(self, request: web.Request) -> UserInfo | None:
        transport = request.transport
        ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
        if ssl_object is None:
            return None
        # A connection's peer certificate never changes: check it once per connection
        # (parsing and verifying it on every request was a large share of a request's CPU).
        try:
            return self._connection_users[ssl_object]
        except KeyError:
            pass
        user = self._certificate_user(ssl_object)
        self._connection_users[ssl_object] = user
        return user

    def _certificate_user(self, ssl_object: Any) -> UserInfo | None:
        # getpeercert() is only non-empty when the TLS layer verified the chain up to
        # the cluster CA (the only CA the server trusts); the issuer check then keeps
        # the rule that client certificates are issued by the CA directly.
        peer = ssl_object.getpeercert()
        if not peer:
            return None
        if self.ca_subject is not None and peer.get("issuer") != self.ca_subject:
            return None
        return _user_from_subject(peer.get("subject") or ())

    # --- bearer tokens ------------------------------------------------------------------

    def authenticate_token(self, token: str) -> UserInfo | None:
        static = self._static(token)
        if static is not None:
            return static
        if token.count(".") == 2 and self.sa_keys:
            return self.authenticate_service_account_token(token)
        return None

    def _static(self, token: str) -> UserInfo | None:
        for known, entry in self.tokens.items():
            if hmac.compare_digest(known.encode(), token.encode()):
                return UserInfo(entry.user, entry.uid, _with_authenticated(entry.groups), {})
        return None

    def authenticate_service_account_token(self, token: str) -> UserInfo | None:
        import jwt

        try:
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            return None
        if unverified.get("iss") not in self.issuers:
            return None
        claims = None
        for key in self.sa_keys:
            try:
                claims = jwt.decode(
                    token,
                    key,
                    algorithms=[_algorithm(key)],
                    audience=self.audiences,
                    issuer=self.issuers,
                    leeway=LEEWAY_SECONDS,
                    options={"require": ["exp", "iss", "sub", "aud"]},
                )
                break
            except jwt.InvalidSignatureError:
                continue
            except jwt.PyJWTError as e:
                log.debug("service account token rejected: %s", e)
                return None
        if claims is None:
            return None
        return self._service_account_user(claims)

    def _service_account_user(self, claims: dict[str, Any]) -> UserInfo | None:
        private = claims.get("kubernetes.io")
        if not isinstance(private, dict):
            return None
        namespace = private.get("namespace") or ""
        sa = private.get("serviceaccount") or {}
        name, uid = sa.get("name") or "", sa.get("uid") or ""
        if not namespace or not name or claims.get("sub") != f"{SA_PREFIX}{namespace}:{name}":
            return None
        if self.service_account_getter is not None:
            # A token outlives nothing: the account (same uid) must still exist.
            current = self.service_account_getter(namespace, name)
            if current is None or (current.get("metadata") or {}).get("uid") != uid:
                return None
        extra: dict[str, list[str]] = {}
        pod = private.get("pod") or {}
        if pod.get("name"):
            extra["authentication.kubernetes.io/pod-name"] = [pod["name"]]
            extra["authentication.kubernetes.io/pod-uid"] = [pod.get("uid", "")]
        node = private.get("node") or {}
        if node.get("name"):
            extra["authentication.kubernetes.io/node-name"] = [node["name"]]
            extra["authentication.kubernetes.io/node-uid"] = [node.get("uid", "")]
        if claims.get("jti"):
            extra["authentication.kubernetes.io/credential-id"] = [f"JTI={claims['jti']}"]
        groups = [SA_GROUP, f"{SA_GROUP}:{namespace}", AUTHENTICATED]
        return UserInfo(f"{SA_PREFIX}{namespace}:{name}", uid, groups, extra)


def _certificate_subject(path: Path) -> Any:
    """A CA certificate's subject in the form ``SSLObject.getpeercert()`` reports names."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(cafile=str(path))
    certs = ctx.get_ca_certs()
    return certs[0]["subject"] if certs else None


def _user_from_subject(subject: Any) -> UserInfo | None:
    """The user a client certificate names, from a decoded ``getpeercert()`` subject."""
    attrs = [pair for rdn in subject for pair in rdn]
    cns = [value for name, value in attrs if name == "commonName"]
    if not cns or not cns[0]:
        return None
    groups = [str(value) for name, value in attrs if name == "organizationName"]
    return UserInfo(str(cns[0]), "", _with_authenticated(groups), {})


def bearer_token(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    for proto in request.headers.get("Sec-WebSocket-Protocol", "").split(","):
        proto = proto.strip()
        if proto.startswith(_WS_TOKEN_PREFIX):
            encoded = proto[len(_WS_TOKEN_PREFIX):]
            try:
                return base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
            except (ValueError, UnicodeDecodeError):
                return None
    return None


def _rfc3339(ts: int) -> str:
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def issue_service_account_token(
    pki: Pki,
    namespace: str,
    name: str,
    uid: str,
    audiences: list[str],
    expiration_seconds: int,
    bound_object: dict | None = None,
    *,
    issuer: str = DEFAULT_ISSUER,
    now: float | None = None,
) -> tuple[str, str]:
    """Mint a bound ServiceAccount token; returns (token, RFC 3339 expiration).

    ``bound_object`` is ``{"kind": "Pod"|"Secret"|"Node", "name", "uid"}``; a Pod
    may also carry ``"node": {"name", "uid"}`` for the node it runs on.
    """
    issued = int(now if now is not None else time.time())
    expires = issued + int(expiration_seconds)
    private: dict[str, Any] = {"namespace": namespace, "serviceaccount": {"name": name, "uid": uid}}
    if bound_object:
        kind = bound_object.get("kind", "")
        ref = {"name": bound_object.get("name", ""), "uid": bound_object.get("uid", "")}
        if kind == "Pod":
            private["pod"] = ref
            node = bound_object.get("node")
            if node:
                private["node"] = {"name": node.get("name", ""), "uid": node.get("uid", "")}
        elif kind == "Secret":
            private["secret"] = ref
        elif kind == "Node":
            private["node"] = ref
        else:
            raise ValueError(f"cannot bind a token to a {kind!r}")
    claims = {
        "aud": list(audiences),
        "exp": expires,
        "iat": issued,
        "iss": issuer,
        "jti": str(uuid.uuid4()),
        "kubernetes.io": private,
        "nbf": issued,
        "sub": f"{SA_PREFIX}{namespace}:{name}",
    }
    import jwt

    key = pki.sa_key
    token = jwt.encode(claims, key, algorithm=_algorithm(key), headers={"kid": key_id(key.public_key())})
    return token, _rfc3339(expires)
