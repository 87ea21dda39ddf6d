"""`sampan killall`'s sweep of leftover helpers: only the node's own programs (and their
children) that name the data directory go; anything else mentioning that path stays."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from sampan.node.killall import _kill_helpers


def test_only_helpers_of_this_data_dir_are_killed(tmp_path: Path) -> None:
    data, other = tmp_path / "node", tmp_path / "elsewhere"
    data.mkdir()
    other.mkdir()
    fake_conmon = tmp_path / "conmon"
    fake_conmon.symlink_to("/bin/sh")
    helper = subprocess.Popen([str(fake_conmon), "-c", "sleep 100; true", "conmon", str(data)])
    bystander = subprocess.Popen(["/bin/sh", "-c", "sleep 100; true", "sh", str(data)])  # e.g. a user's shell
    foreign = subprocess.Popen([str(fake_conmon), "-c", "sleep 100; true", "conmon", str(other)])
    try:
        time.sleep(0.3)  # the helper has started its sleep child
        child = int(Path(f"/proc/{helper.pid}/task/{helper.pid}/children").read_text().split()[0])
        assert _kill_helpers(data) == 1
        assert helper.wait(5) == -9
        time.sleep(0.1)
        assert not Path(f"/proc/{child}").exists() or b"Z" in Path(f"/proc/{child}/stat").read_bytes().split()[2:3]
        assert bystander.poll() is None and foreign.poll() is None
    finally:
        for p in (helper, bystander, foreign):
            p.kill()
            p.wait()
