"""A tiny root filesystem from Debian's busybox-static, for runtime and image tests."""

from __future__ import annotations

import shutil
from pathlib import Path

BUSYBOX = Path("/bin/busybox")
APPLETS = ("sh", "echo", "cat", "ls", "sleep", "httpd", "wget", "nc", "id", "hostname", "env", "true", "false",
           "ps", "kill", "mkdir", "touch", "grep", "head", "tail", "dd", "ip", "ping", "pwd", "date", "test", "yes")


def available() -> bool:
    """busybox-static is a static binary: it runs in an empty root filesystem."""
    try:
        head = BUSYBOX.read_bytes()[:8192]
    except OSError:
        return False
    return b"ld-linux" not in head  # a dynamic ELF names its loader near the start


def busybox_rootfs(root: Path) -> Path:
    """Fills ``root`` with /bin/busybox, applet links and the usual empty directories."""
    (root / "bin").mkdir(parents=True, exist_ok=True)
    shutil.copy2(BUSYBOX, root / "bin" / "busybox")
    for applet in APPLETS:
        link = root / "bin" / applet
        if not link.exists():
            link.symlink_to("busybox")
    for sub in ("proc", "sys", "dev", "etc", "tmp", "var/www", "root"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    (root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n")
    (root / "etc" / "group").write_text("root:x:0:\nnogroup:x:65534:\n")
    return root
