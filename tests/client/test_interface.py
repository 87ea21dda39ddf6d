import base64
import ssl

import pytest
import yaml

from sampan.api.errors import APIError
from sampan.client.http import load_kubeconfig
from sampan.client.interface import (
    DEPLOYMENTS,
    NODES,
    PODS,
    Gone,
    ResourceRef,
    error_from_status,
    is_expired,
    object_key,
    split_key,
)


def test_paths() -> None:
    assert PODS.path("default") == "/api/v1/namespaces/default/pods"
    assert PODS.path() == "/api/v1/pods"
    assert PODS.path("ns", "p", "status") == "/api/v1/namespaces/ns/pods/p/status"
    assert DEPLOYMENTS.path("a", "web", "scale") == "/apis/apps/v1/namespaces/a/deployments/web/scale"
    assert NODES.path("ignored", "n1") == "/api/v1/nodes/n1"
    assert ResourceRef("example.com", "v1alpha1", "widgets").group_version == "example.com/v1alpha1"
    assert str(DEPLOYMENTS) == "deployments.apps"


def test_keys() -> None:
    assert object_key({"metadata": {"name": "a", "namespace": "ns"}}) == "ns/a"
    assert object_key({"metadata": {"name": "n1"}}) == "n1"
    assert split_key("ns/a") == ("ns", "a")
    assert split_key("n1") == (None, "n1")


def test_errors_from_status() -> None:
    status = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Expired", "code": 410,
              "message": "too old resource version: 5 (120)"}
    err = error_from_status(status)
    assert isinstance(err, Gone) and isinstance(err, APIError) and is_expired(err)
    assert err.status == status and err.reason == "Expired"
    nf = error_from_status({"kind": "Status", "reason": "NotFound", "message": "x"}, 404)
    assert type(nf) is APIError and nf.code == 404
    weird = error_from_status("<html>bad gateway</html>", 502)
    assert weird.code == 502 and "bad gateway" in weird.message


def test_kubeconfig_token_and_insecure(tmp_path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "token").write_text("s3cret\n")
    config = {
        "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:6443/", "insecure-skip-tls-verify": True}}],
        "users": [{"name": "u", "user": {"tokenFile": "token"}}],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "x",
    }
    path = tmp_path / "kubeconfig.yaml"
    path.write_text(yaml.safe_dump(config))
    creds = load_kubeconfig(path)
    assert creds.server == "https://127.0.0.1:6443"
    assert creds.token_file == str(tmp_path / "token")
    assert not isinstance(creds.ssl_context, bool) and not creds.ssl_context.check_hostname


def test_kubeconfig_missing_context(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "kc"
    path.write_text(yaml.safe_dump({"clusters": [], "contexts": [], "users": []}))
    with pytest.raises(ValueError):
        load_kubeconfig(path)


def test_kubeconfig_bad_ca_data_fails(tmp_path) -> None:  # type: ignore[no-untyped-def]
    config = {
        "clusters": [{"name": "c", "cluster": {"server": "https://h", "certificate-authority-data":
                                                base64.b64encode(b"not a cert").decode()}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "x",
    }
    path = tmp_path / "kc"
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(ssl.SSLError):
        load_kubeconfig(path)
