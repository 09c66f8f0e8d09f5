"""Prune: remove data no snapshot needs any more, and repack mostly-empty packs.

A pack is immutable, so space is won back pack by pack. Every blob reachable from a
snapshot is *used*; each used blob gets one *home* pack (a duplicate copy elsewhere is
not needed). Then each pack is:

- **kept** when it holds nothing but needed blobs, or when the needed blobs still make up
  at least ``repack_threshold`` of its bytes (rewriting it would cost more than it frees);
- **repacked** when needed blobs are less than ``repack_threshold`` of its bytes: they are
  copied into new packs and the old one deleted;
- **deleted** when it holds no needed blob, or no index names it at all (a leftover of an
  interrupted backup: prune runs under the exclusive lock, so no backup is writing).

The order of the work is what makes a crash at any moment harmless:

1. copy the still-needed blobs of packs being repacked into new packs;
2. write ONE new index file naming every kept and every new pack, which ``supersedes``
   every index file there was;
3. delete the old index files;
4. delete the packs the new index no longer names.

Before step 2 the old index is the truth and the new packs are unindexed leftovers; from
step 2 on the new index is, and whatever is not yet deleted is unindexed garbage. Either
way every blob a snapshot needs is indexed and stored, and the next prune finishes the job.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any

from strongbox.errors import (
    IntegrityError,
    InvalidRequest,
    ObjectExists,
    ObjectNotFound,
    StrongboxError,
)
from strongbox.progress import Progress
from strongbox.repository.index import IndexFile
from strongbox.repository.lock import Lock
from strongbox.repository.pack import BlobType, PackedBlob, PackWriter
from strongbox.repository.repository import Repository


@dataclass
class PrunePlan:
    """What a prune would do; computing it changes nothing."""

    repack_threshold: float
    snapshots: int
    index_files: list[str]  # every index file now; the new one supersedes them all
    superseded_index_files: int  # left behind by an interrupted prune
    keep: dict[str, list[PackedBlob]]  # pack -> all its index entries, as they stay
    repack: dict[str, list[PackedBlob]]  # pack -> the needed entries to copy out
    delete: list[str]  # packs holding nothing needed (unindexed ones included)
    unindexed: list[str]  # packs no index names
    missing: list[str]  # indexed packs gone from storage, holding nothing needed
    pack_sizes: dict[str, int] = field(repr=False)
    blobs_used: int
    blobs_unused: int  # index entries not needed: unused blobs and duplicate copies

    @property
    def nothing_to_do(self) -> bool:
        return not (self.repack or self.delete or self.missing
                    or self.superseded_index_files)

    @property
    def bytes_total(self) -> int:
        return sum(self.pack_sizes.values())

    @property
    def bytes_to_delete(self) -> int:
        return sum(self.pack_sizes[p] for p in self.delete)

    @property
    def bytes_to_repack(self) -> int:
        return sum(self.pack_sizes[p] for p in self.repack)

    @property
    def bytes_repacked_kept(self) -> int:
        return sum(b.length for blobs in self.repack.values() for b in blobs)

    @property
    def bytes_freed_estimate(self) -> int:
        # Approximate: the new packs' headers add a few bytes per blob.
        return self.bytes_to_delete + self.bytes_to_repack - self.bytes_repacked_kept

    def to_dict(self) -> dict[str, Any]:
        return {
            "snapshots": self.snapshots,
            "repack_threshold": self.repack_threshold,
            "packs_total": len(self.pack_sizes),
            "packs_to_keep": len(self.keep),
            "packs_to_repack": len(self.repack),
            "packs_to_delete": len(self.delete),
            "packs_unindexed": len(self.unindexed),
            "packs_missing": len(self.missing),
            "index_files": len(self.index_files),
            "blobs_used": self.blobs_used,
            "blobs_unused": self.blobs_unused,
            "bytes_total": self.bytes_total,
            "bytes_to_delete": self.bytes_to_delete,
            "bytes_to_repack": self.bytes_to_repack,
            "bytes_freed_estimate": self.bytes_freed_estimate,
        }


@dataclass
class PruneResult:
    plan: PrunePlan
    dry_run: bool
    bytes_before: int  # pack and index files, measured on storage
    bytes_after: int
    packs_written: int = 0
    packs_deleted: int = 0
    index_files_deleted: int = 0

    @property
    def bytes_freed(self) -> int:
        return self.bytes_before - self.bytes_after

    def to_dict(self) -> dict[str, Any]:
        # Flat, so the CLI can print it line by line and --json stays easy to query.
        return {
            "dry_run": self.dry_run,
            **self.plan.to_dict(),
            "packs_written": self.packs_written,
            "packs_deleted": self.packs_deleted,
            "index_files_deleted": self.index_files_deleted,
            "bytes_before": self.bytes_before,
            "bytes_after": self.bytes_after,
            "bytes_freed": self.bytes_freed,
        }


def prune(repo: Repository, *, dry_run: bool = False, repack_threshold: float = 0.5,
          progress: Progress | None = None) -> PruneResult:
    """Plan and (unless ``dry_run``) carry out a prune under the exclusive lock.

    The lock is exclusive even for a dry run: a running backup's fresh packs are not yet
    indexed, and counting them as garbage would make the plan wrong.
    """
    with Lock(repo.backend, exclusive=True).acquire():
        plan = plan_prune(repo, repack_threshold=repack_threshold, progress=progress)
        if dry_run:
            size = _stored_bytes(repo)
            return PruneResult(plan, True, size, size - plan.bytes_freed_estimate)
        return execute_prune(repo, plan, progress=progress)


# --- planning ------------------------------------------------------------------------------


def plan_prune(repo: Repository, *, repack_threshold: float = 0.5,
               progress: Progress | None = None) -> PrunePlan:
    """Decide what to keep, repack and delete. The caller holds the exclusive lock."""
    if not 0.0 <= repack_threshold <= 1.0:
        raise InvalidRequest("repack threshold must be between 0 and 1")
    progress = progress or Progress()
    progress.operation("prune: reading index")
    # Anything this process wrote but did not index yet would otherwise look unused.
    repo.flush()
    files = repo.read_index_files()
    superseded = {s for f in files.values() for s in f.supersedes}
    indexed = _live_packs(files, superseded)
    repo.load_index()
    stored = {obj.name.split("/", 1)[1]: obj.size for obj in repo.backend.list("data")}

    progress.operation("prune: finding used blobs")
    snapshot_ids = repo.snapshot_ids()
    used = _used_blobs(repo, snapshot_ids, progress)

    present = {p: blobs for p, blobs in indexed.items() if p in stored}
    home = _choose_homes(present, used, stored)
    lost = used - home.keys()
    if lost:
        example = min(lost).hex()
        raise IntegrityError(
            f"prune stopped, nothing was changed: {len(lost)} blobs that snapshots need are "
            f"in no stored pack (for example {example}); run `strongbox repo check`",
            details=sorted(b.hex() for b in lost))

    plan = PrunePlan(
        repack_threshold=repack_threshold, snapshots=len(snapshot_ids),
        index_files=sorted(files), superseded_index_files=len(superseded & files.keys()),
        keep={}, repack={}, delete=[], unindexed=sorted(stored.keys() - indexed.keys()),
        missing=sorted(indexed.keys() - stored.keys()), pack_sizes=stored,
        blobs_used=len(used), blobs_unused=0)
    plan.delete.extend(plan.unindexed)
    for pack_id, blobs in sorted(present.items()):
        _classify(plan, pack_id, blobs, home)
    return plan


def _live_packs(files: dict[str, IndexFile],
                superseded: set[str]) -> dict[str, list[PackedBlob]]:
    """Every pack the live index files name, with all their entries (duplicates kept:
    the header lists them, and the new index must match the header)."""
    packs: dict[str, dict[PackedBlob, None]] = {}
    for name, index_file in files.items():
        if name in superseded:
            continue
        for pack_id, blobs in index_file.packs.items():
            packs.setdefault(pack_id, {}).update(dict.fromkeys(blobs))
    return {p: list(blobs) for p, blobs in packs.items()}


def _used_blobs(repo: Repository, snapshot_ids: list[str], progress: Progress) -> set[bytes]:
    """Every tree and data blob reachable from any snapshot.

    A snapshot or tree that cannot be read stops the prune: what it references is
    unknown, so any blob might be needed by it.
    """
    used: set[bytes] = set()
    for snapshot_id in snapshot_ids:
        progress.check_cancelled()
        try:
            todo = [repo.load_snapshot(snapshot_id).tree]
            while todo:
                tree_hex = todo.pop()
                tree_id = bytes.fromhex(tree_hex)
                if tree_id in used:
                    continue  # shared subtree, already walked
                used.add(tree_id)
                for node in repo.load_tree(tree_hex).nodes:
                    used.update(bytes.fromhex(h) for h in node.content)
                    if node.type == "dir" and node.subtree:
                        todo.append(node.subtree)
        except (StrongboxError, KeyError, TypeError, ValueError) as exc:
            raise IntegrityError(
                f"prune stopped, nothing was changed: snapshot {snapshot_id[:8]} cannot be "
                f"read completely ({exc}); run `strongbox repo check`") from exc
    return used


def _choose_homes(present: dict[str, list[PackedBlob]], used: set[bytes],
                  sizes: dict[str, int]) -> dict[bytes, str]:
    """One pack per used blob. Fuller packs are preferred, so a duplicate in a pack that
    will be kept anyway wins over a copy in one that is to be emptied."""
    def share(pack_id: str) -> float:
        used_bytes = sum(b.length for b in present[pack_id] if b.blob_id in used)
        return used_bytes / max(sizes[pack_id], 1)

    home: dict[bytes, str] = {}
    for pack_id in sorted(present, key=lambda p: (-share(p), p)):
        for blob in present[pack_id]:
            if blob.blob_id in used:
                home.setdefault(blob.blob_id, pack_id)
    return home


def _classify(plan: PrunePlan, pack_id: str, blobs: list[PackedBlob],
              home: dict[bytes, str]) -> None:
    needed = list({b.blob_id: b for b in blobs if home.get(b.blob_id) == pack_id}.values())
    plan.blobs_unused += len(blobs) - len(needed)
    needed_share = sum(b.length for b in needed) / max(plan.pack_sizes[pack_id], 1)
    if not needed:
        plan.delete.append(pack_id)
    elif len(needed) < len(blobs) and needed_share < plan.repack_threshold:
        plan.repack[pack_id] = needed
    else:
        # Fully needed, or needed enough that rewriting it would cost more than it frees.
        plan.keep[pack_id] = blobs


# --- execution -----------------------------------------------------------------------------


def execute_prune(repo: Repository, plan: PrunePlan, *,
                  progress: Progress | None = None) -> PruneResult:
    """Carry out ``plan`` in the crash-safe order. The caller holds the exclusive lock."""
    progress = progress or Progress()
    before = _stored_bytes(repo)
    result = PruneResult(plan, False, before, before)
    if plan.nothing_to_do:
        return result
    doomed = [*plan.repack, *plan.delete]
    # Repacked packs count twice: once read and copied, once deleted.
    progress.start("prune: repacking", items_total=len(plan.repack) + len(doomed),
                   bytes_total=2 * plan.bytes_to_repack + plan.bytes_to_delete)
    new_packs = _repack(repo, plan, progress)
    result.packs_written = len(new_packs)
    progress.check_cancelled()  # last point where stopping leaves nothing to clean up

    progress.operation("prune: writing index")
    repo.save_index(IndexFile(packs={**plan.keep, **new_packs},
                              supersedes=list(plan.index_files)))
    # From here on the new index is the truth; what follows only removes what it no
    # longer names, so it is not interrupted for cancellation.
    progress.operation("prune: deleting old index files")
    for name in plan.index_files:
        result.index_files_deleted += _delete(repo, f"index/{name}")

    progress.operation("prune: deleting packs")
    for pack_id in doomed:
        # A repacked pack can come out byte-identical to a leftover of an earlier,
        # interrupted prune (unencrypted repositories are deterministic): that leftover
        # is now the new pack and must stay.
        if pack_id not in new_packs:
            result.packs_deleted += _delete(repo, f"data/{pack_id}")
        progress.advance(items=1, nbytes=plan.pack_sizes[pack_id])
    repo.load_index()
    result.bytes_after = _stored_bytes(repo)
    return result


def _repack(repo: Repository, plan: PrunePlan,
            progress: Progress) -> dict[str, list[PackedBlob]]:
    """Copy the needed blobs out of the packs being repacked; return the new packs.

    If this stops early (cancelled, or a needed blob is damaged) the packs it created are
    removed again: the old index is still the truth and nothing refers to them.
    """
    packer = _Repacker(repo)
    try:
        for pack_id, blobs in plan.repack.items():
            progress.check_cancelled()
            data = repo.backend.get(f"data/{pack_id}")
            for blob in blobs:
                packer.add(pack_id, blob, data[blob.offset:blob.offset + blob.length])
            progress.advance(items=1, nbytes=plan.pack_sizes[pack_id])
        return packer.finish()
    except BaseException:
        packer.discard()
        raise


class _Repacker:
    """Builds new packs directly with PackWriter: Repository.save_blob would skip every
    blob, since the index already has each of them (in the pack being emptied)."""

    def __init__(self, repo: Repository) -> None:
        self.repo = repo
        self.writers: dict[BlobType, PackWriter] = {}
        self.written: dict[str, list[PackedBlob]] = {}
        self.created: list[str] = []  # only these are ours to remove again

    def add(self, pack_id: str, blob: PackedBlob, sealed: bytes) -> None:
        # Verify before copying so damage is never carried into a new pack. The sealed
        # bytes are copied as they are: a blob's seal does not depend on its pack.
        try:
            self.repo.decode_blob(pack_id, blob, sealed)
        except IntegrityError as exc:
            raise IntegrityError(f"prune stopped before changing the index: {exc}; "
                                 "run `strongbox repo check --read-data`") from exc
        writer = self.writers.setdefault(blob.type, PackWriter(self.repo.cipher))
        writer.add(blob.blob_id, blob.type, sealed, blob.raw_length)
        if writer.size >= self.repo.config.pack_size:
            self._store(self.writers.pop(blob.type))

    def finish(self) -> dict[str, list[PackedBlob]]:
        for writer in self.writers.values():
            if len(writer):
                self._store(writer)
        self.writers.clear()
        return self.written

    def _store(self, writer: PackWriter) -> None:
        pack_id, data = writer.finish()
        try:
            self.repo.backend.create(f"data/{pack_id}", data)
            self.created.append(pack_id)
        except ObjectExists:
            pass  # the same bytes are already stored under this name
        self.written[pack_id] = writer.blobs

    def discard(self) -> None:
        for pack_id in self.created:
            with contextlib.suppress(Exception):
                self.repo.backend.delete(f"data/{pack_id}")


def _delete(repo: Repository, name: str) -> int:
    """Delete one object; an interrupted earlier prune may have deleted it already."""
    try:
        repo.backend.delete(name)
    except ObjectNotFound:
        return 0
    return 1


def _stored_bytes(repo: Repository) -> int:
    return sum(obj.size for folder in ("data", "index") for obj in repo.backend.list(folder))
