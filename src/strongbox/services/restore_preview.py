"""What a backup holds and what restoring it would meet (seed 000 section 2.3).

Read from the snapshot itself: the seed's projects, sessions, messages and prompts where
the database has those tables, and every table's row count and key (the ``tables``
extension) whatever it holds. Conflicts are the backup's rows whose key already exists in
the source database: restoring them meets a row that is there (the default ``skip`` keeps
the existing one).
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from strongbox.errors import StrongboxError
from strongbox.repository.repository import Repository
from strongbox.repository.snapshot import Snapshot
from strongbox.services import file_restore
from strongbox.services.backups import BackupService, BackupView
from strongbox.services.restore import (
    CONFLICT_TYPES,
    ConflictView,
    RestoreService,
    duration_for,
)
from strongbox.services.sources import SourceService, SourceView
from strongbox.services.storage import RepositoryProvider
from strongbox.sources.sqlite.foreign_keys import quote_identifier
from strongbox.sources.sqlite.reader import SnapshotReader, TableInfo
from strongbox.sources.sqlite.restore_plan import RowShape, key_text, value_text

LISTED_CONFLICTS = 100  # conflicts listed unless ``detailed``
NAME_COLUMNS = ("name", "title")


@dataclass
class TablePreview:
    name: str
    rows: int
    columns: list[str]
    primary_key: list[str]
    existing_rows: int = 0  # backup rows whose key is in the target


@dataclass
class BackupPreview:
    backup: BackupView
    projects: list[dict[str, Any]] = field(default_factory=list)
    sessions_summary: dict[str, Any] = field(default_factory=dict)
    messages_summary: dict[str, Any] = field(default_factory=dict)
    prompts: list[dict[str, Any]] = field(default_factory=list)
    tables: list[TablePreview] = field(default_factory=list)
    can_restore: bool = False
    conflicts_count: int = 0
    conflicts: list[ConflictView] | None = None
    estimated_time_seconds: float = 0.0
    required_space_bytes: int = 0
    recommendations: list[str] = field(default_factory=list)
    files: dict[str, Any] | None = None  # file-tree backups: what the tree holds


def _records(reader: SnapshotReader, tables: dict[str, TableInfo], name: str
             ) -> list[dict[str, Any]]:
    info = tables.get(name)
    if info is None:
        return []
    shape = RowShape(info)
    return [{"_key": shape.key(row), **shape.record(row)} for row in reader.rows(name)]


def _text(value: Any) -> str:
    return "" if value is None else value_text(value)


def _tags(value: Any) -> list[str]:
    if value is None:
        return []
    text = value_text(value)
    with contextlib.suppress(ValueError):
        parsed = json.loads(text)
        if isinstance(parsed, list):
            return [str(t) for t in parsed]
    return [t.strip() for t in text.split(",") if t.strip()]


class TargetKeys:
    """Keys (and names) of the rows the source database holds now, read-only."""

    def __init__(self, path: str | None) -> None:
        self.conn: sqlite3.Connection | None = None
        if path and Path(path).is_file():
            with contextlib.suppress(sqlite3.Error):
                self.conn = sqlite3.connect(f"{Path(path).absolute().as_uri()}?mode=ro",
                                            uri=True, timeout=30)

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()

    def names(self, info: TableInfo) -> dict[str, str | None]:
        """key text → name (or None) of the target's rows of this table."""
        if self.conn is None:
            return {}
        key = ["rowid" if c == "rowid" else quote_identifier(c) for c in info.primary_key]
        name = next((c for c in NAME_COLUMNS if c in info.columns), None)
        select = ", ".join([*key, quote_identifier(name) if name else "NULL"])
        try:
            rows = self.conn.execute(
                f"SELECT {select} FROM {quote_identifier(info.name)}").fetchall()
        except sqlite3.Error:
            return {}  # the table is not in the target (or differs): nothing to meet
        width = len(key)
        return {key_text(tuple(row[:width])): (None if row[width] is None
                                                else value_text(row[width])) for row in rows}


