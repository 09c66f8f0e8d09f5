"""Restore a snapshot (or part of it) into a target directory.

Safety first: every name in a tree is checked (no ``/``, ``..`` or empty names), every
destination must resolve inside the target, files are opened with ``O_NOFOLLOW`` and
symlinks are created last, so a hostile or damaged snapshot cannot make the restore write
outside the target through ``..``, absolute paths or a symlink planted earlier.

Each file is written to a temporary name beside its destination, every chunk is verified
against its id as it is read, and only a complete, verified file is renamed into place.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import secrets
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from strongbox.errors import InvalidRequest, UnsafePath
from strongbox.progress import NullProgress, Progress
from strongbox.repository.pack import BlobType
from strongbox.repository.repository import Repository
from strongbox.repository.snapshot import Snapshot
from strongbox.repository.tree import Node
from strongbox.sources.files.patterns import PathFilter

READ_AHEAD = 4


@dataclass
class RestoreSummary:
    files: int = 0
    dirs: int = 0
    symlinks: int = 0
    hardlinks: int = 0
    bytes_written: int = 0
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


def _check_name(name: str) -> None:
    if not name or name in (".", "..") or "/" in name or "\0" in name:
        raise UnsafePath(f"unsafe entry name {name!r} in snapshot: refusing to restore it")


class Restorer:
    def __init__(self, repo: Repository, target: str | os.PathLike[str], *,
                 path_filter: PathFilter | None = None, progress: Progress | None = None,
                 workers: int | None = None) -> None:
        self.repo = repo
        self.target = Path(target).absolute()
        self.filter = path_filter or PathFilter()
        self.progress = progress or NullProgress()
        self.workers = workers or min(4, (os.cpu_count() or 2))
        self.summary = RestoreSummary()
        self._restored: dict[str, Path] = {}  # snapshot-relative path → restored file
        self._real_target = ""
        self._real_parents: dict[Path, str] = {}
        # Reads chunks of large files ahead; decryption and decompression release the GIL.
        self._loaders = ThreadPoolExecutor(self.workers, thread_name_prefix="loader")

    def restore(self, snapshot: Snapshot, subpath: str | None = None) -> RestoreSummary:
        self.target.mkdir(parents=True, exist_ok=True)
        self._real_target = os.path.realpath(self.target)
        nodes, base = self._start_nodes(snapshot, subpath)
        total = snapshot.summary.get("bytes_total") if not subpath else None
        self.progress.start("restoring files", bytes_total=total)
        dirs: list[tuple[Path, Node]] = []
        links: list[tuple[Path, Node]] = []
        hardlinks: list[tuple[Path, Node, str]] = []
        with self._loaders, ThreadPoolExecutor(self.workers,
                                               thread_name_prefix="restorer") as pool:
            futures: list[Future[None]] = []
            for rel, node in self._walk(nodes, base):
                dest = self._destination(rel, base)
                if node.type == "dir":
                    self._mkdir(dest)
                    dirs.append((dest, node))
                elif node.type == "symlink":
                    links.append((dest, node))
                elif node.type == "hardlink" and node.link_target:
                    hardlinks.append((dest, node, rel))
                elif node.type == "file":
                    self._restored[rel] = dest
                    futures.append(pool.submit(self._write_file, dest, node))
            for fut in futures:
                fut.result()
        for dest, node, rel in hardlinks:
            self._hardlink(dest, node, rel)
        for dest, node in links:
            self._symlink(dest, node)
        # Folder times last, deepest first: writing into a folder changes its mtime.
        for dest, node in reversed(dirs):
            self._set_metadata(dest, node)
            self.summary.dirs += 1
        return self.summary

    def _start_nodes(self, snapshot: Snapshot, subpath: str | None) -> tuple[list[Node], str]:
        tree = self.repo.load_tree(snapshot.tree)
        if not subpath:
            return tree.nodes, ""
        parts = [p for p in subpath.strip("/").split("/") if p]
        node: Node | None = None
        for i, part in enumerate(parts):
            node = tree.get(part)
            if node is None:
                raise InvalidRequest(f"{subpath!r} is not in snapshot {snapshot.short_id}")
            if i < len(parts) - 1:
                if node.type != "dir" or not node.subtree:
                    raise InvalidRequest(f"{subpath!r} is not in snapshot {snapshot.short_id}")
                tree = self.repo.load_tree(node.subtree)
        assert node is not None
        return [node], "/".join(parts[:-1])

    def _walk(self, nodes: list[Node], prefix: str) -> Iterator[tuple[str, Node]]:
        for node in nodes:
            _check_name(node.name)
            rel = f"{prefix}/{node.name}" if prefix else node.name
            if self.filter.excludes(rel):
                continue
            if node.type == "dir":
                yield rel, node
                if node.subtree:
                    yield from self._walk(self.repo.load_tree(node.subtree).nodes, rel)
            elif self.filter.includes_file(rel):
                yield rel, node

    def _destination(self, rel: str, base: str) -> Path:
        local = rel[len(base) + 1:] if base else rel
        dest = self.target / local
        parent = self._real_parents.get(dest.parent)
        if parent is None:
            # Cached per folder: resolving costs an lstat per path component, and nothing
            # this restore creates before its symlinks (made last) can change the answer.
            parent = self._real_parents[dest.parent] = os.path.realpath(dest.parent)
        if parent != self._real_target and not parent.startswith(self._real_target + os.sep):
            raise UnsafePath(f"{rel}: would be written outside the target {self.target}")
        return dest

    def _mkdir(self, dest: Path) -> None:
        if dest.is_symlink():
            raise UnsafePath(f"{dest}: is a symlink; refusing to restore through it")
        dest.mkdir(exist_ok=True)

    def _write_file(self, dest: Path, node: Node) -> None:
        self.progress.check_cancelled()
        # A new file is written in place (O_EXCL: never through something that appeared
        # there) and removed if anything fails; an existing one is replaced only by a
        # complete, verified temporary file, so it is never left half-written.
        exists = os.path.lexists(dest)
        path = dest.with_name(f".{dest.name}.strongbox-{secrets.token_hex(4)}") if exists \
            else dest
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
        fd = os.open(path, flags, 0o600)
        try:
            with os.fdopen(fd, "wb") as fh:
                for data in self._chunks(node):
                    self.progress.check_cancelled()
                    fh.write(data)
                    self.progress.advance(nbytes=len(data))
                fh.flush()  # before setting times: a later flush would change the mtime
                self._set_metadata(fh.fileno(), node)
            if exists:
                os.replace(path, dest)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            raise
        self.summary.files += 1
        self.summary.bytes_written += node.size
        self.progress.advance(items=1)

    def _chunks(self, node: Node) -> Iterator[bytes]:
        """A file's chunks in order; a large file's are read ahead by the loader pool."""
        ids = [bytes.fromhex(h) for h in node.content]
        if len(ids) < 3:
            for blob_id in ids:
                yield self.repo.load_blob(BlobType.DATA, blob_id)
            return
        window: deque[Future[bytes]] = deque()
        pending = iter(ids)
        try:
            for blob_id in itertools.islice(pending, READ_AHEAD):
                window.append(self._loaders.submit(self.repo.load_blob, BlobType.DATA, blob_id))
            while window:
                data = window.popleft().result()
                nxt = next(pending, None)
                if nxt is not None:
                    window.append(self._loaders.submit(self.repo.load_blob, BlobType.DATA, nxt))
                yield data
        finally:
            for fut in window:
                fut.cancel()

    def _hardlink(self, dest: Path, node: Node, rel: str) -> None:
        first = self._restored.get(node.link_target or "")
        if first is None:
            # The first name was not selected for restore: write the content itself.
            node.type = "file"
            self._write_file(dest, node)
            return
        with contextlib.suppress(FileNotFoundError):
            dest.unlink()
        os.link(first, dest)
        self.summary.hardlinks += 1

    def _symlink(self, dest: Path, node: Node) -> None:
        if dest.is_symlink() or dest.is_file():
            dest.unlink()
        os.symlink(node.link_target or "", dest)
        with contextlib.suppress(OSError, NotImplementedError):
            os.utime(dest, ns=(node.mtime_ns, node.mtime_ns), follow_symlinks=False)
        self.summary.symlinks += 1

    def _set_metadata(self, target: Path | int, node: Node) -> None:
        """Owner, mode and times, on a path or an open file descriptor (fewer lookups)."""
        if os.geteuid() == 0:
            try:
                os.chown(target, node.uid, node.gid)
            except OSError as exc:
                self.summary.warnings.append(f"{target}: cannot set owner ({exc.strerror})")
        os.chmod(target, node.mode)
        os.utime(target, ns=(node.mtime_ns, node.mtime_ns))


def restore_files(repo: Repository, snapshot: Snapshot, target: str | os.PathLike[str], *,
                  subpath: str | None = None, include: Sequence[str] = (),
                  exclude: Sequence[str] = (), progress: Progress | None = None
                  ) -> RestoreSummary:
    restorer = Restorer(repo, target, path_filter=PathFilter(tuple(include), tuple(exclude)),
                        progress=progress)
    return restorer.restore(snapshot, subpath)
