"""Routing model and nginx config generation (pure logic; nginx -t checks the output)."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path
from typing import Any

import pytest

from sampan.ingress.model import CATCH_ALL, Resolver, build_model, ours
from sampan.ingress.nginx import NginxProcess, nginx_binary, self_signed_pem, write_private
from sampan.ingress.nginxconf import Listen, cert_file_name, render

Obj = dict[str, Any]


def svc(name: str, ports: list[tuple[str, int]], ns: str = "default") -> Obj:
    return {
        "metadata": {"name": name, "namespace": ns},
        "spec": {"ports": [{"name": n, "port": p, "targetPort": p + 8000} for n, p in ports]},
    }


def eps(service: str, port_name: str, port: int, ips: list[str], ns: str = "default", ready: bool = True) -> Obj:
    return {
        "metadata": {"name": f"{service}-x", "namespace": ns, "labels": {"kubernetes.io/service-name": service}},
        "ports": [{"name": port_name, "port": port}],
        "endpoints": [{"addresses": [ip], "conditions": {"ready": ready}} for ip in ips],
    }


def backend(name: str, number: int | None = None, port_name: str | None = None) -> Obj:
    port = {"number": number} if number else {"name": port_name}
    return {"service": {"name": name, "port": port}}


def path(p: str, kind: str, be: Obj) -> Obj:
    return {"path": p, "pathType": kind, "backend": be}


def ingress(name: str, rules: list[Obj], created: str = "2024-01-01T00:00:00Z", **spec: Any) -> Obj:
    return {
        "metadata": {"name": name, "namespace": "default", "creationTimestamp": created},
        "spec": {"rules": rules, **spec},
    }


def rule(host: str | None, *paths: Obj) -> Obj:
    r: Obj = {"http": {"paths": list(paths)}}
    if host:
        r["host"] = host
    return r


def tls_secret(name: str) -> Obj:
    pem = self_signed_pem(name)
    crt, _, key = pem.partition(b"-----END CERTIFICATE-----\n")
    data = {"tls.crt": base64.b64encode(crt + b"-----END CERTIFICATE-----\n").decode(),
            "tls.key": base64.b64encode(key).decode()}
    return {"metadata": {"name": name, "namespace": "default"}, "type": "kubernetes.io/tls", "data": data}


@pytest.fixture
def resolver() -> Resolver:
    services = {f"default/{s['metadata']['name']}": s for s in (
        svc("a", [("http", 80)]), svc("b", [("web", 8080)]), svc("c", [("", 80)]), svc("empty", [("http", 80)]))}
    slices = [
        eps("a", "http", 8080, ["10.0.0.1", "10.0.0.2"]),
        eps("a", "http", 8080, ["10.0.0.9"], ready=False),
        eps("b", "web", 9090, ["10.0.1.1"]),
        eps("c", "", 8000, ["10.0.2.1"]),
    ]
    return Resolver(services, slices, {"default/cert": tls_secret("cert")})


def test_backends_resolve_to_ready_endpoints_by_port_number_or_name(resolver: Resolver) -> None:
    model = build_model([ingress("i", [rule("x", path("/a", "Prefix", backend("a", 80)),
                                             path("/b", "Prefix", backend("b", port_name="web")),
                                             path("/c", "Prefix", backend("c", 80)),
                                             path("/e", "Prefix", backend("empty", 80)),
                                             path("/m", "Prefix", backend("missing", 80)))])], resolver)
    assert model.upstreams["default-a-80"] == ["10.0.0.1:8080", "10.0.0.2:8080"]  # not-ready 10.0.0.9 left out
    assert model.upstreams["default-b-web"] == ["10.0.1.1:9090"]
    assert model.upstreams["default-c-80"] == ["10.0.2.1:8000"]
    assert model.route("x", "/e") == ""  # a backend without endpoints answers 503
    assert model.route("x", "/m") == ""


def test_path_precedence_like_upstream(resolver: Resolver) -> None:
    a, b, c = backend("a", 80), backend("b", 8080), backend("c", 80)
    model = build_model([ingress("i", [rule("h", path("/foo", "Prefix", a), path("/foo/bar", "Prefix", b),
                                             path("/foo", "Exact", c), path("/", "ImplementationSpecific", b))])],
                        resolver)
    assert model.route("h", "/foo") == "default-c-80"  # Exact beats Prefix at equal length
    assert model.route("h", "/foo/") == "default-a-80"
    assert model.route("h", "/foo/bar/baz") == "default-b-8080"  # longest path wins
    assert model.route("h", "/foo/barbaz") == "default-a-80"  # element-wise, not string prefix
    assert model.route("h", "/foobar") == "default-b-8080"  # falls to "/" (ImplementationSpecific = Prefix)


def test_host_precedence_and_wildcards(resolver: Resolver) -> None:
    a, b, c = backend("a", 80), backend("b", 8080), backend("c", 80)
    model = build_model([ingress("i", [rule("*.example.com", path("/", "Prefix", a)),
                                       rule("www.example.com", path("/", "Prefix", b)),
                                       rule(None, path("/", "Prefix", c))])], resolver)
    assert model.route("www.example.com", "/") == "default-b-8080"
    assert model.route("api.example.com", "/x") == "default-a-80"
    assert model.route("a.b.example.com", "/") == "default-c-80"  # wildcard covers one label only
    assert model.route("example.com", "/") == "default-c-80"
    assert model.route("other", "/") == "default-c-80"


def test_default_backend_and_oldest_ingress_wins(resolver: Resolver) -> None:
    old = ingress("old", [rule("h", path("/p", "Prefix", backend("a", 80)))], created="2024-01-01T00:00:00Z",
                  defaultBackend=backend("b", 8080))
    new = ingress("new", [rule("h", path("/p", "Prefix", backend("c", 80)))], created="2024-02-01T00:00:00Z",
                  defaultBackend=backend("c", 80))
    model = build_model([new, old], resolver)
    assert model.route("h", "/p") == "default-a-80"
    assert model.route("h", "/nothing") == "default-b-8080"
    assert model.route("unknown", "/") == "default-b-8080"
    assert build_model([ingress("i", [rule("h", path("/p", "Prefix", backend("a", 80)))])], resolver).route(
        "h", "/q") is None  # no default backend: 404


def test_tls_hosts_get_their_certificate(resolver: Resolver) -> None:
    ing = ingress("i", [rule("secure.test", path("/", "Prefix", backend("a", 80)))],
                  tls=[{"hosts": ["secure.test", "only-tls.test"], "secretName": "cert"},
                       {"hosts": ["nocert.test"], "secretName": "missing"}])
    model = build_model([ing], resolver)
    assert model.servers["secure.test"].tls_secret == "default/cert"
    assert model.servers["only-tls.test"].tls_secret == "default/cert"
    assert "nocert.test" not in model.servers
    assert set(model.certificates) == {"default/cert"}


def test_class_selection() -> None:
    default_ours = [{"metadata": {"name": "sampan", "annotations": {
        "ingressclass.kubernetes.io/is-default-class": "true"}}}]
    not_default = [{"metadata": {"name": "sampan"}}]
    classless = {"metadata": {}, "spec": {}}
    assert ours(classless, default_ours)
    assert not ours(classless, not_default)
    assert ours({"spec": {"ingressClassName": "sampan"}}, not_default)
    assert not ours({"spec": {"ingressClassName": "nginx"}}, default_ours)
    assert not ours({"metadata": {"annotations": {"kubernetes.io/ingress.class": "traefik"}}}, default_ours)


def test_render_nginx_config(resolver: Resolver, tmp_path: Path) -> None:
    a, b = backend("a", 80), backend("b", 8080)
    ing = ingress("i", [rule("h.test", path("/foo", "Prefix", a), path("/x", "Exact", b)),
                        rule("*.w.test", path("/", "Prefix", b))],
                  tls=[{"hosts": ["h.test"], "secretName": "cert"}], defaultBackend=b)
    model = build_model([ing], resolver)
    text = render(model, Listen("127.0.0.1", 8080, 8443), tmp_path, tmp_path / "default.pem")
    assert "upstream default-a-80 {\n    server 10.0.0.1:8080 max_fails=0;\n    server 10.0.0.2:8080 max_fails=0;" in text
    assert 'location = "/foo" {\n      proxy_pass http://default-a-80;' in text
    assert 'location "/foo/" {\n      proxy_pass http://default-a-80;' in text
    assert 'location = "/x" {\n      proxy_pass http://default-b-8080;' in text
    assert 'server_name "~^[^.]+\\.w\\.test$";' in text
    assert "listen 127.0.0.1:8080 default_server;" in text and "listen 127.0.0.1:8443 ssl default_server;" in text
    crt, key = model.certificates["default/cert"]
    assert f"ssl_certificate {tmp_path / 'certs' / cert_file_name('default/cert', crt, key)};" in text
    assert text.count(f"ssl_certificate {tmp_path / 'default.pem'};") == 2  # catch-all and the wildcard host
    # Unmatched paths on a host go to the default backend.
    assert text.count('location "/" {\n      proxy_pass http://default-b-8080;') == 3


def test_render_without_default_backend_returns_404(resolver: Resolver, tmp_path: Path) -> None:
    model = build_model([ingress("i", [rule("h", path("/p", "Prefix", backend("empty", 80)))])], resolver)
    text = render(model, Listen("0.0.0.0", 80, 443), tmp_path, tmp_path / "d.pem")
    assert 'location = "/p" {\n      return 503;' in text
    assert 'location "/" {\n      return 404;' in text
    assert "listen 80 default_server;" in text
    assert set(model.servers) == {CATCH_ALL, "h"}


@pytest.mark.skipif(nginx_binary() is None, reason="nginx not installed")
async def test_generated_config_passes_nginx_t(resolver: Resolver, tmp_path: Path) -> None:
    ing = ingress("i", [rule("h.test", path("/foo", "Prefix", backend("a", 80)), path("/foo", "Exact", backend("b", 8080))),
                        rule("*.w.test", path("/", "Prefix", backend("c", 80)))],
                  tls=[{"hosts": ["h.test"], "secretName": "cert"}])
    model = build_model([ing], resolver)
    write_private(tmp_path / "default.pem", await asyncio.to_thread(self_signed_pem))
    crt, key = model.certificates["default/cert"]
    write_private(tmp_path / "certs" / cert_file_name("default/cert", crt, key), crt + key)
    (tmp_path / "tmp").mkdir()
    conf = tmp_path / "test.conf"
    conf.write_text(render(model, Listen("127.0.0.1", 18080, 18443), tmp_path, tmp_path / "default.pem"))
    ok, output = await NginxProcess(tmp_path).test(conf)
    assert ok, output
    assert (tmp_path / "default.pem").stat().st_mode & 0o777 == 0o600


def test_broken_tls_secret_is_skipped() -> None:
    good = tls_secret("good")
    other = tls_secret("other")
    mismatched = {**good, "data": {"tls.crt": good["data"]["tls.crt"], "tls.key": other["data"]["tls.key"]}}
    garbage = {**good, "data": {"tls.crt": base64.b64encode(b"nope").decode(), "tls.key": "!!"}}
    resolver = Resolver({}, [], {"default/good": good, "default/mismatched": mismatched, "default/garbage": garbage})
    assert resolver.certificate("default", "good") is not None
    assert resolver.certificate("default", "mismatched") is None
    assert resolver.certificate("default", "garbage") is None
