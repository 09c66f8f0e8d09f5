"""Back up file trees into a repository.

The walk happens on the calling thread; each file's reading, chunking, hashing,
compression and sealing run on a small thread pool (BLAKE3, zstd and AES-GCM release the
GIL, so two cores are really used). Memory stays bounded whatever the file sizes: a file
is read as a stream through the chunker, and the number of files in flight is capped.

A file whose size, mtime and inode match the parent snapshot's entry is not read at all:
its chunk list is reused, which is what makes a no-change backup cost little more than a
directory walk.
"""

from __future__ import annotations

import os
import stat
import threading
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from strongbox.errors import InvalidRequest, SourceError
from strongbox.progress import NullProgress, Progress
from strongbox.repository.pack import BlobType
from strongbox.repository.repository import Repository
from strongbox.repository.snapshot import Snapshot
from strongbox.repository.tree import Node, Tree
from strongbox.sources.files.patterns import PathFilter

PIPELINE_MIN_SIZE = 8 * 1024 * 1024


@dataclass
class BackupSummary:
    files_new: int = 0
    files_changed: int = 0
    files_unmodified: int = 0
    dirs: int = 0
    bytes_processed: int = 0
    bytes_total: int = 0
    errors: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


class _FileJob:
    """Read one file through the chunker and store its chunks.

    Chunking and hashing happen on the file's own thread; for large files, compressing and
    sealing each chunk is handed to a shared saver pool so that one big file keeps both
    cores busy instead of one. At most ``inflight`` chunks wait for a saver, which bounds
    memory to that many chunks whatever the file size.
    """

    def __init__(self, repo: Repository, progress: Progress, savers: ThreadPoolExecutor,
                 inflight: int) -> None:
        self.repo = repo
        self.progress = progress
        self._local = threading.local()
        self._savers = savers
        self._slots = threading.BoundedSemaphore(inflight)

    def _chunker(self):  # type: ignore[no-untyped-def]
        # FastCDC objects are not safe to share between threads.
        ch = getattr(self._local, "chunker", None)
        if ch is None:
            ch = self._local.chunker = self.repo.chunker()
        return ch

    def __call__(self, path: Path, size: int) -> list[str]:
        content: list[str] = []
        pending: list[Future[None]] = []
        pipelined = size >= PIPELINE_MIN_SIZE
        try:
            with open(path, "rb", buffering=0) as fh:
                for chunk in self._chunker().cut_stream(fh):
                    self.progress.check_cancelled()
                    if not pipelined:
                        blob_id, _ = self.repo.save_blob(BlobType.DATA, chunk.data)
                        self.progress.advance(nbytes=chunk.length)
                    else:
                        # A copy: the chunker reuses its buffer for the next chunk.
                        data = bytes(chunk.data)
                        blob_id = self.repo.blob_id(data)
                        self._slots.acquire()
                        pending.append(self._savers.submit(self._save, data, blob_id))
                    content.append(blob_id.hex())
        finally:
            for fut in pending:
                fut.result()  # wait for all, and raise the first saver error
        return content

    def _save(self, data: bytes, blob_id: bytes) -> None:
        try:
            self.repo.save_blob(BlobType.DATA, data, blob_id)
            self.progress.advance(nbytes=len(data))
        finally:
            self._slots.release()


