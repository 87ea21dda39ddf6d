"""Creating one container of a pod: image pull (with imagePullPolicy and back-off), env and
args, mounts, the termination-log file, the runtime call, postStart/preStop hooks."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sampan.client.events import NORMAL, WARNING
from sampan.node import envs, seccomp, users
from sampan.node.podstatus import Tracked, qos_class, terminated_state
from sampan.node.runtimes.base import ContainerConfig, ContainerState, Mount, Security
from sampan.node.runtimes.spec import capabilities
from sampan.node.sysctls import pod_sysctls

if TYPE_CHECKING:
    from sampan.node.podworker import PodWorker

Obj = dict[str, Any]

POD_UID = "io.kubernetes.pod.uid"
POD_NAME = "io.kubernetes.pod.name"
POD_NAMESPACE = "io.kubernetes.pod.namespace"
CONTAINER_NAME = "io.kubernetes.container.name"
ATTEMPT = "sampan.dev/attempt"
IMAGE = "sampan.dev/image"
IMAGE_ID = "sampan.dev/image-id"


class StartError(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def qos_of(pod: Obj) -> str:
    return (pod.get("status") or {}).get("qosClass") or qos_class(pod)


def terminated_of(state: ContainerState) -> Obj:
    return terminated_state(state)


def go_duration(seconds: float) -> str:
    s = int(seconds)
    if s >= 60:
        return f"{s // 60}m{s % 60}s"
    return f"{s}s"


def grace_of(pod: Obj, liveness: bool = False) -> float:
    return float(pod["spec"].get("terminationGracePeriodSeconds", 30))


def normalized(image: str) -> str:
    from sampan.node.simulated_pods import normalized_image

    return normalized_image(image)


def _pull_policy(spec: Obj) -> str:
    policy = spec.get("imagePullPolicy")
    if policy:
        return str(policy)
    ref = normalized(spec.get("image", ""))
    return "Always" if ref.endswith(":latest") and "@" not in ref else "IfNotPresent"


async def _pull_auth(w: PodWorker, ref: str) -> tuple[str, str] | None:
    """Credentials for the registry of ``ref`` from the pod's imagePullSecrets (dockerconfigjson)."""
    host = ref.split("/", 1)[0]
    ns = w.pod["metadata"].get("namespace", "default")
    for item in w.pod["spec"].get("imagePullSecrets") or []:
        secret = await w.agent.get_object("Secret", ns, item.get("name", ""))
        raw = ((secret or {}).get("data") or {}).get(".dockerconfigjson")
        if not raw:
            continue
        auths = json.loads(base64.b64decode(raw)).get("auths") or {}
        for server, entry in auths.items():
            if host in server:
                if entry.get("auth"):
                    user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
                    return user, password
                return entry.get("username", ""), entry.get("password", "")
    return None


async def ensure_image(w: PodWorker, t: Tracked, spec: Obj) -> Any:
    images = w.agent.images
    ref = normalized(spec.get("image", ""))
    policy = _pull_policy(spec)
    present = images.get(ref)
    if present is not None and policy != "Always":
        w.event(NORMAL, "Pulled", f'Container image "{spec["image"]}" already present on machine')
        return present
    if present is None and policy == "Never":
        msg = f'Container image "{spec["image"]}" is not present with pull policy of Never'
        w.event(WARNING, "ErrImageNeverPull", msg)
        raise StartError("ErrImageNeverPull", msg)
    if time.monotonic() < t.pull_backoff_until:
        if not t.pull_backoff_reported:
            t.pull_backoff_reported = True
            w.event(NORMAL, "BackOff", f'Back-off pulling image "{spec["image"]}"')
            w.event(WARNING, "Failed", "Error: ImagePullBackOff")
        raise StartError("ImagePullBackOff", f'Back-off pulling image "{spec["image"]}"')
    t.pull_backoff_reported = False
    w.event(NORMAL, "Pulling", f'Pulling image "{spec["image"]}"')
    started = time.monotonic()
    try:
        info = await images.pull(ref, auth=await _pull_auth(w, ref))
    except Exception as exc:  # noqa: BLE001 - any pull failure is ErrImagePull
        if present is not None:
            # An air-gapped node still runs what it has (the tarball it imported).
            return present
        delay = t.pull_backoff or 10.0
        t.pull_backoff = min(delay * 2, 300.0)
        t.pull_backoff_until = time.monotonic() + delay
        msg = f'Failed to pull image "{spec["image"]}": {exc}'
        w.event(WARNING, "Failed", msg)
        w.event(WARNING, "Failed", "Error: ErrImagePull")
        raise StartError("ErrImagePull", msg) from exc
    t.pull_backoff = 0.0
    took = time.monotonic() - started
    w.event(NORMAL, "Pulled", f'Successfully pulled image "{spec["image"]}" in {took:.3f}s '
                              f"({took:.3f}s including waiting). Image size: {info.size} bytes.")
    return info


