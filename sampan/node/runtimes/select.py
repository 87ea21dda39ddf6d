"""``--runtime auto|raw|oci``: picks the runtime and says why in one sentence.

``auto`` uses the OCI runtime when the agent runs as root and an OCI binary actually runs
a container on this host (runc first, then crun; crun refuses hybrid cgroup hosts, so a
trial container decides rather than the binary's presence), else the raw runtime.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import tempfile
from pathlib import Path

from sampan.node.cgroups import Cgroups
from sampan.node.runtimes.base import Runtime, RuntimeError_
from sampan.node.runtimes.oci import OciRuntime
from sampan.node.runtimes.raw import RawRuntime

CANDIDATES = ("runc", "crun")
PROBE_TIMEOUT = 20.0


def _probe_bundle(bundle: Path) -> None:
    """A bundle running the host's /bin/true in a root made of read-only binds of the host's
    program directories: needs no image, and exercises namespaces and cgroups."""
    rootfs = bundle / "rootfs"
    rootfs.mkdir()
    mounts: list[dict[str, object]] = [{"destination": "/proc", "type": "proc", "source": "proc"}]
    for name in ("usr", "bin", "sbin", "lib", "lib64"):
        host = Path("/") / name
        if host.is_symlink():
            (rootfs / name).symlink_to(os.readlink(host))
        elif host.is_dir():
            (rootfs / name).mkdir()
            mounts.append({"destination": f"/{name}", "type": "bind", "source": str(host), "options": ["rbind", "ro"]})
    (rootfs / "proc").mkdir()
    config = {
        "ociVersion": "1.0.2",
        "process": {"terminal": False, "user": {"uid": 0, "gid": 0}, "args": ["/bin/true"],
                    "env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"], "cwd": "/"},
        "root": {"path": str(rootfs), "readonly": True},
        "mounts": mounts,
        "linux": {"namespaces": [{"type": "pid"}, {"type": "mount"}],
                  "resources": {"memory": {"limit": 64 << 20}}},
    }
    (bundle / "config.json").write_text(json.dumps(config))


async def probe(binary: str) -> str | None:
    """None if `binary` runs a trial container here, else why not."""
    path = shutil.which(binary)
    if path is None:
        return f"{binary} is not installed"
    with tempfile.TemporaryDirectory(prefix="sampan-probe-") as tmp:
        bundle, root = Path(tmp) / "bundle", Path(tmp) / "state"
        bundle.mkdir()
        _probe_bundle(bundle)
        name = f"sampan-probe-{os.getpid()}"
        proc = await asyncio.create_subprocess_exec(
            path, "--root", str(root), "run", "--bundle", str(bundle), name,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), PROBE_TIMEOUT)
        except asyncio.TimeoutError:
            proc.kill()
            await proc.wait()
            out = b"timed out"
        cleanup = await asyncio.create_subprocess_exec(
            path, "--root", str(root), "delete", "--force", name,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
        await cleanup.wait()
    if proc.returncode == 0:
        return None
    lines = [ln for ln in out.decode(errors="replace").strip().splitlines() if ln.strip()]
    return f"{binary} fails here: {lines[-1] if lines else f'exit code {proc.returncode}'}"


async def select_runtime(choice: str, state_dir: Path, cgroups: Cgroups | None = None,
                         runc_root: Path = Path("/run/sampan/runc")) -> tuple[Runtime, str]:
    """Returns the runtime for `--runtime choice` and a sentence saying which one and why."""
    cgroups = cgroups or Cgroups()
    if choice == "raw":
        return RawRuntime(state_dir, cgroups), "Using the raw runtime as requested: containers run as host processes without isolation."
    if choice not in ("auto", "oci"):
        raise ValueError(f"unknown runtime {choice!r} (expected auto, raw or oci)")
    reasons: list[str] = []
    if os.geteuid() != 0:
        reasons.append("the agent does not run as root")
    else:
        for binary in CANDIDATES:
            why = await probe(binary)
            if why is None:
                how = "as requested" if choice == "oci" else "because the agent runs as root and it works on this host"
                runtime = OciRuntime(state_dir, binary=shutil.which(binary) or binary, runc_root=runc_root, cgroups=cgroups)
                monitor = ("each container monitored by conmon" if runtime.conmon else
                           "each container monitored by a Python shim because conmon is not installed")
                return runtime, f"Using the oci runtime with {binary} {how}, {monitor}."
            reasons.append(why)
    because = "; ".join(reasons)
    if choice == "oci":
        raise RuntimeError_(f"the oci runtime is not available: {because}")
    return (RawRuntime(state_dir, cgroups),
            f"Using the raw runtime (containers run as host processes without isolation) because {because}.")
