"""prune: frees what no snapshot needs, never what one does, even when killed mid-way."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from strongbox.errors import IntegrityError, RepositoryLocked
from strongbox.progress import Progress
from strongbox.repository.backend import LocalBackend
from strongbox.repository.checker import check_repository
from strongbox.repository.lock import remove_stale_locks
from strongbox.repository.pack import BlobType
from strongbox.repository.prune import plan_prune, prune
from strongbox.repository.repository import Repository
from strongbox.repository.snapshot import Snapshot
from strongbox.repository.tree import Node, Tree

Files = dict[str, list[bytes]]  # file name -> its chunks


def save_snapshot(repo: Repository, files: Files) -> Snapshot:
    """A snapshot of one directory ``data`` holding ``files``."""
    nodes = [
        Node(name, "file", size=sum(map(len, chunks)),
             content=[repo.save_blob(BlobType.DATA, c)[0].hex() for c in chunks])
        for name, chunks in files.items()
    ]
    subtree = repo.save_tree(Tree(nodes))
    snapshot = Snapshot(tree=repo.save_tree(Tree([Node("data", "dir", subtree=subtree)])),
                        paths=["/data"])
    repo.save_snapshot(snapshot)
    return snapshot


def make_files(rng: random.Random, count: int, chunk: int, prefix: str) -> Files:
    return {f"{prefix}{i:02}.bin": [rng.randbytes(chunk) for _ in range(3)]
            for i in range(count)}


def store_interleaved(repo: Repository, *sets: Files) -> None:
    """Store the chunks of several snapshots alternately, so that each pack mixes data
    of all of them (as backups of changing data do) and forgetting one leaves packs
    partly used."""
    streams = [[c for chunks in files.values() for c in chunks] for files in sets]
    for group in zip(*streams, strict=False):
        for chunk in group:
            repo.save_blob(BlobType.DATA, chunk)


def read_back(repo: Repository, snapshot: Snapshot) -> Files:
    return {
        path.removeprefix("data/"): [repo.load_blob(BlobType.DATA, bytes.fromhex(h))
                                     for h in node.content]
        for path, node in repo.iter_tree(snapshot.tree) if node.type == "file"
    }


def listing(root: Path) -> list[tuple[str, int]]:
    return sorted((str(p.relative_to(root)), p.stat().st_size)
                  for p in root.rglob("*") if p.is_file())


def du(root: Path) -> int:
    return sum(size for _name, size in listing(root))


def reopen(path: Path | str) -> Repository:
    return Repository.open(LocalBackend(path), "secret")


class History:
    """Three snapshots over mixed packs; the middle one has been forgotten."""

    def __init__(self, repo: Repository, seed: int = 1) -> None:
        rng = random.Random(seed)
        keep = make_files(rng, 10, 8 * 1024, "keep")
        gone = make_files(rng, 10, 16 * 1024, "gone")
        later = {**dict(list(keep.items())[:5]), **make_files(rng, 4, 8 * 1024, "late")}
        store_interleaved(repo, keep, gone)
        self.first = save_snapshot(repo, keep)
        forgotten = save_snapshot(repo, gone)
        self.third = save_snapshot(repo, later)
        repo.delete_snapshot(forgotten.id)
        self.expected = {self.first.id: keep, self.third.id: later}

    def verify(self, repo: Repository) -> None:
        assert sorted(repo.snapshot_ids()) == sorted(self.expected)
        for snapshot_id, files in self.expected.items():
            assert read_back(repo, repo.load_snapshot(snapshot_id)) == files


def assert_clean(repo: Repository) -> None:
    report = check_repository(repo, read_data=True)
    assert report.ok and not report.warnings, report.to_dict()


def test_prune_after_forget_frees_space_and_keeps_the_rest(repo: Repository) -> None:
    root = Path(repo.backend.location)
    history = History(repo)
    before = du(root)

    progress = Progress()
    result = prune(repo, progress=progress)

    assert result.plan.repack and result.plan.delete  # mixed packs: both happen
    assert progress.state.items_done == progress.state.items_total == (
        2 * len(result.plan.repack) + len(result.plan.delete))
    assert result.packs_deleted > 0 and result.packs_written > 0
    assert result.bytes_freed > 200 * 1024  # most of the forgotten 480 KiB
    assert before - du(root) >= result.bytes_freed - 4096  # (lock file aside)
    history.verify(repo)
    history.verify(reopen(root))
    assert_clean(reopen(root))
    assert len(list(root.joinpath("index").iterdir())) == 1

    again = prune(reopen(root))
    assert again.plan.nothing_to_do and again.bytes_freed == 0


def test_repack_threshold_zero_deletes_only_empty_packs(repo: Repository) -> None:
    History(repo)
    plan = plan_prune(repo, repack_threshold=0.0)
    assert not plan.repack and plan.delete and plan.keep
    assert plan.blobs_unused > 0
    assert plan.to_dict()["packs_to_delete"] == len(plan.delete)


def test_dry_run_changes_nothing(repo: Repository) -> None:
    root = Path(repo.backend.location)
    history = History(repo)
    before = listing(root)

    result = prune(repo, dry_run=True)

    assert listing(root) == before
    doc = result.to_dict()
    assert doc["dry_run"] is True and doc["packs_to_delete"] > 0
    assert doc["bytes_freed"] == result.plan.bytes_freed_estimate > 0
    history.verify(reopen(root))


def test_prune_removes_leftovers_of_an_interrupted_backup(repo: Repository) -> None:
    history = History(repo)
    # A full pack is stored at once, its index only at flush: the process "died" before.
    repo.save_blob(BlobType.DATA, os.urandom(70_000))
    reopened = reopen(repo.backend.location)
    assert check_repository(reopened).warnings

    result = prune(reopened)

    assert result.plan.unindexed
    assert_clean(reopened)
    history.verify(reopened)


def test_duplicate_blob_keeps_one_copy(repo: Repository) -> None:
    # Two writers that did not see each other's index both stored the same chunk.
    twin = reopen(repo.backend.location)
    chunk = os.urandom(40_000)
    for writer in (repo, twin):
        writer.save_blob(BlobType.DATA, chunk)
        writer.flush()
    reopened = reopen(repo.backend.location)
    assert len(reopened.index.by_pack()) == 1 < len(list(reopened.backend.list("data")))
    snapshot = save_snapshot(reopened, {"dup.bin": [chunk]})

    result = prune(reopened)

    assert result.packs_deleted == 1 and result.plan.blobs_unused == 1
    assert read_back(reopen(repo.backend.location), snapshot) == {"dup.bin": [chunk]}
    assert_clean(reopened)


def test_prune_refuses_to_drop_a_damaged_needed_blob(repo: Repository) -> None:
    root = Path(repo.backend.location)
    History(repo)
    plan = plan_prune(repo)
    pack_id, blobs = next(iter(plan.repack.items()))
    path = root / "data" / pack_id[:2] / pack_id
    raw = bytearray(path.read_bytes())
    raw[blobs[0].offset + 5] ^= 0xFF
    path.write_bytes(bytes(raw))
    before = listing(root)

    with pytest.raises(IntegrityError, match="prune stopped before changing the index"):
        prune(reopen(root))

    assert listing(root) == before  # the new packs written so far were taken back


def test_prune_refuses_when_a_needed_blob_is_missing(repo: Repository) -> None:
    root = Path(repo.backend.location)
    history = History(repo)
    victim = history.expected[history.first.id]["keep00.bin"][0]
    found = repo.index.lookup(repo.blob_id(victim))
    assert found is not None
    (root / "data" / found[0][:2] / found[0]).unlink()
    before = listing(root)

    with pytest.raises(IntegrityError, match="nothing was changed"):
        prune(reopen(root))

    assert listing(root) == before


def test_resumed_prune_keeps_a_new_pack_identical_to_a_leftover(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Unencrypted packs are deterministic: a prune that died after repacking left packs
    # the next prune builds again byte for byte. They are leftovers (unindexed, so
    # planned for deletion) and new packs at once, and must survive as the latter.
    repo = Repository.init(LocalBackend(tmp_path / "plain"), None, pack_size=64 * 1024)
    history = History(repo)

    def crash(*_args: object) -> str:
        raise RuntimeError("killed before the index was written")

    monkeypatch.setattr(repo, "save_index", crash)
    with pytest.raises(RuntimeError):
        prune(repo)
    resumed = Repository.open(LocalBackend(tmp_path / "plain"), None)
    leftovers = set(plan_prune(resumed).unindexed)
    assert leftovers

    result = prune(resumed)

    assert leftovers <= set(resumed.index.pack_ids())
    assert result.packs_written == len(leftovers)
    history.verify(resumed)
    assert_clean(resumed)


LOCK_HOLDER = """
import sys, time
from strongbox.repository.backend import LocalBackend
from strongbox.repository.lock import Lock
Lock(LocalBackend(sys.argv[1]), exclusive=False).acquire()
print("locked", flush=True)
time.sleep(60)
"""


def test_prune_refuses_while_another_process_holds_a_lock(repo: Repository) -> None:
    History(repo)
    root = Path(repo.backend.location)
    before = listing(root)
    holder = subprocess.Popen([sys.executable, "-c", LOCK_HOLDER, str(root)],
                              stdout=subprocess.PIPE, text=True, env=_child_env())
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
        with pytest.raises(RepositoryLocked):
            prune(reopen(root))
        with pytest.raises(RepositoryLocked):
            prune(reopen(root), dry_run=True)
    finally:
        holder.kill()
        holder.wait()
    data_before = [entry for entry in before if not entry[0].startswith("locks")]
    assert [e for e in listing(root) if not e[0].startswith("locks")] == data_before


# --- crash safety ------------------------------------------------------------------------

# Prune through a backend that announces each change on stdout before making it and
# dawdles a little, so the test can kill the process right before, during or after any
# single step of the prune.
PRUNE_SCRIPT = """
import sys, time
from strongbox.repository.backend import LocalBackend
from strongbox.repository.prune import prune
from strongbox.repository.repository import Repository

