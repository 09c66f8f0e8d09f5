"""Check a repository: is every snapshot complete, and (optionally) is every byte intact?

The structural check reads only small things: the index files, each pack's header (the
tail of the file), the snapshots and their trees. It proves that every blob a snapshot
needs is described by the index, that every indexed pack exists with the size and header
the index implies, and it notes packs nothing indexes (left by an interrupted backup).
``read_data`` additionally reads every pack whole and decodes every blob, which proves
the data itself is still what was written.

When something is wrong the report says which pack and which blobs are damaged, and which
snapshots and file paths use them, so a person knows what a restore would lose. Packs are
checked against the index files as read from storage (not the index a long-open
:class:`Repository` may hold), so the check describes the repository as it is now.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from strongbox.errors import BackendError, IntegrityError, StrongboxError
from strongbox.progress import Progress
from strongbox.repository import compression
from strongbox.repository.crypto import storage_id
from strongbox.repository.index import Index, IndexFile
from strongbox.repository.lock import Lock
from strongbox.repository.pack import PackedBlob, header_read_size, read_header
from strongbox.repository.repository import Repository
from strongbox.repository.snapshot import Snapshot
from strongbox.repository.tree import Tree

_TRAILER_SIZE = 4  # the uint32 header length that ends every pack


@dataclass(frozen=True)
class CheckProblem:
    """One thing found wrong (or, as a warning, worth knowing)."""

    # index, missing_pack, pack_size, pack_header, pack_id, damaged_blob, missing_blob,
    # snapshot, tree; warnings: unindexed_pack, pack_header, superseded_index
    kind: str
    pack_id: str | None
    blob_id: str | None  # hex
    message: str

    def __str__(self) -> str:
        return self.message


@dataclass
class CheckReport:
    errors: list[CheckProblem] = field(default_factory=list)
    warnings: list[CheckProblem] = field(default_factory=list)
    packs_checked: int = 0
    blobs_checked: int = 0
    snapshots_checked: int = 0
    read_data: bool = False
    # damaged or missing blob (hex) -> "<snapshot short id>:<path>" entries that use it
    affected: dict[str, list[str]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.errors

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "read_data": self.read_data,
            "packs_checked": self.packs_checked,
            "blobs_checked": self.blobs_checked,
            "snapshots_checked": self.snapshots_checked,
            "errors": [asdict(p) for p in self.errors],
            "warnings": [asdict(p) for p in self.warnings],
            "affected": self.affected,
        }


def check_repository(repo: Repository, *, read_data: bool = False,
                     progress: Progress | None = None, no_lock: bool = False) -> CheckReport:
    """Check ``repo``; a shared lock keeps prune from deleting packs under our feet."""
    lock = None if no_lock else Lock(repo.backend, exclusive=False).acquire()
    try:
        return _Checker(repo, progress or Progress(), read_data).run()
    finally:
        if lock is not None:
            lock.release()


class _Checker:
    def __init__(self, repo: Repository, progress: Progress, read_data: bool) -> None:
        self.repo = repo
        self.progress = progress
        self.report = CheckReport(read_data=read_data)
        self.index = Index()
        # pack id -> every entry the live index files give it (duplicates included)
        self.indexed: dict[str, set[PackedBlob]] = {}
        self.damaged: set[bytes] = set()

    def run(self) -> CheckReport:
        self._load_index()
        self._check_packs()
        snapshots = self._load_snapshots()
        self._check_trees(snapshots)
        if self.damaged:
            self._map_affected(snapshots)
        return self.report

    # --- problems -------------------------------------------------------------------------

    def _error(self, kind: str, message: str, pack_id: str | None = None,
               blob_id: bytes | None = None) -> None:
        self.report.errors.append(
            CheckProblem(kind, pack_id, blob_id.hex() if blob_id else None, message))
        if blob_id is not None:
            self.damaged.add(blob_id)

    def _warn(self, kind: str, message: str, pack_id: str | None = None) -> None:
        self.report.warnings.append(CheckProblem(kind, pack_id, None, message))

    # --- index ----------------------------------------------------------------------------

    def _load_index(self) -> None:
        self.progress.operation("checking index")
        files: dict[str, IndexFile] = {}
        for obj in self.repo.backend.list("index"):
            name = obj.name.split("/", 1)[1]
            try:
                files[name] = _read_index_file(self.repo, obj.name)
            except (StrongboxError, ValueError, KeyError, TypeError) as exc:
                # Its packs will show up as unindexed and its blobs as missing, which
                # names the consequences; this error names the cause.
                self._error("index", f"index file {name} cannot be read: {exc}")
        # Like Repository.load_index: a file some other file supersedes is history (a
        # prune wrote its replacement and was stopped before deleting it).
        superseded = {s for f in files.values() for s in f.supersedes}
        for name, index_file in files.items():
            if name in superseded:
                self._warn("superseded_index", f"index file {name} is superseded — left by "
                           "an interrupted prune; the next prune removes it")
                continue
            for pack_id, blobs in index_file.packs.items():
                self.index.add_pack(pack_id, blobs)
                self.indexed.setdefault(pack_id, set()).update(blobs)

    # --- packs ----------------------------------------------------------------------------

    def _check_packs(self) -> None:
        stored = {obj.name.split("/", 1)[1]: obj.size for obj in self.repo.backend.list("data")}
        for pack_id in sorted(stored.keys() - self.indexed.keys()):
            self._warn("unindexed_pack",
                       f"pack {pack_id} is not referenced by any index — left by an "
                       "interrupted backup or prune; prune removes it", pack_id)
        present = sorted(self.indexed.keys() & stored.keys())
        for pack_id in sorted(self.indexed.keys() - stored.keys()):
            self._error("missing_pack", f"pack {pack_id} is indexed but missing from storage",
                        pack_id)
            self.damaged.update(b.blob_id for b in self.indexed[pack_id])
        self.progress.start("checking packs", items_total=len(present),
                            bytes_total=sum(stored[p] for p in present))
        for pack_id in present:
            self.progress.check_cancelled()
            self._check_pack(pack_id, stored[pack_id])
            self.report.packs_checked += 1
            self.progress.advance(items=1, nbytes=stored[pack_id])

    def _check_pack(self, pack_id: str, size: int) -> None:
        entries = self.indexed[pack_id]
        end = max((b.offset + b.length for b in entries), default=0)
        if size < end + _TRAILER_SIZE:
            self._error("pack_size", f"pack {pack_id} is {size} bytes, too short for the "
                        f"{end} bytes of blobs its index lists", pack_id)
            self.damaged.update(b.blob_id for b in entries)
            return
        name = f"data/{pack_id}"
        try:
            data = self.repo.backend.get(name) if self.report.read_data else None
            tail = data if data is not None else _read_tail(self.repo, name, size)
        except BackendError as exc:
            self._error("missing_pack", f"pack {pack_id} cannot be read: {exc}", pack_id)
            self.damaged.update(b.blob_id for b in entries)
            return
        header = self._check_header(pack_id, tail, size, entries)
        if data is None:
            self.report.blobs_checked += len(entries)
            return
        if storage_id(data) != pack_id:
            self._error("pack_id", f"pack {pack_id}: content does not match its id "
                        "(the file is damaged)", pack_id)
        self._decode_blobs(pack_id, data, entries | set(header))

    def _check_header(self, pack_id: str, tail: bytes, size: int,
                      entries: set[PackedBlob]) -> list[PackedBlob]:
        try:
            header = read_header(self.repo.cipher, pack_id, tail, size)
        except IntegrityError as exc:
            # The index still locates every blob, so restores work; but the pack can no
            # longer describe itself, which a rebuilt index would need.
            self._error("pack_header", f"pack {pack_id}: header unreadable: {exc}", pack_id)
            return []
        in_header = set(header)
        for blob in sorted(entries - in_header, key=lambda b: b.offset):
            self._error("pack_header", f"pack {pack_id}: index entry for blob "
                        f"{blob.blob_id.hex()} does not match the pack header",
                        pack_id, blob.blob_id)
        extra = len(in_header - entries)
        if extra:
            self._warn("pack_header", f"pack {pack_id} holds {extra} blobs no index lists",
                       pack_id)
        return header

    def _decode_blobs(self, pack_id: str, data: bytes, blobs: Iterable[PackedBlob]) -> None:
        for blob in sorted(blobs, key=lambda b: b.offset):
            sealed = data[blob.offset:blob.offset + blob.length]
            try:
                self.repo.decode_blob(pack_id, blob, sealed)
            except IntegrityError as exc:
                self._error("damaged_blob", str(exc), pack_id, blob.blob_id)
            self.report.blobs_checked += 1

    # --- snapshots and trees --------------------------------------------------------------

    def _load_snapshots(self) -> list[Snapshot]:
        self.progress.operation("checking snapshots")
        snapshots = []
        for snapshot_id in self.repo.snapshot_ids():
            try:
                snapshots.append(self.repo.load_snapshot(snapshot_id))
            except (StrongboxError, ValueError, KeyError, TypeError) as exc:
                self._error("snapshot", f"snapshot {snapshot_id[:8]} cannot be read: {exc}")
            self.report.snapshots_checked += 1
        return snapshots

    def _check_trees(self, snapshots: list[Snapshot]) -> None:
        # Shared subtrees are checked once: unchanged directories repeat in every snapshot.
        seen: set[bytes] = set()
        todo = [(bytes.fromhex(s.tree), f"snapshot {s.short_id}") for s in snapshots]
        while todo:
            self.progress.check_cancelled()
            tree_id, owner = todo.pop()
            if tree_id in seen:
                continue
            seen.add(tree_id)
            tree = self._load_tree(tree_id, owner)
            if tree is None:
                continue
            for node in tree.nodes:
                for hex_id in node.content:
                    self._require_indexed(bytes.fromhex(hex_id), f"file {node.name}")
                if node.type == "dir" and node.subtree:
                    todo.append((bytes.fromhex(node.subtree), f"directory {node.name}"))

    def _require_indexed(self, blob_id: bytes, user: str) -> None:
        if blob_id not in self.index:
            self._error("missing_blob", f"blob {blob_id.hex()} used by {user} is not in "
                        "any index", blob_id=blob_id)

    def _load_tree(self, tree_id: bytes, user: str) -> Tree | None:
        if tree_id not in self.index:
            self._require_indexed(tree_id, user)
            return None
        try:
            return _read_tree(self.repo, self.index, tree_id)
        except (StrongboxError, ValueError, KeyError, TypeError) as exc:
            pack_id = _pack_of(self.index, tree_id)
            self._error("tree", f"tree {tree_id.hex()} of {user} cannot be read: {exc}",
                        pack_id, tree_id)
            return None

    def _map_affected(self, snapshots: list[Snapshot]) -> None:
        """Say which snapshot paths use each damaged blob: what a restore would lose."""
        self.progress.operation("finding files that use damaged data")
        affected: dict[str, set[str]] = {}
        for snap in snapshots:
            for blob_id, path in _walk_blob_users(self.repo, self.index, snap.tree):
                if blob_id in self.damaged:
                    affected.setdefault(blob_id.hex(), set()).add(f"{snap.short_id}:{path}")
        self.report.affected = {b: sorted(users) for b, users in sorted(affected.items())}


# --- helpers -------------------------------------------------------------------------------


def _read_index_file(repo: Repository, name: str) -> IndexFile:
    """One index file, verified against its name; errors stay per file, unlike
    :meth:`Repository.read_index_files` which stops at the first bad one."""
    stored = repo.backend.get(name)
    if storage_id(stored) != name.rsplit("/", 1)[1]:
        raise IntegrityError("content does not match its name (damaged)")
    return IndexFile.from_json(compression.decode(repo.cipher.open(stored, name), 1 << 31))


def _read_tail(repo: Repository, name: str, size: int) -> bytes:
    """The pack's header and trailer: one read for typical headers, two for huge ones."""
    n = header_read_size(size)
    tail = repo.backend.get(name, offset=size - n)
    hlen = int.from_bytes(tail[-_TRAILER_SIZE:], "little") if len(tail) >= _TRAILER_SIZE else 0
    need = hlen + _TRAILER_SIZE
    if n < need <= size:
        tail = repo.backend.get(name, offset=size - need)
    return tail


