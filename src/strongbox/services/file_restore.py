"""Restore a file-tree backup into a directory: plan, stage, then swap into place.

Used by the restore job for sources of kind ``files`` (seed 000 section 2 for file trees):

* **plan** (:func:`plan_file_restore`): walk the backup's tree with the selection
  (sub-paths, include and exclude globs) and compare every entry with the target
  directory: ``create`` (nothing there), ``unchanged`` (the same content is there:
  nothing to do), or a conflict resolved by ``on_conflict`` -- ``skip`` (keep the
  existing entry), ``overwrite`` (replace it) or ``rename`` (keep it and write the
  restored entry beside it with the name suffix: ``report.txt`` -> ``report_restored.txt``).
  A full restore replaces the directory as a whole: entries of the target that the backup
  does not have are ``delete``. A dry run is the plan alone; a real run computes the same
  plan and carries it out, which is why the dry run predicts it exactly.
* **stage**: the files to write are restored (chunks verified against their ids, safe
  names, no writes through symlinks: :mod:`strongbox.sources.files.restorer`) into a
  private staging folder inside the target (same file system, so moves are renames).
  A cancel or an error up to here leaves the target as it was: the staging folder is
  removed.
* **swap**: a safety snapshot of the target is taken when anything will be replaced or
  deleted; then every planned change is a rename, written to a journal first, with what
  it replaces moved aside into the staging folder. An error or a cancel during the swap
  undoes the journal in reverse, so the target is never left half-restored; a server
  killed mid-swap is undone the same way when the job is marked interrupted at restart
  (:func:`recover`).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from strongbox.errors import InvalidRequest, SourceError, StrongboxError, UnsafePath
from strongbox.progress import NullProgress, Progress
from strongbox.repository.repository import Repository
from strongbox.repository.snapshot import Snapshot
from strongbox.repository.tree import Node
from strongbox.sources.files.archiver import backup_files
from strongbox.sources.files.patterns import PathFilter
from strongbox.sources.files.restorer import Restorer

STAGING_PREFIX = ".strongbox-restore-"
JOURNAL = "journal.jsonl"
REPLACED = "replaced"
STAGED = "staged"
RESOLUTIONS = ("skip", "overwrite", "rename")
WRITES = ("create", "overwrite", "rename")  # actions that put a restored entry in place


class FileRestoreConflict(StrongboxError):
    """The target changed between the plan and the swap (something appeared)."""

    code = "RESTORE_CONFLICT"
    http_status = 409


@dataclass(frozen=True)
class FileRestoreSpec:
    mode: str  # full | selective | merge
    target: str  # absolute, resolved path of the target directory
    paths: tuple[str, ...] = ()  # sub-paths of the backup, relative to its root folder
    include: tuple[str, ...] = ()  # globs a file must match (relative path or base name)
    exclude: tuple[str, ...] = ()  # globs that leave files and folders out
    on_conflict: str = "skip"
    suffix: str = "_restored"
    dry_run: bool = False
    # The source's own include/exclude patterns: what its backups never hold (caches, temp
    # files), which a full restore therefore leaves in place instead of deleting.
    source_include: tuple[str, ...] = ()
    source_exclude: tuple[str, ...] = ()


@dataclass
class FileAction:
    """What happens to one entry. ``path`` is relative to the backup's root folder;
    ``dest`` (relative to the target) differs from it for renamed entries and their
    contents."""

    path: str
    kind: str  # file | dir | symlink | hardlink
    action: str  # create | overwrite | rename | skip | unchanged | delete | keep (dirs)
    size: int = 0
    dest: str = ""
    existing: str | None = None  # the kind of entry found at dest, for conflicts
    mode: int = 0
    mtime_ns: int = 0

    @property
    def conflict(self) -> bool:
        return self.existing is not None and self.action in ("overwrite", "rename", "skip")


@dataclass
class FilePlan:
    mode: str
    target: str
    root: str  # the name of the backup's root folder
    actions: list[FileAction] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # selected paths the backup lacks
    root_mode: int = 0
    root_mtime_ns: int = 0
    never_held: PathFilter = field(default_factory=PathFilter)  # the source's own patterns

    def count(self, action: str, *, dirs: bool = False) -> int:
        return sum(1 for a in self.actions
                   if a.action == action and (a.kind == "dir") == dirs)

    def writes(self) -> list[FileAction]:
        return [a for a in self.actions if a.action in WRITES]

    def staged(self) -> list[FileAction]:
        """The files the restore writes (a full restore rewrites unchanged ones too: the
        whole tree is swapped in)."""
        if self.mode == "full":
            return [a for a in self.actions if a.kind != "dir" and a.action != "delete"]
        return [a for a in self.writes() if a.kind != "dir"]

    def conflicts(self) -> list[FileAction]:
        return [a for a in self.actions if a.conflict]

    @property
    def destructive(self) -> bool:
        """Whether the restore replaces or deletes anything (a safety snapshot first)."""
        return any(a.action in ("overwrite", "delete") for a in self.actions)

    def totals(self) -> dict[str, int]:
        files = [a for a in self.actions if a.kind != "dir"]
        return {
            "created": sum(1 for a in files if a.action == "create"),
            "overwritten": sum(1 for a in files if a.action == "overwrite"),
            "renamed": sum(1 for a in files if a.action == "rename"),
            "skipped": sum(1 for a in files if a.action == "skip"),
            "unchanged": sum(1 for a in files if a.action == "unchanged"),
            "deleted": sum(1 for a in files if a.action == "delete"),
            "dirs_created": sum(1 for a in self.actions
                                if a.kind == "dir" and a.action in WRITES),
            "dirs_deleted": self.count("delete", dirs=True),
            "conflicts": len(self.conflicts()),
            "bytes_to_write": sum(a.size for a in files if a.action in WRITES),
        }

    @property
    def restored(self) -> int:
        return sum(1 for a in self.actions if a.kind != "dir" and a.action in WRITES)

    @property
    def skipped(self) -> int:
        return sum(1 for a in self.actions
                   if a.kind != "dir" and a.action in ("skip", "unchanged"))


# --- planning ----------------------------------------------------------------------------


def root_node(repo: Repository, snapshot: Snapshot) -> Node:
    """The backup's one root folder (a files source backs up one directory)."""
    nodes = repo.load_tree(snapshot.tree).nodes
    if snapshot.kind not in ("files", "") or len(nodes) != 1 or nodes[0].type != "dir":
        raise InvalidRequest(f"snapshot {snapshot.short_id} is not the backup of one "
                             "directory: it cannot be restored into a directory")
    return nodes[0]


