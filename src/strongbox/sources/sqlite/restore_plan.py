"""What a database restore is asked to do, what it plans, and which rows it takes.

The request (:class:`RestoreRequest`) follows seed 000's ``CreateRestoreRequest``: a mode
(``full``, ``selective``, ``merge``), selections and exclusions, ``on_conflict`` and
``maintain_ids``. Seed 002's import modes are the same machinery with other defaults
(see :data:`IMPORT_MODES`). The plan (:class:`RestorePlan`) is both the dry-run preview
and the record of a real run: restore.py fills it in while it works, so a dry run (the
same work, rolled back) predicts a real run exactly.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from strongbox.errors import InvalidRequest, SourceError
from strongbox.sources.sqlite.foreign_keys import ForeignKeyGraph
from strongbox.sources.sqlite.reader import SnapshotReader, TableInfo
from strongbox.sources.sqlite.selection import Key, Selection, expand_selection
from strongbox.sources.sqlite.snapshot_lookup import SnapshotRowLookup, value_text

MODES = ("full", "selective", "merge")
RESOLUTIONS = ("skip", "overwrite", "rename", "merge", "fail")

# Seed 002 import modes as (mode, on_conflict); the two that need more than that set flags
# on the request as well (see request_for_import):
#   insert_only  new rows are inserted, rows already there are left alone
#   update_only  rows already there are updated, new rows are not inserted (insert_new=False)
#   upsert       new rows are inserted, rows already there are updated
#   replace      the table ends up holding exactly the restored rows: target rows that are
#                not among them are deleted, the rest are overwritten or inserted
#                (replace_tables=True). Rows that come back are updated in place rather
#                than deleted and re-inserted, so ON DELETE CASCADE does not take their
#                children in other tables with them.
IMPORT_MODES: dict[str, tuple[str, str]] = {
    "insert_only": ("merge", "skip"),
    "update_only": ("merge", "overwrite"),
    "upsert": ("merge", "overwrite"),
    "replace": ("merge", "overwrite"),
}


class ConstraintViolation(SourceError):
    """A restored row breaks a constraint of the target (foreign key, CHECK, NOT NULL...)."""

    code = "CONSTRAINT_VIOLATION"
    http_status = 409


class RestoreConflict(SourceError):
    """A row conflicts with the target and ``on_conflict`` is ``fail``."""

    code = "RESTORE_CONFLICT"
    http_status = 409


@dataclass
class RestoreRequest:
    mode: str = "full"
    # table -> key values (a bare value for a one-column key, else a tuple or list)
    selections: dict[str, list[Any]] = field(default_factory=dict)
    # table -> keys to leave out, with everything that hangs off them
    exclude: dict[str, list[Any]] = field(default_factory=dict)
    tables: list[str] | None = None  # only these tables; None means all
    on_conflict: str = "skip"
    maintain_ids: bool = True
    name_suffix: str = "_restored"  # seed 000 RestoreTarget.project_name_suffix
    dry_run: bool = False  # do all the work, report it, roll it back
    # Back up an existing target first when the restore can change or delete its rows:
    # full mode, replace_tables, on_conflict overwrite or merge. Purely additive restores
    # (skip, rename) need none: the target only gains rows.
    safety_backup: bool = True
    insert_new: bool = True  # False: only rows already in the target are touched
    replace_tables: bool = False  # True: target rows not restored are deleted

    def validate(self) -> None:
        if self.mode not in MODES:
            raise InvalidRequest(f"mode must be one of {', '.join(MODES)}, not {self.mode!r}",
                                 details={"mode": self.mode})
        if self.on_conflict not in RESOLUTIONS:
            raise InvalidRequest(
                f"on_conflict must be one of {', '.join(RESOLUTIONS)}, not {self.on_conflict!r}",
                details={"on_conflict": self.on_conflict})
        if self.mode == "selective" and not any(self.selections.values()):
            raise InvalidRequest("selective restore needs selections",
                                 details={"selections": self.selections})
        if self.mode == "full" and (self.selections or self.exclude or not self.insert_new):
            # "Full" that leaves rows out would silently be something else.
            raise InvalidRequest("full restore takes every row: use selective or merge mode "
                                 "to choose or exclude rows")
        if self.on_conflict == "rename" and not self.name_suffix:
            raise InvalidRequest("rename needs a non-empty name suffix")


def request_for_import(import_mode: str, conflict_resolution: str | None = None,
                       **overrides: Any) -> RestoreRequest:
    """The restore request that performs a seed 002 import of ``import_mode``."""
    if import_mode not in IMPORT_MODES:
        raise InvalidRequest(f"import_mode must be one of {', '.join(IMPORT_MODES)}",
                             details={"import_mode": import_mode})
    mode, on_conflict = IMPORT_MODES[import_mode]
    request = RestoreRequest(mode=mode, on_conflict=conflict_resolution or on_conflict,
                             insert_new=import_mode != "update_only",
                             replace_tables=import_mode == "replace", **overrides)
    request.validate()
    return request


@dataclass
class PlannedConflict:
    """One row that meets an existing row (seed 000 ConflictInfo)."""

    table: str
    key: str  # the row's key in the backup
    existing_key: str
    kind: str  # "primary_key" or "unique:<columns>"
    resolution: str
    backup_name: str | None = None
    existing_name: str | None = None


@dataclass
class TablePlan:
    table: str
    insert: int = 0
    update: int = 0
    skip: int = 0  # includes duplicates and rows skipped with a skipped parent
    delete: int = 0
    duplicates: int = 0  # rows already in the target with the same content
    conflicts: list[PlannedConflict] = field(default_factory=list)


@dataclass
class RestorePlan:
    mode: str
    tables: list[TablePlan] = field(default_factory=list)
    total_rows: int = 0  # rows taken from the snapshot
    warnings: list[str] = field(default_factory=list)

    def table(self, name: str) -> TablePlan:
        for plan in self.tables:
            if plan.table == name:
                return plan
        plan = TablePlan(name)
        self.tables.append(plan)
        return plan

    def totals(self) -> dict[str, int]:
        return {f"will_{what}": sum(getattr(t, what) for t in self.tables)
                for what in ("insert", "update", "skip", "delete")}

    def conflicts(self) -> Iterator[PlannedConflict]:
        for plan in self.tables:
            yield from plan.conflicts

    def to_dict(self) -> dict[str, Any]:
        return {"mode": self.mode, "total_rows": self.total_rows, **self.totals(),
                "conflicts_count": sum(len(t.conflicts) for t in self.tables),
                "tables": [asdict(t) for t in self.tables], "warnings": list(self.warnings)}


@dataclass
class RestoreResult:
    plan: RestorePlan
    rows_restored: int = 0
    rows_skipped: int = 0
    rows_failed: int = 0
    id_mappings: dict[str, dict[str, str]] = field(default_factory=dict)  # table -> old -> new
    safety_snapshot: str | None = None
    tables: dict[str, dict[str, int]] = field(default_factory=dict)
    dry_run: bool = False

    @classmethod
    def from_plan(cls, plan: RestorePlan, id_mappings: dict[str, dict[str, str]],
                  safety_snapshot: str | None, dry_run: bool) -> RestoreResult:
        return cls(
            plan=plan,
            rows_restored=sum(t.insert + t.update for t in plan.tables),
            rows_skipped=sum(t.skip for t in plan.tables),
            id_mappings=id_mappings, safety_snapshot=safety_snapshot, dry_run=dry_run,
            tables={t.table: {"inserted": t.insert, "updated": t.update, "skipped": t.skip,
                              "deleted": t.delete} for t in plan.tables})

    def to_dict(self) -> dict[str, Any]:
        return {"rows_restored": self.rows_restored, "rows_skipped": self.rows_skipped,
                "rows_failed": self.rows_failed, "id_mappings": self.id_mappings,
                "safety_snapshot": self.safety_snapshot, "tables": self.tables,
                "dry_run": self.dry_run, "plan": self.plan.to_dict()}


# --- keys -------------------------------------------------------------------------------


def key_text(key: Key) -> str:
    """A key as the API shows it: the value of a one-column key, else a JSON list."""
    if len(key) == 1:
        return value_text(key[0])
    return json.dumps([value_text(v) for v in key])


class RowShape:
    """Where a table's key and columns sit in the rows a snapshot stores."""

    def __init__(self, info: TableInfo) -> None:
        self.info = info
        # For rowid-keyed tables the stored row is (rowid, *columns).
        offset = 1 if info.has_rowid_key else 0
        self.position = {name: index + offset for index, name in enumerate(info.columns)}
        if info.has_rowid_key:
            self.position["rowid"] = 0
        self.key_positions = [self.position[c] for c in info.primary_key]

    def key(self, row: tuple[Any, ...]) -> Key:
        return tuple(row[p] for p in self.key_positions)

    def values(self, row: tuple[Any, ...], columns: Iterable[str]) -> Key:
        return tuple(row[self.position[c]] for c in columns)

    def record(self, row: tuple[Any, ...]) -> dict[str, Any]:
        """Column -> value, without the rowid of rowid-keyed tables."""
        return {c: row[self.position[c]] for c in self.info.columns}


