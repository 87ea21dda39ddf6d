"""Container users: the image's USER resolved in the container's own /etc files, runAsUser and
runAsGroup on top, and the kubelet's runAsNonRoot check with its messages."""

from __future__ import annotations

from pathlib import Path

import pytest

from sampan.node.users import Identity, UserError, non_root_refusal, resolve

PASSWD = "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n"
GROUP = "root:x:0:\napp:x:1001:\ntools:x:2000:app,other\nwheel:x:10:other\nnogroup:x:65534:\n"


@pytest.fixture
def rootfs(tmp_path: Path) -> Path:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "passwd").write_text(PASSWD)
    (tmp_path / "etc" / "group").write_text(GROUP)
    return tmp_path


def test_image_user_names_and_numbers(rootfs: Path) -> None:
    assert resolve("", rootfs, None, None) == Identity(0, 0, [])
    assert resolve("app", rootfs, None, None) == Identity(1000, 1001, [2000])  # plus the groups it is in
    assert resolve("1000", rootfs, None, None) == Identity(1000, 1001, [2000])
    assert resolve("app:nogroup", rootfs, None, None) == Identity(1000, 65534, [2000])
    assert resolve("4242:77", rootfs, None, None) == Identity(4242, 77, [])  # unknown numbers are fine
    with pytest.raises(UserError, match="unable to find user ghost: no matching entries in passwd file"):
        resolve("ghost", rootfs, None, None)
    with pytest.raises(UserError, match="unable to find group ghosts: no matching entries in group file"):
        resolve("app:ghosts", rootfs, None, None)


def test_run_as_user_and_group_win(rootfs: Path) -> None:
    assert resolve("app", rootfs, 65534, None) == Identity(65534, 65534, [])
    assert resolve("app", rootfs, 1000, 5) == Identity(1000, 5, [2000])
    assert resolve("", rootfs, 0, None) == Identity(0, 0, [])
    with pytest.raises(UserError):
        resolve("nobody", rootfs / "no-such-root", None, None)  # no passwd file: names cannot resolve


def _pod(pod_sc: dict | None = None, sc: dict | None = None) -> tuple[dict, dict]:
    container = {"name": "c", "securityContext": sc or {}}
    pod = {"metadata": {"name": "p", "namespace": "ns", "uid": "u1"},
           "spec": {"securityContext": pod_sc or {}, "containers": [container]}}
    return pod, container


def test_run_as_non_root_like_the_kubelet() -> None:
    where = '(pod: "p_ns(u1)", container: c)'
    assert non_root_refusal(*_pod(), "") is None  # not asked for
    assert non_root_refusal(*_pod({"runAsNonRoot": True}), "") == (
        f"container has runAsNonRoot and image will run as root {where}")
    assert non_root_refusal(*_pod({"runAsNonRoot": True}), "0:0") is not None
    assert non_root_refusal(*_pod({"runAsNonRoot": True}), "1000:1000") is None
    assert non_root_refusal(*_pod({"runAsNonRoot": True}), "app") == (
        f"container has runAsNonRoot and image has non-numeric user (app), cannot verify user is non-root {where}")
    assert non_root_refusal(*_pod({"runAsNonRoot": True, "runAsUser": 1000}), "") is None
    assert non_root_refusal(*_pod({"runAsNonRoot": True}, {"runAsUser": 0}), "1000") == (
        f"container's runAsUser breaks non-root policy {where}")
    assert non_root_refusal(*_pod({"runAsNonRoot": True}, {"runAsNonRoot": False}), "") is None  # container wins