def _security(pod: Obj, spec: Obj) -> Security:
    psc = pod["spec"].get("securityContext") or {}
    sc = spec.get("securityContext") or {}
    caps = sc.get("capabilities") or {}
    return Security(
        run_as_user=sc.get("runAsUser", psc.get("runAsUser")),
        run_as_group=sc.get("runAsGroup", psc.get("runAsGroup")),
        supplemental_groups=list(psc.get("supplementalGroups") or []) + ([psc["fsGroup"]] if "fsGroup" in psc else []),
        read_only_rootfs=bool(sc.get("readOnlyRootFilesystem")),
        privileged=bool(sc.get("privileged")),
        capabilities_add=list(caps.get("add") or []),
        capabilities_drop=list(caps.get("drop") or []),
        no_new_privileges=sc.get("allowPrivilegeEscalation") is False,
    )


def log_path(w: PodWorker, name: str, attempt: int) -> Path:
    m = w.pod["metadata"]
    return w.agent.log_dir / f"{m.get('namespace', 'default')}_{m['name']}_{w.uid}" / name / f"{attempt}.log"


def _termlog(w: PodWorker, name: str, attempt: int) -> Path:
    return w.agent.pods_dir / w.uid / "containers" / name / f"{attempt}.termination-log"


async def create_and_start(w: PodWorker, t: Tracked, spec: Obj) -> ContainerState:
    a = w.agent
    info = await ensure_image(w, t, spec)
    t.image, t.image_id = normalized(spec["image"]), (info.repo_digests[0] if info.repo_digests else info.id)
    refusal = users.non_root_refusal(w.pod, spec, info.user)
    if refusal:
        w.event(WARNING, "Failed", f"Error: {refusal}")
        raise StartError("CreateContainerConfigError", refusal)
    try:
        env = await envs.container_env(w.pod, spec, a, a.services(), a.allocatable, info.env)
    except envs.EnvError as exc:
        w.event(WARNING, "Failed", f"Error: {exc}")
        raise StartError("CreateContainerConfigError", str(exc)) from exc
    args = envs.container_args(spec, info.entrypoint, info.cmd, env)
    if not args:
        raise StartError("CreateContainerError", "no command specified")
    attempt = t.restart_count
    cid = f"{w.uid}-{t.name}-{attempt}"
    try:
        mounts = a.volumes.mounts(w.pod, spec, w.volumes)
    except Exception as exc:  # noqa: BLE001 - e.g. a bad subPath
        raise StartError("CreateContainerConfigError", str(exc)) from exc
    termlog = _termlog(w, t.name, attempt)
    logfile = log_path(w, t.name, attempt)
    await asyncio.to_thread(_prepare_files, termlog, logfile)
    mounts.append(Mount(str(termlog), spec.get("terminationMessagePath") or "/dev/termination-log"))
    labels = {POD_UID: w.uid, POD_NAME: w.pod["metadata"]["name"], POD_NAMESPACE: w.pod["metadata"].get("namespace", ""),
              CONTAINER_NAME: t.name, ATTEMPT: str(attempt), IMAGE: t.image, IMAGE_ID: t.image_id}
    res = a.cgroups.resources_for(spec) if a.cgroups else None
    if t.id and t.id != cid:
        await _drop_older(w, t)
    try:
        rootfs = await a.images.mount_rootfs(info, cid)
        security = _security(w.pod, spec)
        if a.runtime.isolates:  # host processes (raw) keep the agent's own user unless told otherwise
            who = await asyncio.to_thread(users.resolve, info.user, rootfs, security.run_as_user,
                                          security.run_as_group)
            security.run_as_user, security.run_as_group = who.uid, who.gid
            security.supplemental_groups = who.additional_gids + security.supplemental_groups
            caps = set(capabilities(security.capabilities_add, security.capabilities_drop, security.privileged))
            security.seccomp = await asyncio.to_thread(seccomp.profile_for, w.pod, spec, caps, security.privileged,
                                                       a.seccomp_dir)
        config = ContainerConfig(
            id=cid, pod_uid=w.uid, name=t.name, rootfs=rootfs, args=args, env=env,
            working_dir=spec.get("workingDir") or info.working_dir or "", mounts=mounts, log_path=logfile,
            security=security, tty=bool(spec.get("tty")), stdin=bool(spec.get("stdin")), labels=labels,
            sysctls=pod_sysctls(w.pod))
        if res is not None:
            config.resources = res
        target = w.tracked(spec.get("targetContainerName") or "")
        if t.ephemeral and target is not None and target.running and target.state and target.state.pid:
            config.pid_namespace = f"/proc/{target.state.pid}/ns/pid"  # sees the target's processes
        assert w.sandbox is not None
        state = await a.runtime.start_container(w.sandbox, config)
    except Exception as exc:  # noqa: BLE001 - the runtime's message is the reason
        w.event(WARNING, "Failed", f"Error: {exc}")
        raise StartError("CreateContainerError", str(exc)) from exc
    w.event(NORMAL, "Created", f"Created container {t.name}")
    w.event(NORMAL, "Started", f"Started container {t.name}")
    hook = (spec.get("lifecycle") or {}).get("postStart")
    if hook:
        from sampan.node.probes import run_handler

        ok, msg = await run_handler(w, cid, hook, timeout=grace_of(w.pod))
        if not ok:
            w.event(WARNING, "FailedPostStartHook", f"PostStartHook failed: {msg}")
            await a.runtime.stop_container(cid, grace_of(w.pod))
    return state


