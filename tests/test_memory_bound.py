"""A huge file is streamed: backing it up and restoring it does not grow memory with its size."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

# The peak RSS Linux reports for a child includes the memory of the process that forked
# it (until exec). pytest has grown large by now, so a small launcher forks the command
# and reports the command's own peak.
LAUNCHER = """
import os, subprocess, sys
proc = subprocess.Popen(sys.argv[1:], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
_, status, usage = os.wait4(proc.pid, 0)
print(os.waitstatus_to_exitcode(status), usage.ru_maxrss)
"""


def _peak_rss_mib(*args: str) -> float:
    """Run ``strongbox repo ...`` as a user would and return its peak RSS."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path),
           "STRONGBOX_PASSPHRASE": "secret"}
    out = subprocess.run([sys.executable, "-c", LAUNCHER, sys.executable, "-m", "strongbox",
                          "repo", *args], env=env, capture_output=True, text=True, check=True)
    code, peak_kib = (int(v) for v in out.stdout.split())
    assert code == 0, out.stderr
    return peak_kib / 1024


def test_a_3_gib_file_backs_up_and_restores_in_bounded_memory(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    big = src / "disk.img"
    size = 3 * 1024**3
    with open(big, "wb") as fh:  # sparse, with distinct data at a few places
        for offset in range(0, size, 512 * 1024**2):
            fh.seek(offset)
            fh.write(os.urandom(2 * 1024**2))
        fh.truncate(size)
    repo = str(tmp_path / "repo")
    _peak_rss_mib("init", "-r", repo)
    backup_rss = _peak_rss_mib("backup", "-r", repo, str(src))
    restore_rss = _peak_rss_mib("restore", "-r", repo, "latest", "-t", str(tmp_path / "out"))
    assert backup_rss < 300, f"backup peaked at {backup_rss:.0f} MiB"
    assert restore_rss < 300, f"restore peaked at {restore_rss:.0f} MiB"
    restored = tmp_path / "out" / "src" / "disk.img"
    assert restored.stat().st_size == size
    with open(big, "rb") as a, open(restored, "rb") as b:
        for offset in range(0, size, 512 * 1024**2):
            a.seek(offset)
            b.seek(offset)
            assert a.read(4 * 1024**2) == b.read(4 * 1024**2)
    restored.unlink()  # 3 GiB of real blocks: do not leave them in pytest's kept temp dirs
    big.unlink()