class Archiver:
    def __init__(self, repo: Repository, *, path_filter: PathFilter | None = None,
                 progress: Progress | None = None, workers: int | None = None) -> None:
        self.repo = repo
        self.filter = path_filter or PathFilter()
        self.progress = progress or NullProgress()
        self.workers = workers or min(4, (os.cpu_count() or 2))
        self.summary = BackupSummary()
        self._hardlinks: dict[tuple[int, int], str] = {}
        self._slots = threading.BoundedSemaphore(self.workers * 4)
        self._savers = ThreadPoolExecutor(self.workers, thread_name_prefix="saver")
        self._job = _FileJob(repo, self.progress, self._savers, inflight=self.workers * 2)
        self._count_lock = threading.Lock()

    def backup(self, paths: Sequence[str | os.PathLike[str]], *, tags: Sequence[str] = (),
               parent: Snapshot | None = None) -> Snapshot:
        roots = [Path(p).absolute() for p in paths]
        self._check_roots(roots)
        self.progress.start("backing up files")
        parent_tree = self.repo.load_tree(parent.tree) if parent else None
        stats_before = dict(self.repo.stats)
        with self._savers, ThreadPoolExecutor(self.workers,
                                              thread_name_prefix="archiver") as pool:
            self._pool = pool
            nodes = []
            for root in roots:
                pnode = parent_tree.get(root.name) if parent_tree else None
                entry = self._entry(root, root.name, root.lstat(), pnode)
                node = self._resolve(entry, "") if entry is not None else None
                if node is not None:
                    nodes.append(node)
            root_tree = self.repo.save_tree(Tree(nodes))
        summary = self.summary.to_dict()
        summary.update({k: v - stats_before[k] for k, v in self.repo.stats.items()})
        snap = Snapshot(tree=root_tree, paths=[str(r) for r in roots], tags=list(tags),
                        parent=parent.id if parent else None, kind="files", summary=summary)
        self.repo.save_snapshot(snap)
        return snap

    @staticmethod
    def _check_roots(roots: list[Path]) -> None:
        if not roots:
            raise InvalidRequest("nothing to back up: give at least one path")
        names = [r.name for r in roots]
        if len(set(names)) != len(names):
            raise InvalidRequest("paths to back up must have distinct final names")
        for r in roots:
            if not r.exists() and not r.is_symlink():
                raise SourceError(f"{r}: no such file or directory")

    # --- one entry ------------------------------------------------------------------------

    def _entry(self, path: Path, rel: str, st: os.stat_result,
               parent: Node | None) -> Node | Future[Node] | None:
        self.progress.check_cancelled()
        node = Node(name=path.name, type="", mode=stat.S_IMODE(st.st_mode),
                    mtime_ns=st.st_mtime_ns, uid=st.st_uid, gid=st.st_gid,
                    inode=st.st_ino, device=st.st_dev)
        if stat.S_ISDIR(st.st_mode):
            return self._directory(path, rel, node, parent)
        if stat.S_ISLNK(st.st_mode):
            node.type = "symlink"
            node.link_target = os.readlink(path)
            return node
        if stat.S_ISREG(st.st_mode):
            return self._file(path, rel, st, node, parent)
        self.summary.errors.append(f"{rel}: skipped (not a file, folder or symlink)")
        return None

    def _directory(self, path: Path, rel: str, node: Node, parent: Node | None) -> Node:
        node.type = "dir"
        parent_tree = None
        if parent is not None and parent.type == "dir" and parent.subtree:
            parent_tree = self.repo.load_tree(parent.subtree)
        children: list[Node | Future[Node]] = []
        try:
            entries = sorted(os.scandir(path), key=lambda e: e.name)
        except OSError as exc:
            self.summary.errors.append(f"{rel}: cannot list ({exc.strerror})")
            entries = []
        for entry in entries:
            child_rel = f"{rel}/{entry.name}"
            if self.filter.excludes(child_rel):
                continue
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError as exc:
                self.summary.errors.append(f"{child_rel}: cannot stat ({exc.strerror})")
                continue
            if not stat.S_ISDIR(st.st_mode) and not self.filter.includes_file(child_rel):
                continue
            pnode = parent_tree.get(entry.name) if parent_tree else None
            child = self._entry(Path(entry.path), child_rel, st, pnode)
            if child is not None:
                children.append(child)
        nodes = [self._resolve(c, rel) for c in children]
        node.subtree = self.repo.save_tree(Tree([n for n in nodes if n is not None]))
        self.summary.dirs += 1
        return node

    def _resolve(self, child: Node | Future[Node], rel: str) -> Node | None:
        if isinstance(child, Node):
            return child
        try:
            return child.result()
        except OSError as exc:
            # The file vanished or became unreadable mid-backup: record and go on, as a
            # backup of everything else is worth more than none.
            self.summary.errors.append(f"{rel}/{exc.filename or '?'}: {exc.strerror}")
            return None

    def _file(self, path: Path, rel: str, st: os.stat_result, node: Node,
              parent: Node | None) -> Node | Future[Node]:
        node.type = "file"
        node.size = st.st_size
        self.summary.bytes_total += st.st_size
        if st.st_nlink > 1:
            first = self._hardlinks.setdefault((st.st_dev, st.st_ino), rel)
            if first != rel:
                node.type = "hardlink"
                node.link_target = first
        if (parent is not None and parent.type in ("file", "hardlink")
                and parent.size == st.st_size and parent.mtime_ns == st.st_mtime_ns
                and parent.inode == st.st_ino):
            node.content = list(parent.content)
            self.summary.files_unmodified += 1
            self.progress.advance(items=1, nbytes=st.st_size)
            return node
        if parent is None:
            self.summary.files_new += 1
        else:
            self.summary.files_changed += 1
        self._slots.acquire()
        return self._pool.submit(self._read_file, path, node)

    def _read_file(self, path: Path, node: Node) -> Node:
        try:
            node.content = self._job(path, node.size)
            with self._count_lock:
                self.summary.bytes_processed += node.size
            self.progress.advance(items=1)
            return node
        finally:
            self._slots.release()


def backup_files(repo: Repository, paths: Sequence[str | os.PathLike[str]], *,
                 include: Sequence[str] = (), exclude: Sequence[str] = (),
                 tags: Sequence[str] = (), parent: Snapshot | str | None = "auto",
                 progress: Progress | None = None) -> Snapshot:
    """Back up ``paths`` as one snapshot.

    ``parent="auto"`` picks the newest snapshot of the same paths, so unchanged files are
    not read again; pass None to force reading everything.
    """
    if parent == "auto":
        wanted = sorted(str(Path(p).absolute()) for p in paths)
        same = [s for s in repo.list_snapshots() if sorted(s.paths) == wanted]
        parent = same[-1] if same else None
    archiver = Archiver(repo, path_filter=PathFilter(tuple(include), tuple(exclude)),
                        progress=progress)
    return archiver.backup(paths, tags=tags, parent=parent if isinstance(parent, Snapshot)
                           else None)
