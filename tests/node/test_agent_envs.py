"""Environment and command line resolution: env/envFrom/valueFrom, $(VAR) expansion, service
links, image entrypoint/cmd rules, /etc/hosts and resolv.conf."""

from __future__ import annotations

import base64

import pytest

from sampan.node import envs


class Objects:
    def __init__(self, objects: dict[tuple[str, str], dict]) -> None:
        self.objects = objects

    async def get_object(self, kind: str, namespace: str, name: str) -> dict | None:
        return self.objects.get((kind, name))


POD = {"metadata": {"name": "web", "namespace": "ns", "uid": "u1", "labels": {"app": "web"}},
       "spec": {"nodeName": "n1", "serviceAccountName": "sa"},
       "status": {"podIP": "198.18.0.5", "hostIP": "10.0.0.1"}}
SERVICES = [
    {"metadata": {"name": "kubernetes", "namespace": "default"},
     "spec": {"clusterIP": "198.19.0.1", "ports": [{"name": "https", "port": 443, "protocol": "TCP"}]}},
    {"metadata": {"name": "redis-main", "namespace": "ns"},
     "spec": {"clusterIP": "198.19.0.7", "ports": [{"port": 6379}]}},
    {"metadata": {"name": "other", "namespace": "elsewhere"}, "spec": {"clusterIP": "198.19.0.8", "ports": [{"port": 1}]}},
]


async def test_env_sources_and_order() -> None:
    objs = Objects({
        ("ConfigMap", "cm"): {"kind": "ConfigMap", "data": {"A": "from-cm", "B": "b"}},
        ("Secret", "sec"): {"kind": "Secret", "data": {"PW": base64.b64encode(b"pw").decode()}},
    })
    container = {
        "name": "c",
        "resources": {"limits": {"memory": "64Mi"}, "requests": {"cpu": "250m"}},
        "envFrom": [{"configMapRef": {"name": "cm"}, "prefix": "CM_"}, {"secretRef": {"name": "gone", "optional": True}}],
        "env": [
            {"name": "PLAIN", "value": "x"},
            {"name": "EXPANDED", "value": "$(PLAIN)-$(CM_A)-$(UNKNOWN)-$$(PLAIN)"},
            {"name": "KEY", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "B"}}},
            {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "PW"}}},
            {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
            {"name": "MEM", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}}},
            {"name": "CPU", "valueFrom": {"resourceFieldRef": {"resource": "requests.cpu", "divisor": "1m"}}},
            {"name": "CPU_LIMIT", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}},
            {"name": "OPT", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "nope", "optional": True}}},
        ],
    }
    env = await envs.container_env(POD, container, objs, SERVICES, {"cpu": "2"}, ["PATH=/bin", "PLAIN=image"])
    assert env["PATH"] == "/bin" and env["PLAIN"] == "x"
    assert env["EXPANDED"] == "x-from-cm-$(UNKNOWN)-$(PLAIN)"
    assert env["CM_A"] == "from-cm" and env["KEY"] == "b" and env["PASSWORD"] == "pw"
    assert env["POD_IP"] == "198.18.0.5" and env["APP"] == "web"
    assert env["MEM"] == "64" and env["CPU"] == "250" and env["CPU_LIMIT"] == "2"
    assert "OPT" not in env
    assert env["KUBERNETES_SERVICE_HOST"] == "198.19.0.1" and env["KUBERNETES_SERVICE_PORT"] == "443"
    assert env["KUBERNETES_PORT_443_TCP"] == "tcp://198.19.0.1:443"
    assert env["REDIS_MAIN_SERVICE_HOST"] == "198.19.0.7"
    assert not any(k.startswith("OTHER_") for k in env)


async def test_missing_reference_is_an_error() -> None:
    with pytest.raises(envs.EnvError, match='secret "nope" not found'):
        await envs.container_env(POD, {"env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "nope", "key": "k"}}}]},
                                 Objects({}), [])
    no_links = {**POD, "spec": {**POD["spec"], "enableServiceLinks": False}}
    env = await envs.container_env(no_links, {}, Objects({}), SERVICES)
    assert "REDIS_MAIN_SERVICE_HOST" not in env and env["KUBERNETES_SERVICE_HOST"] == "198.19.0.1"


def test_command_and_args_rules() -> None:
    entry, cmd = ["/entry"], ["default-arg"]
    assert envs.container_args({}, entry, cmd, {}) == ["/entry", "default-arg"]
    assert envs.container_args({"args": ["a"]}, entry, cmd, {}) == ["/entry", "a"]
    assert envs.container_args({"command": ["run"]}, entry, cmd, {}) == ["run"]
    assert envs.container_args({"command": ["run"], "args": ["$(X)"]}, entry, cmd, {"X": "1"}) == ["run", "1"]


def test_hosts_and_resolv_conf() -> None:
    hosts = envs.hosts_file({**POD, "spec": {"hostAliases": [{"ip": "1.2.3.4", "hostnames": ["a", "b"]}]}},
                            "198.18.0.5", "web")
    assert "198.18.0.5\tweb" in hosts and "1.2.3.4\ta\tb" in hosts and "127.0.0.1\tlocalhost" in hosts
    resolv = envs.resolv_conf(POD, "198.19.0.10")
    assert resolv == ("search ns.svc.cluster.local svc.cluster.local cluster.local\nnameserver 198.19.0.10\n"
                      "options ndots:5\n")
    assert envs.resolv_conf(POD, None) == ""  # no cluster DNS: the host's
    custom = {**POD, "spec": {"dnsPolicy": "None", "dnsConfig": {"nameservers": ["9.9.9.9"],
                                                                  "options": [{"name": "ndots", "value": "2"}]}}}
    assert envs.resolv_conf(custom, "198.19.0.10") == "nameserver 9.9.9.9\noptions ndots:2\n"
