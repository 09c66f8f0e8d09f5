"""The files source: backup and restore of real trees."""

from __future__ import annotations

import os
import string
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from strongbox.errors import InvalidRequest, SourceError, UnsafePath
from strongbox.progress import Cancelled, Progress
from strongbox.repository.backend import LocalBackend
from strongbox.repository.repository import Repository
from strongbox.repository.snapshot import Snapshot
from strongbox.repository.tree import Node, Tree
from strongbox.sources.files.archiver import backup_files
from strongbox.sources.files.restorer import restore_files
from tests.helpers.trees import describe, hardlink_groups

os.environ.setdefault("STRONGBOX_SCRYPT_N", "1024")

SMALL_CHUNKS = 64 * 1024


def _repo(path: Path) -> Repository:
    return Repository.init(LocalBackend(path), "secret", chunk_avg=SMALL_CHUNKS,
                           pack_size=256 * 1024)


names = st.text(string.ascii_letters + string.digits + "-_. ", min_size=1, max_size=12).filter(
    lambda n: n not in (".", "..") and not n.startswith(".strongbox"))
file_spec = st.tuples(st.binary(max_size=3000), st.sampled_from([0o644, 0o600, 0o755, 0o444]),
                      st.integers(0, 2_000_000_000))
tree_spec = st.recursive(
    file_spec,
    lambda children: st.dictionaries(names, children, max_size=5),
    max_leaves=20,
)


def _build(root: Path, spec: object) -> None:
    assert isinstance(spec, dict)
    root.mkdir(parents=True, exist_ok=True)
    for name, child in spec.items():
        path = root / name
        if isinstance(child, dict):
            _build(path, child)
        else:
            data, mode, mtime = child
            path.write_bytes(data)
            os.chmod(path, mode)
            os.utime(path, ns=(mtime * 10**9, mtime * 10**9))
    os.utime(root, ns=(1_600_000_000 * 10**9,) * 2)


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(spec=st.dictionaries(names, tree_spec, max_size=6))
def test_any_tree_round_trips_byte_for_byte_with_metadata(tmp_path_factory, spec) -> None:
    base = tmp_path_factory.mktemp("rt")
    src = base / "src"
    _build(src, spec)
    repo = _repo(base / "repo")
    snap = backup_files(repo, [src])
    restore_files(repo, snap, base / "out")
    assert describe(base / "out" / "src") == describe(src)


def test_symlinks_hardlinks_empty_dirs_and_large_files(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "a" / "b").mkdir(parents=True)
    (src / "empty").mkdir()
    (src / "a" / "big.bin").write_bytes(os.urandom(3 * 1024 * 1024))
    (src / "a" / "text.txt").write_text("hello\n" * 10000)
    (src / "a" / "link").symlink_to("text.txt")
    (src / "dangling").symlink_to("does/not/exist")
    os.link(src / "a" / "text.txt", src / "a" / "b" / "hard")
    repo = _repo(tmp_path / "repo")
    snap = backup_files(repo, [src])
    restore_files(repo, snap, tmp_path / "out")
    out = tmp_path / "out" / "src"
    assert describe(out) == describe(src)
    assert hardlink_groups(out) == hardlink_groups(src)


