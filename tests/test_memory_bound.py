"""A huge file is streamed: backing it up and restoring it does not grow memory with its size."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SCRIPT = """
import sys
from strongbox.repository.backend import LocalBackend
from strongbox.repository.repository import Repository
from strongbox.sources.files.archiver import backup_files
from strongbox.sources.files.restorer import restore_files
if sys.argv[1] == "init":
    Repository.init(LocalBackend(sys.argv[2]), "secret")
elif sys.argv[1] == "backup":
    backup_files(Repository.open(LocalBackend(sys.argv[2]), "secret"), [sys.argv[3]])
else:
    repo = Repository.open(LocalBackend(sys.argv[2]), "secret")
    restore_files(repo, repo.load_snapshot("latest"), sys.argv[3])
"""


def _peak_rss_mib(*args: str) -> float:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT, *args], env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    return usage.ru_maxrss / 1024


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
    _peak_rss_mib("init", repo)
    backup_rss = _peak_rss_mib("backup", repo, str(src))
    restore_rss = _peak_rss_mib("restore", repo, str(tmp_path / "out"))
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
