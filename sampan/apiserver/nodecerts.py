"""Serving certificates of remote node agents, signed by the cluster CA.

A joining agent keeps its private key on its node and POSTs a CertificateSigningRequest-shaped
object (``spec.request`` a PEM CSR for ``CN=system:node:<name>, O=system:nodes``, signer
``kubernetes.io/kubelet-serving``) to :data:`SIGN_PATH` with its node credential. The server
checks the request and answers the same object with ``status.certificate`` filled in, so the
API server can later verify the agent's endpoint against the cluster CA and the node's name.

Signed right away, as K3s does when an agent joins, rather than through stored
certificates.k8s.io CSR objects plus an approver: that API is not served here, and every
check an approver would make (who asks, for which node, which names) the server makes itself.

Rules: the requester is in ``system:nodes`` (a per-node identity ``system:node:<name>`` only for
its own name; the cluster join token, a shared bootstrap credential, for any node) or is an
admin; the one DNS name is the node's name (the API server checks exactly that name when it
dials the node, so no other node's certificate may carry it); IPs are the node's
InternalIP/ExternalIP addresses or the address the request came from (before the Node
exists, that is the only proof of an address there is).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import datetime as dt
import ipaddress
from typing import TYPE_CHECKING, Any

import orjson

from sampan.api import errors

if TYPE_CHECKING:  # annotations only: the node agent imports this module's names (see below)
    from aiohttp import web

# The agent imports the names below: the server-only modules load in the functions that use them.

SIGN_PATH = "/sampan/v1/kubelet-serving-certificate"
CA_PATH = "/cacerts"
SIGNER = "kubernetes.io/kubelet-serving"
NODE_GROUP = "system:nodes"
NODE_USER_PREFIX = "system:node:"
ADMIN_GROUP = "system:masters"
USAGES = ("digital signature", "key encipherment", "server auth")
SERVING_DAYS = 365
_KIND, _GROUP = "CertificateSigningRequest", "certificates.k8s.io"
_IP_TYPES = ("InternalIP", "ExternalIP")
Obj = dict[str, Any]


def _cause(field: str, message: str, reason: str = "FieldValueInvalid") -> Obj:
    return {"reason": reason, "message": message, "field": field}


def _invalid(name: str, *causes: Obj) -> errors.APIError:
    return errors.invalid(_KIND, _GROUP, name, list(causes))


def _forbidden(name: str, why: str, causes: list[Obj] | None = None) -> errors.APIError:
    return errors.forbidden(errors.GroupResource(_GROUP, "certificatesigningrequests"), name, why, causes)


def parse_request(body: Obj) -> tuple[Any, str]:
    """The CSR of a request object and the node it names; 422 with causes when malformed."""
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    from sampan.api.names import is_dns1123_subdomain

    spec = body.get("spec") if isinstance(body.get("spec"), dict) else {}
    name = str((body.get("metadata") or {}).get("name") or "") if isinstance(body.get("metadata"), dict) else ""
    if spec.get("signerName") != SIGNER:
        raise _invalid(name, _cause("spec.signerName", f'supported values: "{SIGNER}"', "FieldValueNotSupported"))
    usages = spec.get("usages") or list(USAGES)
    if not isinstance(usages, list) or "server auth" not in usages or set(usages) - set(USAGES):
        raise _invalid(name, _cause("spec.usages", f"must include \"server auth\" and only {', '.join(USAGES)}"))
    try:
        pem = base64.b64decode(str(spec.get("request") or ""), validate=True)
        csr = x509.load_pem_x509_csr(pem)
    except (ValueError, binascii.Error):
        raise _invalid(name, _cause("spec.request", "PEM block type must be CERTIFICATE REQUEST")) from None
    if not csr.is_signature_valid:
        raise _invalid(name, _cause("spec.request", "the request is not signed by its key"))
    cns = [a.value for a in csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    orgs = [a.value for a in csr.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
    node = str(cns[0])[len(NODE_USER_PREFIX):] if len(cns) == 1 and str(cns[0]).startswith(NODE_USER_PREFIX) else ""
    if not node or is_dns1123_subdomain(node) or orgs != [NODE_GROUP] or len(csr.subject) != 2:
        raise _invalid(name, _cause("spec.request", f'subject must be exactly "CN=system:node:<node name>, '
                                                    f'O={NODE_GROUP}" with a valid node name'))
    return csr, node


def authorize(user: Any, node: str) -> None:
    """Only nodes (and admins) get node serving certificates; a node's own identity only its own."""
    if user is None:
        return  # no authenticator: in-process servers trust every caller
    groups = set(getattr(user, "groups", []) or [])
    username = str(getattr(user, "name", ""))
    if ADMIN_GROUP in groups:
        return
    if NODE_GROUP not in groups:
        raise _forbidden(NODE_USER_PREFIX + node, f'user "{username}" is not a node')
    if username.startswith(NODE_USER_PREFIX) and username != NODE_USER_PREFIX + node:
        raise _forbidden(NODE_USER_PREFIX + node, f'node "{username[len(NODE_USER_PREFIX):]}" may only request '
                                                  f"a certificate for itself")