def test_repeated_content_is_stored_once_across_files_and_snapshots(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    payload = os.urandom(2 * 1024 * 1024)
    for i in range(5):
        (src / f"copy{i}.bin").write_bytes(payload)
    repo = _repo(tmp_path / "repo")
    first = backup_files(repo, [src])
    assert first.summary["bytes_new_raw"] < len(payload) * 1.2
    (src / "copy5.bin").write_bytes(payload)  # a new file with old content
    second = backup_files(repo, [src])
    assert second.summary["files_new"] == 1
    assert second.summary["bytes_new_raw"] < 64 * 1024  # only tree blobs


def test_unchanged_files_are_not_read_again(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for i in range(20):
        (src / f"f{i}").write_bytes(os.urandom(10_000))
    repo = _repo(tmp_path / "repo")
    first = backup_files(repo, [src])
    (src / "f3").write_bytes(os.urandom(10_000))
    (src / "new").write_bytes(b"new")
    second = backup_files(repo, [src])
    assert second.parent == first.id
    assert second.summary["files_unmodified"] == 19
    assert second.summary["files_changed"] == 1
    assert second.summary["files_new"] == 1
    assert second.summary["bytes_processed"] == 10_003


def test_include_and_exclude_patterns(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "logs").mkdir(parents=True)
    (src / "keep").mkdir()
    (src / "logs" / "x.log").write_text("log")
    (src / "keep" / "a.txt").write_text("a")
    (src / "keep" / "b.log").write_text("b")
    repo = _repo(tmp_path / "repo")
    snap = backup_files(repo, [src], exclude=["*.log"])
    paths = {p for p, _ in repo.iter_tree(snap.tree)}
    assert paths == {"src", "src/logs", "src/keep", "src/keep/a.txt"}
    snap = backup_files(repo, [src], include=["*.log"], exclude=["src/logs"])
    paths = {p for p, _ in repo.iter_tree(snap.tree)}
    assert paths == {"src", "src/keep", "src/keep/b.log"}


def test_restore_sub_path_and_glob_selection(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "a" / "deep").mkdir(parents=True)
    (src / "b").mkdir()
    (src / "a" / "deep" / "x.txt").write_text("x")
    (src / "a" / "y.csv").write_text("y")
    (src / "b" / "z.txt").write_text("z")
    repo = _repo(tmp_path / "repo")
    snap = backup_files(repo, [src])
    restore_files(repo, snap, tmp_path / "sub", subpath="src/a/deep")
    assert (tmp_path / "sub" / "deep" / "x.txt").read_text() == "x"
    assert not (tmp_path / "sub" / "src").exists()
    restore_files(repo, snap, tmp_path / "glob", include=["*.txt"])
    got = {str(p.relative_to(tmp_path / "glob")) for p in (tmp_path / "glob").rglob("*")
           if p.is_file()}
    assert got == {"src/a/deep/x.txt", "src/b/z.txt"}
    with pytest.raises(InvalidRequest):
        restore_files(repo, snap, tmp_path / "none", subpath="src/missing")


@pytest.mark.parametrize("evil", ["..", "../escape", "/etc", "a/../../x", ""])
def test_restore_refuses_path_escapes(tmp_path: Path, evil: str) -> None:
    repo = _repo(tmp_path / "repo")
    blob_id, _ = repo.save_blob(0, b"pwned")  # type: ignore[arg-type]
    tree = repo.save_tree(Tree([Node(evil, "file", mode=0o644, size=5,
                                     content=[blob_id.hex()])]))
    snap = Snapshot(tree=tree, paths=["/evil"])
    repo.save_snapshot(snap)
    target = tmp_path / "target"
    with pytest.raises(UnsafePath):
        restore_files(repo, snap, target)
    assert not (tmp_path / "escape").exists() and not (tmp_path / "x").exists()


def test_restore_refuses_to_write_through_a_planted_symlink(tmp_path: Path) -> None:
    repo = _repo(tmp_path / "repo")
    outside = tmp_path / "outside"
    outside.mkdir()
    blob_id, _ = repo.save_blob(0, b"pwned")  # type: ignore[arg-type]
    inner = repo.save_tree(Tree([Node("file", "file", mode=0o644, size=5,
                                      content=[blob_id.hex()])]))
    # Two entries with one name: a symlink out of the target, then a folder through it.
    tree = repo.save_tree(Tree([
        Node("d", "symlink", link_target=str(outside)),
        Node("d", "dir", mode=0o755, subtree=inner),
    ]))
    snap = Snapshot(tree=tree, paths=["/evil"])
    repo.save_snapshot(snap)
    target = tmp_path / "target"
    target.mkdir()
    (target / "d").symlink_to(outside)  # as if planted by an earlier restore
    with pytest.raises(UnsafePath):
        restore_files(repo, snap, target)
    assert list(outside.iterdir()) == []


def test_missing_source_is_a_clear_error(tmp_path: Path) -> None:
    repo = _repo(tmp_path / "repo")
    with pytest.raises(SourceError, match="no such file"):
        backup_files(repo, [tmp_path / "missing"])
    assert repo.list_snapshots() == []


def test_cancelled_backup_leaves_no_snapshot(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_bytes(os.urandom(500_000))
    repo = _repo(tmp_path / "repo")
    progress = Progress()
    progress.cancel()
    with pytest.raises(Cancelled):
        backup_files(repo, [src], progress=progress)
    assert repo.list_snapshots() == []


def test_special_files_are_reported_and_the_rest_backed_up(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "ok").write_text("fine")
    os.mkfifo(src / "pipe")
    repo = _repo(tmp_path / "repo")
    snap = backup_files(repo, [src])
    assert any("pipe" in e for e in snap.summary["errors"])
    assert {p for p, _ in repo.iter_tree(snap.tree)} == {"src", "src/ok"}


def test_restore_over_existing_files_replaces_them(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text("original")
    repo = _repo(tmp_path / "repo")
    snap = backup_files(repo, [src])
    out = tmp_path / "out"
    restore_files(repo, snap, out)
    (out / "src" / "a.txt").write_text("changed since the backup")
    restore_files(repo, snap, out)
    assert (out / "src" / "a.txt").read_text() == "original"
    assert [p.name for p in (out / "src").iterdir()] == ["a.txt"]  # no temporary left
