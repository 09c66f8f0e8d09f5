"""The server's repository: created at first start, opened afresh for each job.

Each job opens its own :class:`Repository` instance, as a separate process would: the
repository engine is built for independent writers that coordinate through locks, and one
job's flush can never commit another job's half-written data.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from strongbox.errors import InvalidRequest
from strongbox.repository.backend import open_backend
from strongbox.repository.repository import Repository, needs_passphrase
from strongbox.repository.snapshot import Snapshot


@dataclass(frozen=True)
class RepositoryInfo:
    location: str
    encrypted: bool
    key_id: str | None
    compression_level: int


class RepositoryProvider:
    def __init__(self, location: str, passphrase: str | None) -> None:
        self.location = location
        self._passphrase = passphrase
        self._info: RepositoryInfo | None = None

    def ensure(self) -> RepositoryInfo:
        """Open the repository, creating it (encrypted) first if there is none; fails
        early on a missing or wrong passphrase."""
        backend = open_backend(self.location)
        if not backend.is_initialised():
            if not self._passphrase:
                raise InvalidRequest(f"no repository at {self.location} yet: set "
                                     "STRONGBOX_PASSPHRASE (or STRONGBOX_PASSPHRASE_FILE) so "
                                     "it can be created encrypted")
            repo = Repository.init(backend, self._passphrase)
        else:
            if needs_passphrase(backend) and not self._passphrase:
                raise InvalidRequest(f"the repository at {self.location} is encrypted: set "
                                     "STRONGBOX_PASSPHRASE or STRONGBOX_PASSPHRASE_FILE")
            repo = Repository.open(backend, self._passphrase)
        self._info = RepositoryInfo(repo.backend.location, repo.config.encrypted, repo.key_slot,
                                    repo.config.compression_level)
        return self._info

    @property
    def info(self) -> RepositoryInfo:
        return self._info or self.ensure()

    def open(self) -> Repository:
        backend = open_backend(self.location)
        secret = self._passphrase if needs_passphrase(backend) else None
        return Repository.open(backend, secret)

    def used_bytes(self) -> int:
        """Bytes the repository occupies on disk (all tenants: the data is shared)."""
        total = 0
        for root, _dirs, files in os.walk(self.location):
            for name in files:
                try:
                    total += os.lstat(os.path.join(root, name)).st_size
                except OSError:
                    continue
        return total

    def available_bytes(self) -> int | None:
        try:
            return shutil.disk_usage(self.location).free
        except OSError:
            return None


def snapshot_checksum(repo: Repository, snapshot_id: str) -> str:
    """SHA-256 of the stored snapshot document.

    The document is immutable and names the root tree by its content hash, which names
    every blob below it: the digest therefore covers the whole backup, and any reader
    can recompute it from ``snapshots/<id>`` without the key.
    """
    return hashlib.sha256(repo.backend.get(f"snapshots/{snapshot_id}")).hexdigest()


def snapshot_blobs(repo: Repository, tree_id: str) -> set[bytes]:
    """Every tree and data blob a snapshot's tree references."""
    used: set[bytes] = set()
    todo = [tree_id]
    while todo:
        tree_hex = todo.pop()
        key = bytes.fromhex(tree_hex)
        if key in used:
            continue
        used.add(key)
        for node in repo.load_tree(tree_hex).nodes:
            used.update(bytes.fromhex(h) for h in node.content)
            if node.type == "dir" and node.subtree:
                todo.append(node.subtree)
    return used


def logical_size(repo: Repository, snapshot: Snapshot) -> tuple[int, int]:
    """(bytes of data the snapshot holds, number of files and streams in it)."""
    size = count = 0
    for _path, node in repo.iter_tree(snapshot.tree):
        if node.type in ("file", "stream"):
            size += node.size
            count += 1
    return size, count


def stored_size(repo: Repository, blobs: set[bytes]) -> int:
    """Bytes these blobs take in the repository (compressed and sealed)."""
    total = 0
    for blob_id in blobs:
        found = repo.index.lookup(blob_id)
        if found is not None:
            total += found[1].length
    return total


def exclusive_bytes(repo: Repository, snapshot: Snapshot) -> int:
    """Stored bytes only this snapshot references: what the next prune frees once it is
    forgotten. Walks every other snapshot, so it costs a full tree walk of the repository."""
    mine = snapshot_blobs(repo, snapshot.tree)
    for other in repo.list_snapshots():
        if other.id != snapshot.id:
            mine -= snapshot_blobs(repo, other.tree)
            if not mine:
                break
    return stored_size(repo, mine)


def path_size(path: Path, *, limit: int = 50_000) -> int | None:
    """Bytes under ``path`` (a file or folder); None if more than ``limit`` entries."""
    if path.is_file():
        return path.stat().st_size
    total = seen = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            seen += 1
            if seen > limit:
                return None
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                continue
    return total