class RestorePreviewService:
    def __init__(self, storage: RepositoryProvider, sources: SourceService,
                 backups: BackupService, restores: RestoreService) -> None:
        self.storage = storage
        self.sources = sources
        self.backups = backups
        self.restores = restores

    def preview(self, tenant: str, backup_id: str, *, detailed: bool = False,
                check_conflicts: bool = True) -> BackupPreview:
        backup = self.backups.get(tenant, backup_id)
        result = BackupPreview(backup, required_space_bytes=backup.size_bytes)
        source = self._source(tenant, backup, result)
        if backup.snapshot_id is None:
            result.recommendations.append(
                f"the backup is {backup.status}: only completed backups can be restored")
            return result
        repo = self.storage.open()
        try:
            snapshot = repo.load_snapshot(backup.snapshot_id)
            if snapshot.kind == "files":
                self._files(repo, snapshot, source, result, detailed, check_conflicts)
                return result
            reader = SnapshotReader(repo, snapshot)
        except StrongboxError as exc:
            result.can_restore = False
            result.recommendations.append(f"this backup cannot be previewed: {exc.message}")
            return result
        target = TargetKeys(source.config.get("path")
                            if source is not None and source.kind == "sqlite" else None)
        try:
            self._contents(reader, result, target)
            if check_conflicts:
                self._conflicts(reader, result, target, detailed)
        finally:
            target.close()
        rows = sum(t.rows for t in result.tables)
        result.estimated_time_seconds = duration_for(rows)
        self._recommend(result, source, check_conflicts)
        return result

    def _source(self, tenant: str, backup: BackupView, result: BackupPreview
                ) -> SourceView | None:
        try:
            _, source = self.restores.restorable(tenant, backup.id)
        except StrongboxError as exc:
            result.recommendations.append(exc.message)
            return None
        result.can_restore = source.kind in ("sqlite", "postgres", "files")
        return source

    @staticmethod
    def _files(repo: Repository, snapshot: Snapshot, source: SourceView | None,
               result: BackupPreview, detailed: bool, check_conflicts: bool) -> None:
        """A file tree: its entries, and (``check_conflicts``) what a merge restore into
        the source's directory would meet there -- the plan such a restore computes."""
        root = file_restore.root_node(repo, snapshot)
        entries = list(file_restore.walk(repo, root))
        files = [node for _, node in entries if node.type != "dir"]
        doc: dict[str, Any] = {
            "root": root.name, "files": len(files),
            "dirs": sum(1 for _, node in entries if node.type == "dir"),
            "bytes": sum(node.size for node in files if node.type in ("file", "hardlink"))}
        result.required_space_bytes = doc["bytes"]
        result.estimated_time_seconds = duration_for(len(files))
        actions: dict[str, str] = {}
        if check_conflicts and source is not None and source.kind == "files":
            target = os.path.realpath(source.config["path"])
            doc["target_path"] = target
            plan = file_restore.plan_file_restore(repo, snapshot, file_restore.FileRestoreSpec(
                mode="merge", target=target, on_conflict="skip"))
            actions = {a.path: a.action for a in plan.actions}
            doc["missing_in_target"] = plan.totals()["created"]
            doc["unchanged"] = plan.totals()["unchanged"]
            conflicts = plan.conflicts()
            result.conflicts_count = len(conflicts)
            listed = conflicts if detailed else conflicts[:LISTED_CONFLICTS]
            result.conflicts = [ConflictView(**file_restore.conflict_doc(a)) for a in listed]
        if detailed:
            doc["entries"] = [{"path": rel, "type": node.type, "size": node.size,
                               **({"action": actions[rel]} if rel in actions else {})}
                              for rel, node in entries]
        result.files = doc
        notes = result.recommendations
        if result.conflicts_count:
            notes.append(f"{result.conflicts_count} file(s) exist in the source directory "
                         "with other content: restore with mode 'merge' and on_conflict "
                         "'skip' to keep them, 'overwrite' to replace them (a safety "
                         "snapshot is taken first), or 'rename' to write the restored "
                         "copies beside them; mode 'full' makes the directory exactly the "
                         "backup")
        elif check_conflicts and result.can_restore:
            notes.append("no conflicts: no file of the backup differs from the source "
                         "directory")
        if result.can_restore:
            notes.append("run with options.dry_run true first to see exactly what would "
                         "change; choose files with selections.paths, include_patterns and "
                         "exclude_patterns, and another directory with target.path")

    @staticmethod
    def _contents(reader: SnapshotReader, result: BackupPreview, target: TargetKeys) -> None:
        tables = {info.name: info for info in reader.tables()}
        result.tables = [TablePreview(t.name, t.rows, list(t.columns), list(t.primary_key))
                         for t in tables.values()]
        sessions = _records(reader, tables, "sessions")
        messages = [{"session_id": m.get("session_id"), "type": m.get("type")}
                    for m in _records(reader, tables, "messages")]
        session_project = {_text(s.get("id")): _text(s.get("project_id")) for s in sessions}
        per_project_sessions: dict[str, int] = {}
        for session in sessions:
            owner = _text(session.get("project_id"))
            per_project_sessions[owner] = per_project_sessions.get(owner, 0) + 1
        per_project_messages: dict[str, int] = {}
        by_type: dict[str, int] = {}
        for message in messages:
            owner = session_project.get(_text(message["session_id"]), "")
            per_project_messages[owner] = per_project_messages.get(owner, 0) + 1
            kind = _text(message["type"]) or "unknown"
            by_type[kind] = by_type.get(kind, 0) + 1
        existing_projects = target.names(tables["projects"]) if "projects" in tables else {}
        for project in _records(reader, tables, "projects"):
            key = _text(project.get("id"))
            result.projects.append({
                "_id": key, "name": _text(project.get("name")),
                "description": project.get("description"),
                "sessions_count": per_project_sessions.get(key, 0),
                "messages_count": per_project_messages.get(key, 0),
                "created_at": _text(project.get("created_at")),
                "updated_at": _text(project.get("updated_at") or project.get("created_at")),
                "exists_in_system": key_text(project["_key"]) in existing_projects})
        summary: dict[str, Any] = {"total": len(sessions), "by_project": per_project_sessions}
        moments = sorted(_text(s.get("created_at")) for s in sessions if s.get("created_at"))
        if moments:
            summary["date_range"] = {"earliest": moments[0], "latest": moments[-1]}
        result.sessions_summary = summary
        result.messages_summary = {
            "total": len(messages), "by_type": by_type,
            "average_per_session": round(len(messages) / len(sessions), 2) if sessions else 0}
        existing_prompts = target.names(tables["prompts"]) if "prompts" in tables else {}
        for prompt in _records(reader, tables, "prompts"):
            result.prompts.append({
                "_id": _text(prompt.get("id")), "name": _text(prompt.get("name")),
                "category": prompt.get("category"), "tags": _tags(prompt.get("tags")),
                "usage_count": int(prompt.get("usage_count") or 0),
                "exists_in_system": key_text(prompt["_key"]) in existing_prompts})

    @staticmethod
    def _conflicts(reader: SnapshotReader, result: BackupPreview, target: TargetKeys,
                   detailed: bool) -> None:
        if target.conn is None:
            return
        listed: list[ConflictView] = []
        by_name = {t.name: t for t in result.tables}
        order = reader.graph().topological_order()
        # The seed's tables first (parents before children), then any others.
        tables = sorted(reader.tables(), key=lambda t: (t.name not in CONFLICT_TYPES,
                                                        order.index(t.name)))
        for info in tables:
            existing = target.names(info)
            if not existing:
                continue
            shape = RowShape(info)
            name_column = next((c for c in NAME_COLUMNS if c in info.columns), None)
            for row in reader.rows(info.name):
                key = key_text(shape.key(row))
                if key not in existing:
                    continue
                by_name[info.name].existing_rows += 1
                result.conflicts_count += 1
                if detailed or len(listed) < LISTED_CONFLICTS:
                    record = shape.record(row)
                    backup_name = record.get(name_column) if name_column else None
                    listed.append(ConflictView(
                        CONFLICT_TYPES.get(info.name, info.name), key, key, "skip",
                        existing[key], None if backup_name is None else value_text(backup_name),
                        info.name))
        result.conflicts = listed

    @staticmethod
    def _recommend(result: BackupPreview, source: SourceView | None,
                   check_conflicts: bool) -> None:
        notes = result.recommendations
        if source is not None and source.kind == "postgres":
            notes.append("the preview does not list row conflicts for PostgreSQL: restore "
                         "with options.dry_run true for the exact plan (per table inserts, "
                         "updates, skips and every conflict) without writing anything")
            return
        if result.conflicts_count:
            notes.append(f"{result.conflicts_count} row(s) already exist in the source: "
                         "restore with mode 'merge' and on_conflict 'skip' to keep them, "
                         "'overwrite' to replace them, or 'rename' (maintain_ids false) to "
                         "add copies with project_name_suffix")
        elif check_conflicts and result.can_restore:
            notes.append("no conflicts: every row of the backup is new to the source")
        if result.can_restore:
            notes.append("run with options.dry_run true first to see exactly what would "
                         "change; a safety backup of the source is taken before a restore "
                         "that replaces or overwrites rows")
