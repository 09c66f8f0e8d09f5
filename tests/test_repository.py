"""The blob layer: keys, dedup, compression, encryption, integrity."""

from __future__ import annotations

import io
import os
import threading
from pathlib import Path

import pytest

from strongbox.errors import (
    BackendError,
    IntegrityError,
    InvalidRequest,
    RepositoryExists,
    RepositoryNotFound,
    WrongPassphrase,
)
from strongbox.repository.backend import LocalBackend
from strongbox.repository.crypto import storage_id
from strongbox.repository.pack import BlobType
from strongbox.repository.repository import Repository
from strongbox.repository.snapshot import Snapshot
from strongbox.repository.tree import Node, Tree

os.environ.setdefault("STRONGBOX_SCRYPT_N", "1024")


def _init(tmp_path: Path, passphrase: str | None = "secret", **kw) -> Repository:
    return Repository.init(LocalBackend(tmp_path / "repo"), passphrase, **kw)


def _reopen(repo: Repository, passphrase: str | None = "secret") -> Repository:
    return Repository.open(LocalBackend(repo.backend.location), passphrase)


def test_blobs_round_trip_and_deduplicate(tmp_path: Path) -> None:
    repo = _init(tmp_path)
    data = os.urandom(100_000)
    first, new1 = repo.save_blob(BlobType.DATA, data)
    second, new2 = repo.save_blob(BlobType.DATA, data)
    assert first == second and new1 and not new2
    repo.flush()
    again = _reopen(repo)
    assert again.load_blob(BlobType.DATA, first) == data
    assert len(again.index) == 1


def test_wrong_passphrase_and_missing_repository(tmp_path: Path) -> None:
    repo = _init(tmp_path)
    with pytest.raises(WrongPassphrase):
        _reopen(repo, "not it")
    with pytest.raises(WrongPassphrase):
        _reopen(repo, None)
    with pytest.raises(RepositoryNotFound):
        Repository.open(LocalBackend(tmp_path / "nowhere"), "secret")
    with pytest.raises(RepositoryExists):
        _init(tmp_path)


def test_encrypted_ids_are_keyed_and_data_is_not_plaintext(tmp_path: Path) -> None:
    enc = Repository.init(LocalBackend(tmp_path / "a"), "secret")
    plain = Repository.init(LocalBackend(tmp_path / "b"), None)
    text = b"the quick brown fox " * 5000
    id_enc, _ = enc.save_blob(BlobType.DATA, text)
    id_plain, _ = plain.save_blob(BlobType.DATA, text)
    assert id_enc != id_plain  # keyed hash: ids reveal nothing about content
    enc.flush()
    plain.flush()
    for pack in (tmp_path / "a" / "data").rglob("*"):
        if pack.is_file():
            assert b"quick brown fox" not in pack.read_bytes()
    assert _reopen(plain, None).load_blob(BlobType.DATA, id_plain) == text


def test_compression_is_used_and_skipped_for_random_data(tmp_path: Path) -> None:
    repo = _init(tmp_path)
    repo.save_blob(BlobType.DATA, b"a" * 1_000_000)
    assert repo.stats["bytes_new_stored"] < 10_000
    random_data = os.urandom(1_000_000)
    before = repo.stats["bytes_new_stored"]
    repo.save_blob(BlobType.DATA, random_data)
    # Stored raw: plaintext + flag byte + nonce + tag, no zstd framing growth.
    assert repo.stats["bytes_new_stored"] - before == len(random_data) + 1 + 12 + 16


def test_key_slots_add_remove_rotate_without_rewriting_data(tmp_path: Path) -> None:
    repo = _init(tmp_path)
    blob_id, _ = repo.save_blob(BlobType.DATA, b"payload" * 100)
    repo.flush()
    packs_before = sorted(p.name for p in (tmp_path / "repo" / "data").rglob("*") if p.is_file())
    slot = repo.add_key("second", label="laptop")
    assert _reopen(repo, "second").load_blob(BlobType.DATA, blob_id) == b"payload" * 100
    repo.remove_key(slot)
    with pytest.raises(WrongPassphrase):
        _reopen(repo, "second")
    repo.change_passphrase("rotated")
    with pytest.raises(WrongPassphrase):
        _reopen(repo, "secret")
    reopened = _reopen(repo, "rotated")
    assert reopened.load_blob(BlobType.DATA, blob_id) == b"payload" * 100
    with pytest.raises(InvalidRequest):
        reopened.remove_key(reopened.key_slot or "")
    packs_after = sorted(p.name for p in (tmp_path / "repo" / "data").rglob("*") if p.is_file())
    assert packs_before == packs_after