class AnnouncingBackend(LocalBackend):
    def _announce(self, verb, name):
        if not name.startswith("locks/"):
            print(verb, name, flush=True)
            time.sleep(0.01)

    def create(self, name, data):
        self._announce("create", name)
        super().create(name, data)

    def delete(self, name):
        self._announce("delete", name)
        super().delete(name)

prune(Repository.open(AnnouncingBackend(sys.argv[1]), "secret"))
print("done", flush=True)
"""


def _child_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}


def _prune_in_child(root: Path, kill_after: int | None, rng: random.Random) -> list[str]:
    """Run prune in a child; SIGKILL it soon after its ``kill_after``-th change."""
    child = subprocess.Popen([sys.executable, "-c", PRUNE_SCRIPT, str(root)],
                             stdout=subprocess.PIPE, text=True, env=_child_env())
    assert child.stdout is not None
    steps: list[str] = []
    while kill_after is None or len(steps) < kill_after:
        line = child.stdout.readline()
        if not line or line == "done\n":
            break
        steps.append(line.strip())
    if kill_after is not None:
        # Up to 1.5 announcement pauses: lands before, during or after the step.
        time.sleep(rng.uniform(0, 0.015))
        os.kill(child.pid, signal.SIGKILL)
    child.communicate()
    return steps


def test_prune_killed_at_any_step_loses_nothing(repo: Repository, tmp_path: Path) -> None:
    pristine = Path(repo.backend.location)
    history = History(repo, seed=3)
    rng = random.Random(11)

    reference = tmp_path / "reference"
    shutil.copytree(pristine, reference)
    steps = _prune_in_child(reference, None, rng)
    assert any(s.startswith("create data/") for s in steps)  # repacks
    assert any(s.startswith("create index/") for s in steps)
    assert any(s.startswith("delete index/") for s in steps)
    assert any(s.startswith("delete data/") for s in steps)
    history.verify(reopen(reference))

    # At least one kill inside each phase, and a few anywhere.
    phases: dict[str, list[int]] = {}
    for number, step in enumerate(steps, start=1):
        phases.setdefault(step.split("/")[0], []).append(number)
    kill_points = sorted({*(rng.choice(numbers) for numbers in phases.values()),
                          *rng.sample(range(1, len(steps) + 1), 3), len(steps)})
    for point in kill_points:
        victim = tmp_path / f"killed-at-{point}"
        shutil.copytree(pristine, victim)
        _prune_in_child(victim, point, rng)

        after_crash = reopen(victim)
        history.verify(after_crash)
        report = check_repository(after_crash, read_data=True, no_lock=True)
        assert report.ok, (point, [e.message for e in report.errors])

        remove_stale_locks(LocalBackend(victim))
        finished = reopen(victim)
        prune(finished)
        history.verify(finished)
        assert_clean(finished)