def check_names(csr: Any, node: str, node_obj: Obj | None, source_ip: str) -> list[str]:
    """Why the requested names are not the node's own (empty: they are)."""
    from cryptography import x509

    try:
        san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return ["the request names no DNS name or IP address"]
    addresses = ((node_obj or {}).get("status") or {}).get("addresses") or []
    own_ips = {str(a.get("address")) for a in addresses if a.get("type") in _IP_TYPES}
    if source_ip:
        own_ips.add(source_ip)
    named_by_ip = _is_ip(node)  # a node named by its address: the name is an IP SAN (still one of its own)
    own_addrs: set[Any] = set()
    for ip in own_ips:
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            continue
        own_addrs.add(addr)
        if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped:  # an IPv4 client of a dual-stack bind
            own_addrs.add(addr.ipv4_mapped)
    if node.lower().rstrip(".") in _server_names():
        return [f'"{node}" is a name of the API server, not of a node']  # agents verify the server by it
    problems = [f'DNS name "{n}" is not a name of node "{node}"'
                for n in san.get_values_for_type(x509.DNSName) if n != node]
    problems += [f'IP address {ip} is not an address of node "{node}"'
                 for ip in san.get_values_for_type(x509.IPAddress) if ip not in own_addrs]
    others = [g for g in san if not isinstance(g, (x509.DNSName, x509.IPAddress))]
    if others:
        problems.append("only DNS names and IP addresses may be requested")
    wanted = san.get_values_for_type(x509.IPAddress) if named_by_ip else san.get_values_for_type(x509.DNSName)
    if not problems and not any(str(n) == node for n in wanted):
        problems.append(f'the node name "{node}" must be one of the names')  # the API server verifies it
    return problems


def _server_names() -> set[str]:
    from sampan.apiserver.pki import CLUSTER_NAMES

    return set(CLUSTER_NAMES)


async def cacerts(request: web.Request) -> web.Response:
    """GET CA_PATH (public, like K3s'): the cluster CA, which a joining agent checks against the
    hash in its token before it sends the token itself."""
    from aiohttp import web

    from sampan.apiserver import keys

    pki = request.app.get(keys.PKI)
    if pki is None:  # an in-process server without TLS
        return web.Response(status=404, text="this server has no cluster CA\n")
    pem = await asyncio.to_thread(lambda: pki.ca_pem)
    return web.Response(body=pem, content_type="application/x-pem-file")


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def sign(ca_cert: Any, ca_key: Any, csr: Any, days: int = SERVING_DAYS) -> bytes:
    """A server certificate for the CSR's key, subject and names, issued by the CA (PEM)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509.oid import ExtendedKeyUsageOID

    now = dt.datetime.now(dt.timezone.utc)
    san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    cert = (
        x509.CertificateBuilder().subject_name(csr.subject).issuer_name(ca_cert.subject)
        .public_key(csr.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(min(now + dt.timedelta(days=days), ca_cert.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=True,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                     crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .add_extension(san, critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


async def _node(request: web.Request, name: str) -> Obj | None:
    from sampan.apiserver import keys

    try:
        return await request.app[keys.REGISTRY].must("", "v1", "nodes").get("", name)
    except errors.APIError as exc:
        if exc.code == 404:
            return None
        raise


def _issue(pki: Any, csr: Any) -> bytes:
    return sign(pki.ca_cert, pki.ca_key, csr)  # loads the CA key on first use (in a thread: file I/O)


async def handle(request: web.Request) -> web.Response:
    """POST SIGN_PATH: check the request, sign it, answer it with status.certificate."""
    from sampan.apiserver import keys
    from sampan.apiserver import negotiation as neg

    try:
        body = orjson.loads(await request.read())
    except orjson.JSONDecodeError:
        raise errors.bad_request("the request body must be a CertificateSigningRequest object (JSON)") from None
    if not isinstance(body, dict):
        raise errors.bad_request("the request body must be a CertificateSigningRequest object (JSON)")
    pki = request.app.get(keys.PKI)
    if pki is None:
        raise errors.service_unavailable("this server has no cluster CA to sign with")
    csr, node = await asyncio.to_thread(parse_request, body)
    authorize(request.get(keys.USER), node)
    problems = check_names(csr, node, await _node(request, node), request.remote or "")
    if problems:
        raise _forbidden(NODE_USER_PREFIX + node, "; ".join(problems),
                         [_cause("spec.request", p, "FieldValueForbidden") for p in problems])
    cert = await asyncio.to_thread(_issue, pki, csr)
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    out = {
        "apiVersion": f"{_GROUP}/v1", "kind": _KIND,
        "metadata": {"name": NODE_USER_PREFIX + node},
        "spec": {**body.get("spec", {}), "usages": body["spec"].get("usages") or list(USAGES)},
        "status": {
            "conditions": [{"type": "Approved", "status": "True", "reason": "AutoApproved",
                            "message": "the node's own names and addresses", "lastUpdateTime": now,
                            "lastTransitionTime": now}],
            "certificate": base64.b64encode(cert).decode(),
        },
    }
    return neg.respond(out, status=201)