def _pack_of(index: Index, blob_id: bytes) -> str | None:
    found = index.lookup(blob_id)
    return found[0] if found else None


def _read_tree(repo: Repository, index: Index, tree_id: bytes) -> Tree:
    found = index.lookup(tree_id)
    if found is None:
        raise IntegrityError(f"tree {tree_id.hex()} is not in the index")
    pack_id, blob = found
    sealed = repo.backend.get(f"data/{pack_id}", blob.offset, blob.length)
    return Tree.from_bytes(repo.decode_blob(pack_id, blob, sealed))


def _walk_blob_users(repo: Repository, index: Index, tree_hex: str,
                     prefix: str = "") -> Iterator[tuple[bytes, str]]:
    """(blob id, path) for every blob a tree uses, tree blobs included.

    Unlike :meth:`Repository.iter_tree` this survives damaged trees: a tree that cannot
    be read is reported against the directory that holds it and its contents skipped.
    """
    tree_id = bytes.fromhex(tree_hex)
    yield tree_id, prefix or "/"
    try:
        tree = _read_tree(repo, index, tree_id)
    except (StrongboxError, ValueError, KeyError, TypeError):
        return
    for node in tree.nodes:
        path = f"{prefix}/{node.name}" if prefix else node.name
        for hex_id in node.content:
            yield bytes.fromhex(hex_id), path
        if node.type == "dir" and node.subtree:
            yield from _walk_blob_users(repo, index, node.subtree, path)