async def _drop_older(w: PodWorker, t: Tracked) -> None:
    """Keep the one previous container (for ``logs --previous``), remove anything older."""
    old = w.previous.get(t.name)
    if old and old != t.id:
        for step in (w.agent.runtime.remove_container, w.agent.images.unmount_rootfs):
            try:
                await step(old)
            except Exception:  # noqa: BLE001 - already gone
                pass
    if t.id:
        w.previous[t.name] = t.id


def _prepare_files(termlog: Path, logfile: Path) -> None:
    termlog.parent.mkdir(parents=True, exist_ok=True)
    termlog.write_bytes(b"")
    logfile.parent.mkdir(parents=True, exist_ok=True)


async def termination_message(w: PodWorker, t: Tracked) -> str:
    spec = w.spec_of(t)
    path = _termlog(w, t.name, t.restart_count)

    def read() -> str:
        try:
            text = path.read_bytes()[:4096].decode(errors="replace")
        except OSError:
            text = ""
        failed = t.state is not None and t.state.exit_code != 0
        if not text and failed and spec.get("terminationMessagePolicy") == "FallbackToLogsOnError":
            from sampan.node.streams import read_log_lines

            lines = read_log_lines(log_path(w, t.name, t.restart_count), tail=80)
            text = "".join(lines)[-2048:]
        return text

    return await asyncio.to_thread(read)


async def pre_stop(w: PodWorker, t: Tracked, spec: Obj, grace: float) -> float:
    """Runs the preStop hook within the grace period; returns the seconds it took."""
    hook = (spec.get("lifecycle") or {}).get("preStop")
    if not hook or t.id is None:
        return 0.0
    from sampan.node.probes import run_handler

    started = time.monotonic()
    ok, msg = await run_handler(w, t.id, hook, timeout=grace)
    if not ok:
        w.event(WARNING, "FailedPreStopHook", f"PreStopHook failed: {msg}")
    return time.monotonic() - started


async def check_deadline(w: PodWorker) -> bool:
    """spec.activeDeadlineSeconds: the pod fails with DeadlineExceeded and its containers stop."""
    deadline = w.pod["spec"].get("activeDeadlineSeconds")
    started = w.view.start_time
    if not deadline or not started:
        return False
    begun = datetime.fromisoformat(started.replace("Z", "+00:00")).timestamp()
    if time.time() < begun + float(deadline):
        return False
    w.view.phase_override, w.view.reason = "Failed", "DeadlineExceeded"
    w.view.message = "Pod was active on the node longer than the specified deadline"
    w.event(NORMAL, "DeadlineExceeded", w.view.message)
    running = [t for t in w.all_tracked() if t.running]
    await asyncio.gather(*(w.stop_one(t, grace_of(w.pod)) for t in running), return_exceptions=True)
    w._woken = True  # look at the containers now, not at the next poll
    await w.refresh_states()
    for t in w.all_tracked():
        t.waiting_reason = "" if t.id else t.waiting_reason
    await w.report()
    return True
