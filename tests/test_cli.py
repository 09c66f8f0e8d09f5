"""The `strongbox repo` command as a person or a script runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from strongbox.cli.console import EXIT_LOCKED, EXIT_NO_REPOSITORY, EXIT_WRONG_PASSPHRASE
from strongbox.repository.backend import LocalBackend
from strongbox.repository.lock import Lock


def _cli(tmp_path: Path, *args: str, passphrase: str | None = "secret",
         check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRONGBOX_")}
    env["STRONGBOX_SCRYPT_N"] = "1024"
    env["STRONGBOX_REPOSITORY"] = str(tmp_path / "repo")
    env["PYTHONPATH"] = os.pathsep.join(sys.path)
    if passphrase is not None:
        env["STRONGBOX_PASSPHRASE"] = passphrase
    proc = subprocess.run([sys.executable, "-m", "strongbox", "repo", *args], env=env,
                          capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


@pytest.fixture()
def src(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    (root / "sub").mkdir(parents=True)
    (root / "a.txt").write_text("alpha\n" * 1000)
    (root / "sub" / "b.bin").write_bytes(os.urandom(200_000))
    return root


def test_init_backup_snapshots_ls_restore_diff(tmp_path: Path, src: Path) -> None:
    _cli(tmp_path, "init")
    first = json.loads(_cli(tmp_path, "backup", str(src), "--tag", "nightly", "--json").stdout)
    (src / "c.txt").write_text("new")
    second = json.loads(_cli(tmp_path, "backup", str(src), "--json").stdout)
    snaps = json.loads(_cli(tmp_path, "snapshots", "--json").stdout)
    assert [s["id"] for s in snaps] == [first["snapshot"], second["snapshot"]]
    assert snaps[0]["tags"] == ["nightly"]
    listing = json.loads(_cli(tmp_path, "ls", "latest", "--json").stdout)
    assert {e["path"] for e in listing} >= {"data/a.txt", "data/sub/b.bin", "data/c.txt"}
    changes = json.loads(_cli(tmp_path, "diff", first["snapshot"][:8],
                              second["snapshot"][:8], "--json").stdout)
    assert {(c["kind"], c["path"]) for c in changes} >= {("+", "data/c.txt")}
    target = tmp_path / "out"
    _cli(tmp_path, "restore", "latest", "--target", str(target))
    assert (target / "data" / "sub" / "b.bin").read_bytes() == (src / "sub" / "b.bin").read_bytes()
    human = _cli(tmp_path, "snapshots").stdout
    assert "2 snapshots" in human


def test_check_forget_prune(tmp_path: Path, src: Path) -> None:
    _cli(tmp_path, "init")
    for i in range(3):
        (src / f"gen{i}").write_bytes(os.urandom(100_000))
        _cli(tmp_path, "backup", str(src))
    assert json.loads(_cli(tmp_path, "check", "--read-data", "--json").stdout)["ok"]
    dry = json.loads(_cli(tmp_path, "forget", "--keep-last", "1", "--dry-run", "--json").stdout)
    assert [d["keep"] for d in dry["decisions"]].count(False) == 2
    assert len(json.loads(_cli(tmp_path, "snapshots", "--json").stdout)) == 3
    _cli(tmp_path, "forget", "--keep-last", "1", "--prune")
    assert len(json.loads(_cli(tmp_path, "snapshots", "--json").stdout)) == 1
    assert json.loads(_cli(tmp_path, "check", "--read-data", "--json").stdout)["ok"]
    refused = _cli(tmp_path, "forget", check=False)
    assert refused.returncode == 1 and "empty policy" in refused.stderr


def test_clear_errors_and_exit_codes(tmp_path: Path, src: Path) -> None:
    missing = _cli(tmp_path, "snapshots", check=False)
    assert missing.returncode == EXIT_NO_REPOSITORY
    assert "no repository" in missing.stderr and "Traceback" not in missing.stderr
    _cli(tmp_path, "init")
    wrong = _cli(tmp_path, "snapshots", passphrase="nope", check=False)
    assert wrong.returncode == EXIT_WRONG_PASSPHRASE and "wrong passphrase" in wrong.stderr
    nopass = _cli(tmp_path, "snapshots", passphrase=None, check=False)
    assert nopass.returncode == 1 and "STRONGBOX_PASSPHRASE" in nopass.stderr
    with Lock(LocalBackend(tmp_path / "repo"), exclusive=True).acquire():
        locked = _cli(tmp_path, "backup", str(src), check=False)
    assert locked.returncode == EXIT_LOCKED and "locked" in locked.stderr
    assert _cli(tmp_path, "snapshots", "--json").stdout.strip() == "[]"


def test_password_file_and_key_rotation(tmp_path: Path, src: Path) -> None:
    pw = tmp_path / "pw"
    pw.write_text("from-file\n")
    _cli(tmp_path, "init", "--password-file", str(pw), passphrase=None)
    _cli(tmp_path, "backup", str(src), "--password-file", str(pw), passphrase=None)
    new = tmp_path / "new"
    new.write_text("rotated")
    _cli(tmp_path, "key", "passwd", "--new-password-file", str(new), passphrase="from-file")
    assert _cli(tmp_path, "snapshots", passphrase="from-file", check=False).returncode == 12
    assert _cli(tmp_path, "snapshots", passphrase="rotated").returncode == 0


def test_stale_lock_is_removed_by_unlock(tmp_path: Path, src: Path) -> None:
    _cli(tmp_path, "init")
    stale = json.dumps({"hostname": "elsewhere", "pid": 1, "time": 0, "exclusive": True})
    (tmp_path / "repo" / "locks" / "deadbeef").write_text(stale)
    assert _cli(tmp_path, "backup", str(src)).returncode == 0  # stale locks are ignored
    removed = json.loads(_cli(tmp_path, "unlock", "--json").stdout)
    assert len(removed) == 1
