"""The ``restore`` job: write a backup's snapshot back into its source.

SQLite sources go through :func:`~strongbox.sources.sqlite.restore.restore_sqlite`,
PostgreSQL sources through :func:`~strongbox.sources.postgres.merge.restore_postgres`, in
every mode (full, selective, merge) with the same request, plan and result types. Both
engines work in one transaction on the target, so a failed or cancelled restore leaves it
as it was. File trees go through :mod:`strongbox.services.file_restore`, which stages the
files and swaps them in with a journal, so a failed, cancelled or interrupted restore is
undone there too.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import Any

from strongbox.errors import UnsafePath
from strongbox.jobs.progress import JobProgress
from strongbox.jobs.store import JobView
from strongbox.repository.lock import Lock
from strongbox.repository.repository import Repository
from strongbox.repository.snapshot import Snapshot
from strongbox.services import file_restore, project_target
from strongbox.services.sources import SourceService, SourceView
from strongbox.services.storage import RepositoryProvider
from strongbox.sources.sqlite.reader import SnapshotReader
from strongbox.sources.sqlite.restore import (
    RestoreRequest,
    RestoreResult,
    restore_from_reader,
    restore_sqlite,
)

KIND = "restore"
STEPS = ("opening repository", "restoring")
# Seed 000 result counters, by the table whose rows they count.
COUNTED_TABLES = ("projects", "sessions", "messages", "prompts")


class RestoreProgress(JobProgress):
    """A job's progress in the shape of seed 000 ``RestoreJobStatus.progress``.

    The engines name the table they work on in their operation text ("restoring
    messages"); the handler tells this class which tables there are, so it can say which
    are done and which remain. Until the end, ``documents_restored`` counts the rows
    processed (restored or skipped); the final split comes from the engine's result.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.collections: list[str] = []
        self.current_collection = ""
        self.done_collections = 0
        self.final_counts: tuple[int, int, int] | None = None  # restored, skipped, failed

    def operation(self, text: str) -> None:
        name = text.removeprefix("restoring table ").removeprefix("restoring ")
        entered = name in self.collections and name != self.current_collection
        if entered:
            self.current_collection = name
            self.done_collections = max(self.done_collections, self.collections.index(name))
        super().operation(text)
        if entered:  # tables are few: report each one, like a step
            self.flush()

    def finish(self, restored: int, skipped: int, failed: int) -> None:
        self.final_counts = (restored, skipped, failed)
        self.done_collections = len(self.collections)
        self.current_collection = ""

    def snapshot(self) -> dict[str, Any]:
        base = super().snapshot()
        if self.final_counts is not None:
            restored, skipped, failed = self.final_counts
        else:
            restored, skipped, failed = self.state.items_done, 0, 0
        doc: dict[str, Any] = {
            "current_operation": "done" if self.finished else base["current_operation"],
            "current_collection": self.current_collection,
            "collections_processed": self.collections[:self.done_collections],
            "collections_remaining": self.collections[self.done_collections:],
            "documents_restored": restored,
            "documents_skipped": skipped,
            "documents_failed": failed,
            "percentage": base["percentage"],
            "elapsed_seconds": base["elapsed_seconds"],
        }
        for name in ("documents_total", "estimated_remaining_seconds"):
            if name in base:
                doc[name] = base[name]
        doc["bytes_restored"] = self.state.bytes_done
        if self.state.bytes_total is not None:
            doc["bytes_total"] = self.state.bytes_total
        return doc


def restore_request(params: dict[str, Any]) -> RestoreRequest:
    """The engine request a job's parameters describe."""
    return RestoreRequest(
        mode=params["mode"], selections=dict(params.get("selections") or {}),
        exclude=dict(params.get("exclude") or {}), on_conflict=params["on_conflict"],
        maintain_ids=bool(params["maintain_ids"]), name_suffix=params["name_suffix"],
        dry_run=bool(params["dry_run"]))


def flatten_mappings(by_table: dict[str, dict[str, str]]) -> dict[str, str]:
    """Seed 000's flat ``old_id -> new_id`` map. An old id that only one table maps keeps
    its plain form; one that several tables map (integer keys, say) is written
    ``<table>:<old id>`` for each of them."""
    seen: dict[str, int] = {}
    for mapping in by_table.values():
        for old in mapping:
            seen[old] = seen.get(old, 0) + 1
    flat = {}
    for table, mapping in by_table.items():
        for old, new in mapping.items():
            flat[old if seen[old] == 1 else f"{table}:{old}"] = new
    return flat


def sqlite_result(result: RestoreResult) -> dict[str, Any]:
    restored = {t: counts["inserted"] + counts["updated"] for t, counts in result.tables.items()}
    return {
        **{f"{t}_restored": restored.get(t, 0) for t in COUNTED_TABLES},
        "total_documents": result.rows_restored,
        "skipped_duplicates": result.rows_skipped,
        "failed_documents": result.rows_failed,
        "id_mappings": flatten_mappings(result.id_mappings),
        "id_mappings_by_table": result.id_mappings,
        "tables": result.tables,
        "conflicts_count": sum(1 for _ in result.plan.conflicts()),
        "warnings": list(result.plan.warnings),
        "safety_snapshot_id": result.safety_snapshot,
    }


def restore_order(reader: SnapshotReader, request: RestoreRequest) -> list[str]:
    wanted = request.tables
    return [t for t in reader.graph().topological_order() if wanted is None or t in wanted]


class RestoreJobHandler:
    steps: Sequence[str] = STEPS
    progress_class = RestoreProgress

    def __init__(self, storage: RepositoryProvider, sources: SourceService) -> None:
        self.storage = storage
        self.sources = sources

    def run(self, job: JobView, progress: JobProgress) -> dict[str, Any]:
        started = time.monotonic()
        params = job.params
        progress.step("opening repository")
        source = self.sources.get(job.tenant, params["source_id"])
        repo = self.storage.open()
        snapshot = repo.load_snapshot(params["snapshot_id"])
        with Lock(repo.backend, exclusive=False).acquire():
            if params.get("kind") == "files":
                outcome = self._restore_files(job, repo, snapshot, params, progress)
            else:
                outcome = self._restore(repo, snapshot, source, params, progress)
        if isinstance(progress, RestoreProgress):
            progress.finish(outcome["total_documents"], outcome["skipped_duplicates"],
                            outcome["failed_documents"])
        return {"backup_id": job.backup_id, "source_id": source.id, "mode": params["mode"],
                "dry_run": bool(params.get("dry_run")), **outcome,
                "duration_seconds": round(time.monotonic() - started, 3)}

    @staticmethod
    def _restore_files(job: JobView, repo: Repository, snapshot: Snapshot,
                       params: dict[str, Any], progress: JobProgress) -> dict[str, Any]:
        target = str(params["target"])
        if os.path.realpath(target) != target:
            # Checked against the allowed roots when the job was created; a symlink
            # planted since must not redirect the restore.
            raise UnsafePath(f"{target}: the target path now leads elsewhere (a symlink "
                             "changed); the restore was not started")
        spec = file_restore.FileRestoreSpec(
            mode=params["mode"], target=target, paths=tuple(params.get("paths") or ()),
            include=tuple(params.get("include") or ()),
            exclude=tuple(params.get("exclude") or ()), on_conflict=params["on_conflict"],
            suffix=params["name_suffix"], dry_run=bool(params.get("dry_run")),
            source_include=tuple(params.get("source_include") or ()),
            source_exclude=tuple(params.get("source_exclude") or ()))
        if isinstance(progress, RestoreProgress):
            progress.collections = ["files"]
        progress.step("restoring")
        progress.operation("restoring files")
        outcome = file_restore.restore_file_tree(repo, snapshot, spec, job.id, progress)
        return file_restore.result_doc(outcome, spec.dry_run)

    @staticmethod
    def _restore(repo: Repository, snapshot: Snapshot, source: SourceView,
                 params: dict[str, Any], progress: JobProgress) -> dict[str, Any]:
        reader = SnapshotReader(repo, snapshot)
        if source.kind == "sqlite":
            request = restore_request(params)
            if isinstance(progress, RestoreProgress):
                progress.collections = restore_order(reader, request)
            progress.step("restoring")
            project = params.get("project_target")
            if project is None:
                return sqlite_result(restore_sqlite(repo, snapshot, source.config["path"],
                                                    request, progress))
            result = restore_from_reader(repo, project_target.retargeted(reader, project),
                                         source.config["path"], request, progress)
            if project.get("project_id") is not None:
                # The backup's projects were restored as (into) the target project.
                moved = result.id_mappings.setdefault("projects", {})
                moved.update({key: project["project_id"] for key in project["retarget"]
                              if key != project["project_id"]})
            return sqlite_result(result)
        request = restore_request(params)
        if isinstance(progress, RestoreProgress):
            progress.collections = restore_order(reader, request)
        progress.step("restoring")
        # Imported here: the PostgreSQL driver is only needed by servers that use it.
        from strongbox.sources.postgres.merge import restore_postgres

        result = restore_postgres(repo, snapshot, source.config["dsn"], request,
                                  target_schema=source.config.get("schema"),
                                  replace_objects=bool(params.get("replace")), progress=progress)
        return sqlite_result(result)

    def failed(self, job: JobView, error: dict[str, Any]) -> None:
        """The database engines leave the target as it was. A file restore undoes its
        own swap when it fails or is cancelled; one the server was killed in the middle
        of is undone here, from its journal, when the restart marks it interrupted."""
        target = job.params.get("target")
        if (job.params.get("kind") == "files" and isinstance(target, str)
                and os.path.realpath(target) == target):  # never through a planted link
            file_restore.recover(target, job.id)
