"""Who a container's processes run as.

The image's ``USER`` (``user``, ``user:group``, names or numbers) is resolved against the
container's own /etc/passwd and /etc/group, as containerd does; ``runAsUser``/``runAsGroup``
override it. Before anything is created the kubelet's ``runAsNonRoot`` check runs: a container
that would run as root, or whose image names its user (which cannot be checked up front), is
refused with the kubelet's messages."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

Obj = dict[str, Any]


class UserError(Exception):
    """The user or group cannot be resolved (the container cannot be created)."""


@dataclass
class Identity:
    uid: int = 0
    gid: int = 0
    additional_gids: list[int] = field(default_factory=list)


def _entries(path: Path) -> list[list[str]]:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return []
    return [line.split(":") for line in text.splitlines() if line and not line.startswith("#")]


def _number(value: str) -> int | None:
    return int(value) if value.isdigit() else None


def resolve(image_user: str, rootfs: Path, run_as_user: int | None, run_as_group: int | None) -> Identity:
    """The uid, gid and supplementary groups of the container's first process (blocking: reads
    the rootfs's /etc/passwd and /etc/group)."""
    user, _, group = image_user.partition(":")
    passwd = [e for e in _entries(rootfs / "etc" / "passwd") if len(e) >= 4]
    groups = [e for e in _entries(rootfs / "etc" / "group") if len(e) >= 3]
    found: list[str] | None = None
    if run_as_user is not None:
        uid = run_as_user
        found = next((e for e in passwd if _number(e[2]) == uid), None)
    elif user and _number(user) is None:
        found = next((e for e in passwd if e[0] == user), None)
        if found is None or _number(found[2]) is None:
            raise UserError(f"unable to find user {user}: no matching entries in passwd file")
        uid = int(found[2])
    else:
        uid = _number(user) or 0
        found = next((e for e in passwd if _number(e[2]) == uid), None)
    gid = (_number(found[3]) or 0) if found is not None else 0
    if run_as_group is not None:
        gid = run_as_group
    elif group:
        number = _number(group)
        if number is None:
            entry = next((e for e in groups if e[0] == group and _number(e[2]) is not None), None)
            if entry is None:
                raise UserError(f"unable to find group {group}: no matching entries in group file")
            number = int(entry[2])
        gid = number
    # Groups that list the user as a member, as containerd adds them.
    extra: set[int] = set()
    for entry in groups if found is not None else []:
        members = entry[3].split(",") if len(entry) > 3 else []
        number = _number(entry[2])
        if found[0] in members and number is not None and number != gid:
            extra.add(number)
    return Identity(uid, gid, sorted(extra))


def _run_as_non_root(pod: Obj, spec: Obj) -> tuple[bool, int | None]:
    psc, sc = pod["spec"].get("securityContext") or {}, spec.get("securityContext") or {}
    non_root = sc.get("runAsNonRoot", psc.get("runAsNonRoot"))
    return non_root is True, sc.get("runAsUser", psc.get("runAsUser"))


def non_root_refusal(pod: Obj, spec: Obj, image_user: str) -> str | None:
    """The kubelet's runAsNonRoot verification: why the container may not start, or None."""
    required, run_as_user = _run_as_non_root(pod, spec)
    if not required:
        return None
    m = pod["metadata"]
    where = f'(pod: "{m["name"]}_{m.get("namespace", "default")}({m.get("uid", "")})", container: {spec["name"]})'
    if run_as_user is not None:
        return None if run_as_user != 0 else f"container's runAsUser breaks non-root policy {where}"
    user = image_user.partition(":")[0]
    if user and _number(user) is None:
        return f"container has runAsNonRoot and image has non-numeric user ({user}), cannot verify user is non-root {where}"
    if not user or int(user) == 0:
        return f"container has runAsNonRoot and image will run as root {where}"
    return None