def test_flipped_byte_is_detected_on_read(tmp_path: Path) -> None:
    repo = _init(tmp_path)
    blob_id, _ = repo.save_blob(BlobType.DATA, os.urandom(50_000))
    repo.flush()
    pack = next(p for p in (tmp_path / "repo" / "data").rglob("*") if p.is_file())
    raw = bytearray(pack.read_bytes())
    raw[1000] ^= 0x01
    pack.write_bytes(bytes(raw))
    with pytest.raises(IntegrityError, match=pack.name):
        _reopen(repo).load_blob(BlobType.DATA, blob_id)


def test_snapshots_are_listed_resolved_by_prefix_and_latest(tmp_path: Path) -> None:
    repo = _init(tmp_path)
    tree = repo.save_tree(Tree([Node("a", "file", size=0)]))
    first = Snapshot(tree=tree, paths=["/x"], time="2026-01-01T00:00:00+00:00")
    second = Snapshot(tree=tree, paths=["/x"], time="2026-01-02T00:00:00+00:00", tags=["t"])
    repo.save_snapshot(first)
    repo.save_snapshot(second)
    again = _reopen(repo)
    assert [s.id for s in again.list_snapshots()] == [first.id, second.id]
    assert again.load_snapshot("latest").id == second.id
    assert again.load_snapshot(first.id[:10]).tags == []
    assert again.load_snapshot(second.id).tags == ["t"]


def test_bad_settings_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidRequest):
        _init(tmp_path, compression_level=25)
    with pytest.raises(InvalidRequest):
        _init(tmp_path, chunk_avg=1024)
    with pytest.raises(InvalidRequest):
        _init(tmp_path, passphrase="")


def test_parallel_save_stream_keeps_chunk_order_and_stores_whole_packs(tmp_path: Path) -> None:
    # Small packs so several fill while chunks are compressed on several threads.
    repo = _init(tmp_path, pack_size=256 * 1024, chunk_avg=64 * 1024)
    data = os.urandom(3 * 1024 * 1024)
    serial, size = repo.save_stream(io.BytesIO(data))
    other = Repository.init(LocalBackend(tmp_path / "other"), "secret", pack_size=256 * 1024,
                            chunk_avg=64 * 1024)
    parallel, parallel_size = other.save_stream(io.BytesIO(data), workers=3)
    other.flush()

    assert size == parallel_size == len(data)
    assert len(parallel) > 10  # many chunks, so their order is really tested
    again = _reopen(other)
    assert b"".join(again.read_stream(parallel)) == data
    # Every pack file is named by the hash of its whole bytes, written back to back.
    packs = list(again.backend.list("data"))
    assert len(packs) > 3
    for pack in packs:
        assert storage_id(again.backend.get(pack.name)) == pack.name.rsplit("/", 1)[1]
    assert serial != parallel  # different repositories key their ids differently


def test_a_failed_pack_write_surfaces_at_flush(tmp_path: Path) -> None:
    repo = _init(tmp_path, pack_size=64 * 1024)
    data_dir = tmp_path / "repo" / "data"
    data_dir.rename(tmp_path / "moved")
    data_dir.write_bytes(b"")  # a file where the pack folder should be: every write fails

    with pytest.raises(BackendError, match="storage error"):
        repo.save_stream(io.BytesIO(os.urandom(512 * 1024)), workers=2)
        repo.flush()
    assert repo.snapshot_ids() == []
    # Nothing is still writing once the error is out (the caller may release its lock).
    assert not [t.name for t in threading.enumerate() if t.name.startswith("strongbox-")]
