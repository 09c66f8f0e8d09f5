"""check_repository: a clean repository checks clean; damage is named down to the file."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from strongbox.errors import RepositoryLocked
from strongbox.progress import Progress
from strongbox.repository.backend import LocalBackend
from strongbox.repository.checker import check_repository
from strongbox.repository.index import IndexFile
from strongbox.repository.lock import Lock
from strongbox.repository.pack import BlobType
from strongbox.repository.repository import Repository
from strongbox.repository.snapshot import Snapshot
from strongbox.repository.tree import Node, Tree

Pair = tuple[Snapshot, Snapshot]


def save_files(repo: Repository, files: dict[str, list[bytes]]) -> Snapshot:
    """A snapshot of one directory ``data`` holding ``files`` (name -> chunks)."""
    nodes = []
    for name, chunks in sorted(files.items()):
        ids = [repo.save_blob(BlobType.DATA, chunk)[0].hex() for chunk in chunks]
        nodes.append(Node(name=name, type="file", size=sum(map(len, chunks)), content=ids))
    subtree = repo.save_tree(Tree(nodes))
    snapshot = Snapshot(tree=repo.save_tree(Tree([Node("data", "dir", subtree=subtree)])),
                        paths=["/data"])
    repo.save_snapshot(snapshot)
    return snapshot


def random_files(count: int, chunks: int = 3, size: int = 12 * 1024) -> dict[str, list[bytes]]:
    return {f"f{i:02}.bin": [os.urandom(size) for _ in range(chunks)] for i in range(count)}


def reopen(repo: Repository) -> Repository:
    return Repository.open(LocalBackend(repo.backend.location), "secret")


def pack_path(repo: Repository, pack_id: str) -> Path:
    return Path(repo.backend.location) / "data" / pack_id[:2] / pack_id


def chunk_id(repo: Repository, snapshot: Snapshot, name: str, index: int) -> str:
    """Hex id of chunk ``index`` of ``data/<name>`` in ``snapshot``."""
    for path, node in repo.iter_tree(snapshot.tree):
        if path == f"data/{name}":
            return str(node.content[index])
    raise AssertionError(f"no file {name}")


def locate(repo: Repository, hex_id: str) -> tuple[str, int, int]:
    """(pack id, offset, length) of a blob."""
    found = repo.index.lookup(bytes.fromhex(hex_id))
    assert found is not None
    pack_id, blob = found
    return pack_id, blob.offset, blob.length


@pytest.fixture()
def two_snapshots(repo: Repository) -> Pair:
    files = random_files(8)
    first = save_files(repo, files)
    second = save_files(repo, {**files, "new.bin": [os.urandom(30_000)]})
    return first, second


def test_fresh_repository_checks_clean(repo: Repository, two_snapshots: Pair) -> None:
    report = check_repository(reopen(repo))
    assert report.ok and not report.warnings, report.to_dict()
    assert report.snapshots_checked == 2
    assert report.packs_checked > 3  # 64 KiB packs: the data is spread over many
    assert report.blobs_checked >= 8 * 3 + 1
    assert report.affected == {}
    assert json.loads(json.dumps(report.to_dict()))["ok"] is True


def test_read_data_checks_every_blob(repo: Repository, two_snapshots: Pair) -> None:
    report = check_repository(reopen(repo), read_data=True)
    assert report.ok and not report.warnings, report.to_dict()
    assert report.blobs_checked == len(repo.index)


def test_flipped_byte_names_pack_blob_snapshot_and_file(repo: Repository,
                                                        two_snapshots: Pair) -> None:
    first, second = two_snapshots
    victim = chunk_id(repo, first, "f03.bin", 1)
    pack_id, offset, length = locate(repo, victim)
    path = pack_path(repo, pack_id)
    raw = bytearray(path.read_bytes())
    raw[offset + length // 2] ^= 0x01
    path.write_bytes(bytes(raw))

    # The structural check reads headers only; the damage is in blob data.
    assert check_repository(reopen(repo)).ok

    report = check_repository(reopen(repo), read_data=True)
    assert not report.ok
    damaged = [e for e in report.errors if e.kind == "damaged_blob"]
    assert [(e.pack_id, e.blob_id) for e in damaged] == [(pack_id, victim)]
    assert any(e.kind == "pack_id" and e.pack_id == pack_id for e in report.errors)
    assert report.affected == {victim: sorted([f"{first.short_id}:data/f03.bin",
                                               f"{second.short_id}:data/f03.bin"])}
    assert report.to_dict()["errors"][0]["pack_id"] == pack_id


def test_missing_pack_is_reported_with_the_files_it_breaks(repo: Repository,
                                                           two_snapshots: Pair) -> None:
    _first, second = two_snapshots
    victim = chunk_id(repo, second, "new.bin", 0)
    pack_id, _offset, _length = locate(repo, victim)
    in_pack = {b.blob_id.hex() for b in repo.index.by_pack()[pack_id]}
    pack_path(repo, pack_id).unlink()

    report = check_repository(reopen(repo))
    assert not report.ok
    assert [(e.kind, e.pack_id) for e in report.errors] == [("missing_pack", pack_id)]
    assert f"{second.short_id}:data/new.bin" in report.affected[victim]
    assert set(report.affected) <= in_pack


def test_blob_in_no_index_is_an_error(repo: Repository) -> None:
    ghost = "ab" * 32
    tree = repo.save_tree(Tree([Node("lost.txt", "file", content=[ghost])]))
    snapshot = Snapshot(tree=tree, paths=["/"])
    repo.save_snapshot(snapshot)
    report = check_repository(reopen(repo))
    assert [(e.kind, e.blob_id) for e in report.errors] == [("missing_blob", ghost)]
    assert report.affected == {ghost: [f"{snapshot.short_id}:lost.txt"]}


def test_unindexed_pack_is_only_a_warning(repo: Repository, two_snapshots: Pair) -> None:
    # A pack fills and is stored at once, but its index is written only at flush, which
    # an interrupted backup never reaches.
    repo.save_blob(BlobType.DATA, os.urandom(70_000))
    report = check_repository(reopen(repo), read_data=True)
    assert report.ok, report.to_dict()
    assert len(report.warnings) == 1
    assert "not referenced by any index" in report.warnings[0].message


def test_damaged_index_file_is_reported(repo: Repository, two_snapshots: Pair) -> None:
    name = next(iter(repo.read_index_files()))
    (Path(repo.backend.location) / "index" / name).write_bytes(b"garbage")
    report = check_repository(repo)
    assert any(e.kind == "index" and name in e.message for e in report.errors)
    assert report.warnings  # its packs are now unindexed


def test_check_reports_progress_per_pack(repo: Repository, two_snapshots: Pair) -> None:
    progress = Progress()
    report = check_repository(reopen(repo), progress=progress)
    assert progress.state.items_done == report.packs_checked
    assert progress.state.items_total == report.packs_checked
    assert progress.state.bytes_done == progress.state.bytes_total > 0


def test_check_waits_for_no_one_but_respects_an_exclusive_lock(repo: Repository) -> None:
    with Lock(repo.backend, exclusive=False).acquire():
        assert check_repository(repo).ok  # shared locks coexist
    with Lock(repo.backend, exclusive=True).acquire(), pytest.raises(RepositoryLocked):
        check_repository(repo)
    assert list(repo.backend.list("locks")) == []


def test_superseded_index_files_are_only_warnings(repo: Repository,
                                                  two_snapshots: Pair) -> None:
    # What a prune killed between writing its new index and deleting the old ones leaves.
    old = repo.read_index_files()
    repo.save_index(IndexFile(packs={p: b for f in old.values() for p, b in f.packs.items()},
                              supersedes=list(old)))
    report = check_repository(reopen(repo), read_data=True)
    assert report.ok, report.to_dict()
    assert [w.kind for w in report.warnings] == ["superseded_index"] * len(old)
