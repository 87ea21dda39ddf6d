"""A real remote node: ``sampan server --no-agent`` plus ``sampan agent --server URL --token T``
on the oci runtime, driven by the real kubectl. Logs, exec and port-forward go from the API
server to the agent's stream endpoint, whose serving certificate the cluster CA signed; the pod's kube-api-access volume holds a token
the API server accepts. Needs root, runc, the CNI plugins and busybox-static."""

from __future__ import annotations

import json
import re
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.cluster import KUBECTL, start_process, stop_process
from tests.e2e.test_pods_real import IMAGE, Real, _kill_leftovers, box, eventually, pod
from tests.e2e.test_pods_real import pytestmark as real_marks

pytestmark = real_marks
NODE = "e2e-remote"
SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


@pytest.fixture(scope="module")
def remote(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Real]:
    from tests.node.images_util import busybox_image, write_docker_archive

    data = tmp_path_factory.mktemp("server")
    node = tmp_path_factory.mktemp("remote-node")
    drop = node / "agent" / "images"
    drop.mkdir(parents=True)
    write_docker_archive(drop / "busybox.tar", busybox_image(cmd=["sh"]), [IMAGE])
    proc, output = start_process(["server", "--data-dir", str(data), "--datastore", "memory", "--port", "0",
                                  "--no-agent", "--cluster-cidr", "198.18.0.0/16", "--service-cidr", "198.19.0.0/16",
                                  "--disable", "ingress", "--disable", "servicelb"], timeout=120)
    cluster = Real(data, proc, output)
    agent = None
    try:
        token = subprocess.run([sys.executable, "-m", "sampan", "token", "--data-dir", str(data)],
                               capture_output=True, text=True, check=True).stdout.strip()
        url = next(line.split(" at ")[1].split()[0] for line in output if " ready at " in line)
        agent, _ = start_process(["agent", "--server", url, "--token", token, "--node-name", NODE,
                                  "--data-dir", str(node), "--runtime", "oci", "--kubelet-port", "0",
                                  "--disable", "kube-proxy", "--disable", "network-policy", "--disable", "coredns"],
                                 timeout=120)
        eventually(lambda: "Ready" in cluster.kubectl("get", "node", NODE).stdout, 60)
        yield cluster
    finally:
        if cluster.proc.poll() is None:
            cluster.delete_all()
        if agent is not None:
            stop_process(agent)
        stop_process(cluster.proc)
        _kill_leftovers(node)


def test_logs_exec_and_token_through_remote_agent(remote: Real) -> None:
    remote.apply(pod("app", [box("c", "echo hello from remote; exec sleep 3600")]))
    remote.running_ready("app")
    assert eventually(lambda: remote.kubectl("logs", "app").stdout == "hello from remote\n", 30)
    out = remote.kubectl("exec", "app", "--", "cat", f"{SA_DIR}/namespace").stdout
    assert out == "default"
    failed = remote.kubectl("exec", "app", "--", "sh", "-c", "exit 3", check=False)
    assert failed.returncode == 3
    # stdin in, stdout and stderr apart, through the API server and the agent's endpoint.
    piped = remote.kubectl("exec", "-i", "app", "--", "sh", "-c", "tr a-z A-Z; echo oops >&2", input="abc\n")
    assert piped.stdout == "ABC\n" and piped.stderr == "oops\n"
    token = remote.kubectl("exec", "app", "--", "cat", f"{SA_DIR}/token").stdout
    review = json.loads(remote.kubectl("create", "-o", "json", "-f", "-", input=json.dumps({
        "apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": token}})).stdout)
    assert review["status"]["user"]["username"] == "system:serviceaccount:default:default"
    ca = remote.kubectl("exec", "app", "--", "cat", f"{SA_DIR}/ca.crt").stdout
    assert ca == (remote.data_dir / "server" / "tls" / "ca.crt").read_text()


def test_agent_serves_a_certificate_of_the_cluster_ca(remote: Real) -> None:
    node = json.loads(remote.kubectl("get", "node", NODE, "-o", "json").stdout)
    port = node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"]
    ip = next(a["address"] for a in node["status"]["addresses"] if a["type"] == "InternalIP")
    # Verified against the cluster CA alone, for the node's name and for the address it advertises.
    ca = ssl.create_default_context(cafile=str(remote.data_dir / "server" / "tls" / "ca.crt"))
    for name in (NODE, ip):
        with socket.create_connection((ip, port), timeout=10) as raw, ca.wrap_socket(raw, server_hostname=name) as tls:
            cert = tls.getpeercert()
        assert dict(pair[0] for pair in cert["subject"]) == {"commonName": f"system:node:{NODE}",
                                                             "organizationName": "system:nodes"}
    assert ("DNS", NODE) in cert["subjectAltName"] and ("IP Address", ip) in cert["subjectAltName"]


def test_port_forward_through_remote_agent(remote: Real) -> None:
    remote.apply(pod("web", [box("httpd", "mkdir -p /www && echo remote-ok > /www/index.html && "
                                          "exec httpd -f -p 8080 -h /www")]))
    remote.running_ready("web")
    proc = subprocess.Popen([str(KUBECTL), "--kubeconfig", str(remote.kubeconfig), "port-forward", "pod/web", ":8080"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        local = int(re.search(r"127\.0\.0\.1:(\d+)", line).group(1))  # type: ignore[union-attr]
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{local}/", timeout=10) as resp:
                    assert resp.read() == b"remote-ok\n"
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
    finally:
        proc.terminate()
        proc.wait(10)
