"""Killing a backup at any moment leaves earlier snapshots intact and the repository sound."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from strongbox.repository.backend import LocalBackend
from strongbox.repository.checker import check_repository
from strongbox.repository.lock import remove_stale_locks
from strongbox.repository.repository import Repository
from strongbox.sources.files.archiver import backup_files
from strongbox.sources.files.restorer import restore_files
from tests.helpers.trees import describe

os.environ.setdefault("STRONGBOX_SCRYPT_N", "1024")

BACKUP_SCRIPT = """
import sys
from strongbox.repository.backend import LocalBackend
from strongbox.repository.repository import Repository
from strongbox.sources.files.archiver import backup_files
repo = Repository.open(LocalBackend(sys.argv[1]), "secret")
backup_files(repo, [sys.argv[2]])
print("done", flush=True)
"""


def _make_tree(root: Path, rng: random.Random, files: int) -> None:
    root.mkdir(parents=True, exist_ok=True)
    for i in range(files):
        (root / f"f{i:03}.bin").write_bytes(rng.randbytes(rng.randint(1, 400) * 1024))


def test_sigkill_during_backup_never_damages_earlier_snapshots(tmp_path: Path) -> None:
    rng = random.Random(7)
    src = tmp_path / "src"
    _make_tree(src, rng, 40)
    repo_path = tmp_path / "repo"
    repo = Repository.init(LocalBackend(repo_path), "secret", chunk_avg=64 * 1024,
                           pack_size=512 * 1024)
    first = backup_files(repo, [src])
    expected = describe(src)
    _make_tree(src, rng, 120)  # much more to back up, so kills land mid-way

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    for delay in (0.05, 0.15, 0.3, 0.5, 0.8):
        proc = subprocess.Popen([sys.executable, "-c", BACKUP_SCRIPT, str(repo_path), str(src)],
                                env=env, stdout=subprocess.PIPE)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()

        reopened = Repository.open(LocalBackend(repo_path), "secret")
        report = check_repository(reopened, read_data=True, no_lock=True)
        assert report.ok, [e.message for e in report.errors]
        out = tmp_path / f"restore-{delay}"
        restore_files(reopened, reopened.load_snapshot(first.id), out)
        assert describe(out / "src") == expected

    remove_stale_locks(LocalBackend(repo_path))
    final_repo = Repository.open(LocalBackend(repo_path), "secret")
    last = backup_files(final_repo, [src])
    restore_files(final_repo, last, tmp_path / "final")
    assert describe(tmp_path / "final" / "src") == describe(src)
    assert check_repository(final_repo, read_data=True).ok