def walk(repo: Repository, node: Node, prefix: str = "") -> Iterator[tuple[str, Node]]:
    """(path relative to the root folder, node), folders before what they hold."""
    if not node.subtree:
        return
    for child in repo.load_tree(node.subtree).nodes:
        if not child.name or child.name in (".", "..") or "/" in child.name:
            raise InvalidRequest(f"unsafe entry name {child.name!r} in the backup")
        rel = f"{prefix}/{child.name}" if prefix else child.name
        yield rel, child
        if child.type == "dir":
            yield from walk(repo, child, rel)


def normalise_path(text: str) -> str:
    """A selection path as the plan compares it: relative, ``/``-separated, no ``..``."""
    parts = [p for p in text.replace("\\", "/").split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise InvalidRequest(f"path {text!r} must not contain '..'")
    return "/".join(parts)


def check_suffix(suffix: str) -> None:
    """The rename suffix becomes part of a file name: one name, nothing that is a path."""
    if not suffix or any(c in suffix for c in "/\\\0"):
        raise InvalidRequest(f"the name suffix {suffix!r} must be part of a file name: not "
                             "empty, no '/', '\\' or NUL")


def _under(rel: str, base: str) -> bool:
    return rel == base or rel.startswith(base + "/")


class Selection:
    """Which entries of the backup a restore takes."""

    def __init__(self, spec: FileRestoreSpec) -> None:
        self.paths = [normalise_path(p) for p in spec.paths]
        self.filter = PathFilter(tuple(spec.include), tuple(spec.exclude))
        self.has_include = bool(spec.include)

    def excluded(self, rel: str) -> bool:
        return self.filter.excludes(rel)

    def takes(self, rel: str, node: Node) -> bool:
        """Whether the entry itself is taken (folders: as a whole, empty ones too)."""
        if self.paths and not any(_under(rel, p) for p in self.paths):
            return False
        if node.type == "dir":
            return not self.has_include
        return self.filter.includes_file(rel)

    def may_hold(self, rel: str) -> bool:
        """Whether a folder may hold taken entries (to prune the walk)."""
        return not self.paths or any(_under(rel, p) or _under(p, rel) for p in self.paths)


def _kind_of(st: os.stat_result) -> str:
    if stat.S_ISDIR(st.st_mode):
        return "dir"
    if stat.S_ISLNK(st.st_mode):
        return "symlink"
    return "file"


def same_content(repo: Repository, path: Path, node: Node) -> bool:
    """Whether the entry at ``path`` already holds exactly what ``node`` would restore:
    the same link target, or the same bytes (chunked and hashed as a backup would, so no
    data is read from the repository)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return False
    if node.type == "symlink":
        return stat.S_ISLNK(st.st_mode) and os.readlink(path) == (node.link_target or "")
    if not stat.S_ISREG(st.st_mode) or st.st_size != node.size:
        return False
    ids = []
    with open(path, "rb", buffering=0) as fh:
        for chunk in repo.chunker().cut_stream(fh):
            ids.append(repo.blob_id(chunk.data).hex())
    return ids == list(node.content)


def renamed(rel: str, suffix: str, taken: set[str], target: Path) -> str:
    """``dir/name_restored.ext`` (numbered ``_2``, ``_3``... when that is taken too)."""
    head, _, name = rel.rpartition("/")
    dot = name.rfind(".")
    stem, ext = (name[:dot], name[dot:]) if dot > 0 else (name, "")
    number = 1
    while True:
        candidate = f"{stem}{suffix}{'' if number == 1 else f'_{number}'}{ext}"
        full = f"{head}/{candidate}" if head else candidate
        if full not in taken and not os.path.lexists(target / full):
            return full
        number += 1


def plan_file_restore(repo: Repository, snapshot: Snapshot, spec: FileRestoreSpec,
                      progress: Progress | None = None) -> FilePlan:
    """What restoring ``snapshot`` into ``spec.target`` does, entry by entry; reads the
    target, writes nothing."""
    try:
        return _plan(repo, snapshot, spec, progress or NullProgress())
    except OSError as exc:  # an unreadable target entry: a clear error, not a crash
        raise SourceError(f"cannot read the target {exc.filename or spec.target}: "
                          f"{exc.strerror}", details={"target": spec.target}) from exc


def _plan(repo: Repository, snapshot: Snapshot, spec: FileRestoreSpec,
          progress: Progress) -> FilePlan:
    if spec.on_conflict not in RESOLUTIONS:
        raise InvalidRequest(f"on_conflict must be one of {', '.join(RESOLUTIONS)} for a "
                             "file tree")
    check_suffix(spec.suffix)
    root = root_node(repo, snapshot)
    target = Path(spec.target)
    plan = FilePlan(spec.mode, spec.target, root.name, root_mode=root.mode,
                    root_mtime_ns=root.mtime_ns,
                    never_held=PathFilter(spec.source_include, spec.source_exclude))
    selection = Selection(spec)
    entries = _selected_entries(repo, root, selection, plan)
    taken: set[str] = set()  # destinations already planned (for rename numbering)
    moved: dict[str, str] = {}  # folder path -> where its content goes (renamed folder)
    dropped: set[str] = set()  # folders skipped: their content is skipped too
    fresh: set[str] = set()  # folders the restore creates: their content is all new
    for rel, node in entries:
        progress.check_cancelled()
        parent = rel.rpartition("/")[0]
        if parent in dropped:
            if node.type == "dir":
                dropped.add(rel)
            plan.actions.append(_action(rel, node, "skip", rel))
            continue
        base = moved.get(parent, parent)
        dest = f"{base}/{node.name}" if base else node.name
        if parent in fresh:
            # Not looked up in the target: what is there now (a symlink being replaced,
            # say) is not where this entry goes, and a lookup would follow the link.
            action = _action(rel, node, "create", dest)
        else:
            action = _decide(repo, target, rel, dest, node, spec, taken)
        if node.type == "dir":
            if action.action == "skip":
                dropped.add(rel)
            elif action.dest != rel:
                moved[rel] = action.dest
            if action.action in WRITES:
                fresh.add(rel)
        taken.add(action.dest)
        plan.actions.append(action)
    if spec.mode == "full":
        _plan_deletions(target, {rel for rel, _ in entries}, plan)
    return plan


def _selected_entries(repo: Repository, root: Node, selection: Selection,
                      plan: FilePlan) -> list[tuple[str, Node]]:
    """The taken entries and the folders that lead to them, in walk order."""
    found: list[tuple[str, Node]] = []
    taken: set[str] = set()
    seen: set[str] = set()
    skip_below: list[str] = []
    for rel, node in walk(repo, root):
        if skip_below and _under(rel, skip_below[-1]):
            continue
        if node.type == "dir" and (selection.excluded(rel) or not selection.may_hold(rel)):
            skip_below.append(rel)
            continue
        seen.add(rel)
        found.append((rel, node))
        if selection.takes(rel, node):
            taken.add(rel)
    for path in selection.paths:
        if path and path not in seen:
            plan.missing.append(path)
            plan.warnings.append(f"{path}: not in the backup (or excluded)")
    needed: set[str] = set()
    for rel in taken:
        parts = rel.split("/")
        needed.update("/".join(parts[:i]) for i in range(1, len(parts) + 1))
    return [(rel, node) for rel, node in found if rel in needed]


def _action(rel: str, node: Node, action: str, dest: str,
            existing: str | None = None) -> FileAction:
    size = node.size if node.type in ("file", "hardlink") else 0
    return FileAction(rel, node.type, action, size, dest, existing, node.mode, node.mtime_ns)


def _decide(repo: Repository, target: Path, rel: str, dest: str, node: Node,
            spec: FileRestoreSpec, taken: set[str]) -> FileAction:
    path = target / dest
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return _action(rel, node, "create", dest)
    except NotADirectoryError:
        return _action(rel, node, "create", dest)  # under a folder being replaced
    existing = _kind_of(st)
    if node.type == "dir" and existing == "dir":
        return _action(rel, node, "keep", dest)  # restore into the folder that is there
    if node.type != "dir" and existing != "dir" and same_content(repo, path, node):
        return _action(rel, node, "unchanged", dest)
    how = "overwrite" if spec.mode == "full" else spec.on_conflict
    if how == "rename":
        return _action(rel, node, "rename", renamed(dest, spec.suffix, taken, target),
                       existing)
    return _action(rel, node, how, dest, existing)


def _plan_deletions(target: Path, kept: set[str], plan: FilePlan) -> None:
    """Full mode: what the target holds that the backup does not (deepest first), except
    what the source's patterns keep out of every backup (matched as the archiver does,
    on ``<root folder>/<path>`` and the base name)."""
    if not target.is_dir():
        return
    found: list[FileAction] = []
    for folder, dirs, files in os.walk(target):
        rel_folder = os.path.relpath(folder, target)
        prefix = "" if rel_folder == "." else rel_folder.replace(os.sep, "/") + "/"
        if not prefix:
            dirs[:] = [d for d in dirs if not d.startswith(STAGING_PREFIX)]
        for name in sorted(dirs) + sorted(files):
            rel = prefix + name
            if rel in kept:
                continue
            st = os.lstat(os.path.join(folder, name))
            kind = _kind_of(st)
            if _never_held(plan, rel, kind):
                continue  # never backed up: not the backup's to delete
            found.append(FileAction(rel, kind, "delete", st.st_size if kind == "file" else 0,
                                    rel, kind))
        dirs[:] = [d for d in dirs if prefix + d in kept]  # a deleted folder goes whole
    plan.actions.extend(found)


# --- carrying it out ---------------------------------------------------------------------


class _Forward(Progress):
    """The staging restorer's progress, counted into the job's (it must not reset the
    job's totals, which count only what this restore writes)."""

    def __init__(self, job: Progress) -> None:
        super().__init__()
        self.job = job

    def start(self, operation: str, *, items_total: int | None = None,
              bytes_total: int | None = None) -> None:
        self.job.operation(operation)

    def advance(self, *, items: int = 0, nbytes: int = 0) -> None:
        self.job.advance(items=items, nbytes=nbytes)

    def check_cancelled(self) -> None:
        self.job.check_cancelled()


@dataclass(frozen=True)
class _Exactly(PathFilter):
    """The restorer walks only these folders and writes only these entries (paths as
    the restorer sees them: starting with the root folder's name)."""

    files: frozenset[str] = frozenset()
    dirs: frozenset[str] = frozenset()

    def excludes(self, rel_path: str) -> bool:
        return rel_path not in self.files and rel_path not in self.dirs

    def includes_file(self, rel_path: str) -> bool:
        return rel_path in self.files


def staging_dir(target: str | Path, job_id: str) -> Path:
    return Path(target) / f"{STAGING_PREFIX}{job_id[:12]}"


@dataclass
class FileRestoreOutcome:
    plan: FilePlan
    safety_snapshot: str | None = None


def restore_file_tree(repo: Repository, snapshot: Snapshot, spec: FileRestoreSpec,
                      job_id: str, progress: Progress | None = None) -> FileRestoreOutcome:
    """Plan, and unless ``spec.dry_run`` stage and swap. The target is left as it was on
    any error or cancel."""
    progress = progress or NullProgress()
    progress.operation("planning")
    plan = plan_file_restore(repo, snapshot, spec, progress)
    files = plan.staged()
    progress.set_totals(items_total=len(files), bytes_total=sum(a.size for a in files))
    if spec.dry_run:
        return FileRestoreOutcome(plan)
    target = Path(spec.target)
    created = _make_target(target)
    work = staging_dir(target, job_id)
    owned = False  # a folder already at that name is not ours to undo or remove
    try:
        work.mkdir(mode=0o700)
        owned = True
        (work / REPLACED).mkdir()
        progress.operation("restoring files")
        _stage(repo, snapshot, plan, work / STAGED, progress)
        safety = None
        if plan.destructive and not created:
            progress.operation("safety backup")
            safety = backup_files(repo, [target], exclude=[f"{STAGING_PREFIX}*"],
                                  tags=["safety", f"restore-job={job_id}"]).id
        progress.check_cancelled()
        progress.operation("placing files")
        with open(work / JOURNAL, "a", encoding="utf-8") as journal:
            try:
                _swap(plan, target, work, journal, progress)
            except BaseException:
                journal.flush()
                raise
            journal.write(json.dumps({"op": "commit"}) + "\n")
            journal.flush()
            os.fsync(journal.fileno())
    except BaseException as exc:
        if owned:
            undo(work)
        for folder in reversed(created):
            with contextlib.suppress(OSError):
                folder.rmdir()
        if isinstance(exc, OSError):
            raise SourceError(f"the restore into {target} failed and was undone: "
                              f"{exc.strerror} ({exc.filename or target})",
                              details={"target": str(target)}) from exc
        raise
    shutil.rmtree(work, ignore_errors=True)
    return FileRestoreOutcome(plan, safety)


def _make_target(target: Path) -> list[Path]:
    """Create the target folder (and missing parents); returns what was created."""
    missing = []
    folder = target
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    if os.path.lexists(target) and not target.is_dir():
        raise InvalidRequest(f"{target} is not a directory")
    done: list[Path] = []
    try:
        for path in reversed(missing):
            path.mkdir()
            done.append(path)
    except OSError as exc:  # a parent that is a file, no permission: said, not a crash
        for path in reversed(done):
            with contextlib.suppress(OSError):
                path.rmdir()
        raise SourceError(f"cannot create the target {target}: {exc.strerror}",
                          details={"target": str(target)}) from exc
    return done


def _stage(repo: Repository, snapshot: Snapshot, plan: FilePlan, staged: Path,
           progress: Progress) -> None:
    root = plan.root
    if plan.mode == "full":
        path_filter: PathFilter = PathFilter()
    else:
        files = frozenset(f"{root}/{a.path}" for a in plan.writes() if a.kind != "dir")
        dirs = {root}
        for name in files:
            parts = name.split("/")
            dirs.update("/".join(parts[:i]) for i in range(1, len(parts)))
        dirs.update(f"{root}/{a.path}" for a in plan.writes() if a.kind == "dir")
        path_filter = _Exactly(files=files, dirs=frozenset(dirs))
    Restorer(repo, staged, path_filter=path_filter, progress=_Forward(progress)
             ).restore(snapshot)


class _Journal:
    """Every move written down before it is made, so it can be undone."""

    def __init__(self, out: TextIO) -> None:
        self.out = out

    def write(self, **entry: Any) -> None:
        self.out.write(json.dumps(entry) + "\n")
        self.out.flush()


def _swap(plan: FilePlan, target: Path, work: Path, out: TextIO, progress: Progress) -> None:
    journal = _Journal(out)
    staged = work / STAGED / plan.root
    replaced = work / REPLACED
    if plan.mode == "full":
        _swap_whole(plan, target, work, staged, replaced, journal, progress)
        return
    new_dirs: list[tuple[Path, FileAction]] = []
    real_target = os.path.realpath(target)
    safe: set[Path] = set()  # folders found inside the target (no symlink on the way)
    for number, action in enumerate(plan.actions):
        if number % 100 == 0:
            progress.check_cancelled()
        if action.action not in WRITES:
            continue
        dest = target / action.dest
        if dest.parent not in safe:
            # Checked again now, not only when planning: staging takes time, and a folder
            # replaced by a symlink meanwhile must not lead a move outside the target.
            real = os.path.realpath(dest.parent)
            if real != real_target and not real.startswith(real_target + os.sep):
                raise UnsafePath(f"{action.dest}: its folder now leads outside the target "
                                 "(a symlink appeared); the restore was undone",
                                 details={"path": action.dest})
            safe.add(dest.parent)
        if action.action == "overwrite":
            aside = replaced / str(number)
            journal.write(op="move", src=str(dest), dst=str(aside))
            os.rename(dest, aside)
        elif os.path.lexists(dest):
            raise FileRestoreConflict(f"{action.dest} appeared in the target while the "
                                      "restore ran; nothing was changed",
                                      details={"path": action.dest})
        if action.kind == "dir":
            journal.write(op="mkdir", path=str(dest))
            dest.mkdir()
            new_dirs.append((dest, action))
        else:
            journal.write(op="move", src=str(staged / action.path), dst=str(dest))
            os.rename(staged / action.path, dest)
    progress.check_cancelled()
    for path, action in reversed(new_dirs):  # folder times last: entries change them
        os.chmod(path, stat.S_IMODE(action.mode) or 0o755)
        os.utime(path, ns=(action.mtime_ns, action.mtime_ns))


def _never_held(plan: FilePlan, rel: str, kind: str) -> bool:
    """True for what the source's patterns keep out of every backup (matched as the
    archiver does: ``<root folder>/<path>`` and the base name)."""
    archived_as = f"{plan.root}/{rel}"
    return plan.never_held.excludes(archived_as) or (
        kind != "dir" and not plan.never_held.includes_file(archived_as))


def _keep_never_held(plan: FilePlan, target: Path, replaced: Path,
                     journal: _Journal) -> None:
    """Full mode, after the swap: what the source never backs up (caches, temp files)
    moves back from the set-aside tree, into folders the restored tree still has."""
    for folder, dirs, files in os.walk(replaced):
        rel_folder = os.path.relpath(folder, replaced)
        prefix = "" if rel_folder == "." else rel_folder.replace(os.sep, "/") + "/"
        back: list[str] = []
        for name in dirs + files:
            kind = _kind_of(os.lstat(os.path.join(folder, name)))
            if _never_held(plan, prefix + name, kind):
                back.append(name)
        dirs[:] = [d for d in dirs if d not in back]
        for name in back:
            dest = target / (prefix + name)
            if not dest.parent.is_dir() or dest.parent.is_symlink() or os.path.lexists(dest):
                continue  # its folder is gone from the restored tree, or the name is taken
            journal.write(op="move", src=str(Path(folder) / name), dst=str(dest))
            os.rename(Path(folder) / name, dest)


def _swap_whole(plan: FilePlan, target: Path, work: Path, staged: Path, replaced: Path,
                journal: _Journal, progress: Progress) -> None:
    """Full mode: everything the target holds moves aside, the staged tree moves in."""
    st = os.stat(target)
    journal.write(op="meta", path=str(target), mode=stat.S_IMODE(st.st_mode),
                  mtime_ns=st.st_mtime_ns)
    for name in sorted(os.listdir(target)):
        if name.startswith(STAGING_PREFIX):
            continue
        progress.check_cancelled()
        journal.write(op="move", src=str(target / name), dst=str(replaced / name))
        os.rename(target / name, replaced / name)
    for name in sorted(os.listdir(staged)):
        progress.check_cancelled()
        journal.write(op="move", src=str(staged / name), dst=str(target / name))
        os.rename(staged / name, target / name)
    _keep_never_held(plan, target, replaced, journal)
    progress.check_cancelled()
    os.chmod(target, stat.S_IMODE(plan.root_mode) or 0o755)
    os.utime(target, ns=(plan.root_mtime_ns, plan.root_mtime_ns))


def undo(work: Path) -> bool:
    """Undo an unfinished swap from its journal, then remove the staging folder.
    Returns True if there was one. A committed swap is only cleaned up."""
    if not work.is_dir():
        return False
    entries = []
    with contextlib.suppress(FileNotFoundError):
        for line in (work / JOURNAL).read_text(encoding="utf-8").splitlines():
            with contextlib.suppress(ValueError):
                entries.append(json.loads(line))
    if not any(e.get("op") == "commit" for e in entries):
        for entry in reversed(entries):
            if _in_target(entry, work.parent):
                _undo_one(entry)
    shutil.rmtree(work, ignore_errors=True)
    return True


def _in_target(entry: dict[str, Any], target: Path) -> bool:
    """Whether every path of a journal entry lies in the target (its folder, through no
    symlink): a swap records nothing else, so anything else is not carried out."""
    real = os.path.realpath(target)
    for key in ("src", "dst", "path"):
        path = entry.get(key)
        if path is None:
            continue
        if not isinstance(path, str):
            return False
        folder = os.path.realpath(os.path.dirname(os.path.normpath(path)))
        if os.path.normpath(path) != os.path.normpath(target) and not (
                folder == real or folder.startswith(real + os.sep)):
            return False
    return True


def _undo_one(entry: dict[str, Any]) -> None:
    op = entry.get("op")
    with contextlib.suppress(FileNotFoundError):
        if op == "move" and os.path.lexists(entry["dst"]):
            os.rename(entry["dst"], entry["src"])
        elif op == "mkdir":
            with contextlib.suppress(OSError):
                os.rmdir(entry["path"])
        elif op == "meta":
            os.chmod(entry["path"], entry["mode"])
            os.utime(entry["path"], ns=(entry["mtime_ns"], entry["mtime_ns"]))


def recover(target: str | Path, job_id: str) -> bool:
    """After a crash: undo the job's unfinished swap in ``target``, if there is one."""
    return undo(staging_dir(target, job_id))


def result_doc(outcome: FileRestoreOutcome, dry_run: bool) -> dict[str, Any]:
    """The job result in seed 000 ``RestoreJobStatus.results`` shape (files counted as
    documents) with a ``files`` block."""
    plan = outcome.plan
    return {
        "projects_restored": 0, "sessions_restored": 0, "messages_restored": 0,
        "prompts_restored": 0, "total_documents": plan.restored,
        "skipped_duplicates": plan.skipped, "failed_documents": 0, "id_mappings": {},
        "id_mappings_by_table": {}, "tables": {},
        "conflicts_count": len(plan.conflicts()), "warnings": list(plan.warnings),
        "safety_snapshot_id": outcome.safety_snapshot, "target_path": plan.target,
        "files": plan.totals(),
        "file_conflicts": [conflict_doc(a) for a in plan.conflicts()[:100]],
        "dry_run": dry_run,
    }


def conflict_doc(action: FileAction) -> dict[str, Any]:
    """A conflict in seed 000 ``ConflictInfo`` terms: the path (relative to the
    target) is the id and the existing name; ``backup_name`` is where the restored entry
    goes (the suffixed name for ``rename``)."""
    return {"type": "directory" if action.kind == "dir" else "file",
            "existing_id": action.path, "backup_id": action.path,
            "existing_name": action.path, "backup_name": action.dest,
            "resolution": action.action}