# --- which rows -------------------------------------------------------------------------


@dataclass
class RowChoice:
    """Which rows of each table a restore takes."""

    chosen: Selection | None  # None: every row not excluded
    excluded: Selection
    warnings: list[str] = field(default_factory=list)

    def wants(self, table: str, key: Key) -> bool:
        if self.chosen is not None and key not in self.chosen.get(table, ()):
            return False
        return key not in self.excluded.get(table, ())

    def count(self, table: str, stored_rows: int) -> int:
        """Rows of ``table`` to restore (an upper bound when only exclusions apply)."""
        if self.chosen is not None:
            return len(self.chosen.get(table, ()))
        return max(0, stored_rows - len(self.excluded.get(table, ())))


def choose_rows(reader: SnapshotReader, graph: ForeignKeyGraph,
                request: RestoreRequest) -> RowChoice:
    """Selections with their foreign-key closure, minus exclusions and what hangs off them.

    Exclusions are taken out before parents are added, so excluding a session also leaves
    out its messages even when the selection named their project; a selected row never
    lacks its parents, because a row below an excluded row is itself excluded.
    """
    if not request.selections and not request.exclude:
        return RowChoice(None, {})
    with SnapshotRowLookup(reader, graph) as lookup:
        return _choose(lookup, graph, request)


def _choose(lookup: SnapshotRowLookup, graph: ForeignKeyGraph,
            request: RestoreRequest) -> RowChoice:
    warnings: list[str] = []
    excluded = (expand_selection(lookup, graph, _resolve(lookup, request.exclude, warnings),
                                 include_parents=False) if request.exclude else {})
    if not request.selections:
        return RowChoice(None, excluded, warnings)
    roots = _resolve(lookup, request.selections, warnings)
    below = expand_selection(lookup, graph, roots, include_parents=False)
    kept = {t: keys - excluded.get(t, set()) for t, keys in below.items()}
    chosen = expand_selection(lookup, graph, {t: k for t, k in kept.items() if k},
                              include_children=False)
    return RowChoice(chosen, excluded, warnings)


def _resolve(lookup: SnapshotRowLookup, wanted: dict[str, list[Any]],
             warnings: list[str]) -> dict[str, set[Key]]:
    roots: dict[str, set[Key]] = {}
    for table, keys in wanted.items():
        roots[table], missing = lookup.resolve(table, keys)
        if missing:
            shown = ", ".join(value_text(k) for k in missing[:10])
            warnings.append(f"{table}: {len(missing)} requested key(s) not in the snapshot "
                            f"({shown})")
    return roots
