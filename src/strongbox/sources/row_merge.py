"""The row-by-row decisions of a selective or merge restore, shared by the database engines.

Both engines (sources/sqlite/restore.py, sources/postgres/merge.py) restore rows the same
way and fill in the same plan (sources/sqlite/restore_plan.py); only how they read and write
the target differs. This module holds what does not depend on the database:

* :class:`MergeRun`: the state of one restore across tables: the plan, ``id_mappings``,
  where each backup row ended up (so children follow their parents' new keys), the rows left
  out (so their children are left out too), and the links within a foreign-key cycle that
  can only be set once the cycle's rows are all written (:class:`Fixup`).
* :class:`RowMerger`: the decisions for the rows of one table: does the row meet a target
  row by key or by a unique value, and what ``on_conflict`` (skip, overwrite, rename, merge,
  fail), ``insert_new`` and ``maintain_ids`` make of it: insert, update, skip or rename with
  a suffixed name and a new key, with the conflicts, warnings and counts of the plan.

An engine subclasses :class:`RowMerger` and implements how to find a target row by key
(``_fetch``) or by unique values (``_holder``), whether a row can get a new key
(``_can_renumber``), and how to insert and update (``_insert``, ``_update``).
"""

from __future__ import annotations

import itertools
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from strongbox.errors import InvalidRequest
from strongbox.progress import Progress
from strongbox.sources.sqlite.foreign_keys import ForeignKey, ForeignKeyGraph
from strongbox.sources.sqlite.reader import TableInfo
from strongbox.sources.sqlite.restore_plan import (
    PlannedConflict,
    RestoreConflict,
    RestorePlan,
    RestoreRequest,
    RowChoice,
    RowShape,
    key_text,
)
from strongbox.sources.sqlite.selection import Key
from strongbox.sources.sqlite.snapshot_lookup import value_text

__all__ = [
    "NAME_COLUMNS",
    "Conflicts",
    "Fixup",
    "Hits",
    "MergeRun",
    "Record",
    "RowMerger",
    "TargetShape",
    "Unresolved",
    "tables_in_order",
]

NAME_COLUMNS = ("name", "title")  # shown in conflicts as seed 000's existing_name/backup_name
Record = dict[str, Any]
Hits = list[tuple[tuple[str, ...], Key]]  # unique columns, key of the row holding them
Unresolved = list[tuple[ForeignKey, Key]]  # links to rows of the cycle not decided yet
Conflicts = list[tuple[str, Key, Record | None]]  # kind, existing key, existing row


class TargetShape(Protocol):
    """What the decisions need to know of a target table (each engine reads more)."""

    name: str
    columns: list[str]
    primary_key: tuple[str, ...]
    unique: list[tuple[str, ...]]


Target = TypeVar("Target", bound=TargetShape)


def tables_in_order(reader: Any, graph: ForeignKeyGraph,
                    request: RestoreRequest) -> list[TableInfo]:
    """The tables to restore, parents before children (the reader lists them by name)."""
    wanted = request.tables
    if wanted is not None:
        unknown = sorted(set(wanted) - set(graph.tables))
        if unknown:
            raise InvalidRequest(f"tables not in the snapshot: {', '.join(unknown)}",
                                 details={"tables": unknown})
    return [reader.table(t) for t in graph.topological_order() if wanted is None or t in wanted]


@dataclass
class Fixup:
    """A written row whose link to a row of its own cycle is set once the cycle is done."""

    table: str
    key: Key
    link: ForeignKey
    old: Key


class MergeRun:
    """One row-level restore's state across tables: plan, key mappings, rows left out."""

    def __init__(self, graph: ForeignKeyGraph, request: RestoreRequest, choice: RowChoice,
                 progress: Progress) -> None:
        self.graph, self.request, self.choice, self.progress = graph, request, choice, progress
        self.plan = RestorePlan(request.mode, warnings=list(choice.warnings))
        self.id_mappings: dict[str, dict[str, str]] = {}
        # table -> referenced columns -> old values -> new values (only where they changed)
        self.remap: dict[str, dict[tuple[str, ...], dict[Key, Key]]] = {}
        # table -> referenced columns -> values of rows left out (their children follow)
        self.skipped: dict[str, dict[tuple[str, ...], set[Key]]] = {}
        # tables of a cycle -> referenced columns -> values of rows already decided
        self.done: dict[str, dict[tuple[str, ...], set[Key]]] = {}
        self.cycle_tables = {t for cycle in graph.cycles for t in cycle}
        self.pending: set[str] = set()  # tables of the current cycle not finished yet
        self.fixups: list[Fixup] = []

    def groups(self, tables: list[TableInfo]) -> list[list[TableInfo]]:
        """Tables in order, with the tables of one foreign-key cycle kept together."""
        cycle_of = {t: cycle for cycle in self.graph.cycles for t in cycle}
        groups: list[list[TableInfo]] = []
        placed: set[str] = set()
        for info in tables:
            if info.name in placed:
                continue
            cycle = cycle_of.get(info.name, (info.name,))
            group = [t for t in tables if t.name in cycle]
            placed.update(t.name for t in group)
            groups.append(group)
        return groups

    def new_key(self, link: ForeignKey, old: Key) -> Key | None:
        """The key a parent row got, if it changed."""
        return self.remap.get(link.parent_table, {}).get(link.parent_columns, {}).get(old)


class RowMerger(ABC, Generic[Target]):
    """Decides, row by row, how the rows of one table go into the target.

    Subclasses set ``key_columns`` (the columns of a row's key as written in it; empty when
    the key is not a column, such as SQLite's implicit rowid) and ``identity`` (the columns
    children name the row by when they point at its key), and implement the target access.
    """

    key_columns: tuple[str, ...]
    identity: tuple[str, ...]

    def __init__(self, run: MergeRun, info: TableInfo, target: Target) -> None:
        self.run, self.info, self.target = run, info, target
        self.request = run.request
        self.shape = RowShape(info)
        self.plan = run.plan.table(info.name)
        if target.primary_key and tuple(info.primary_key) != target.primary_key:
            raise InvalidRequest(
                f"table {info.name}: key {list(info.primary_key)} in the snapshot but "
                f"{list(target.primary_key)} in the target", details={"table": info.name})
        self.columns = [c for c in info.columns if c in target.columns]
        dropped = [c for c in info.columns if c not in target.columns]
        if dropped:
            run.plan.warnings.append(f"{info.name}: columns not in the target are not "
                                     f"restored: {', '.join(dropped)}")
        self.parent_links = run.graph.parents(info.name)
        self.referenced = sorted({link.parent_columns for link in run.graph.children(info.name)})
        self.name_column = next((c for c in NAME_COLUMNS if c in self.columns), None)
        self.cascaded = 0
        self.not_new = 0
        self.mapping = run.id_mappings.setdefault(info.name, {})

    # --- what each engine implements ----------------------------------------------------

    @abstractmethod
    def _fetch(self, key: Key) -> Record | None:
        """The target row with this key, if any."""

    @abstractmethod
    def _holder(self, columns: tuple[str, ...], record: Record) -> Key | None:
        """Key of the target row holding these unique values, if any."""

    @abstractmethod
    def _can_renumber(self, key: Key) -> bool:
        """Whether a row can get a key of its own (a composite key cannot)."""

    @abstractmethod
    def _is_text(self, column: str, value: Any) -> bool:
        """Whether a value can carry the name suffix of ``rename``."""

    @abstractmethod
    def _insert(self, backup_key: Key, record: Record, key: Key, *, renumber: bool,
                unresolved: Unresolved) -> Key:
        """Insert the row (with a new key if ``renumber``); returns its key in the target."""

    @abstractmethod
    def _update(self, backup_key: Key, key: Key, current: Record, changes: Record,
                unresolved: Unresolved) -> None:
        """Write ``changes`` into the target row ``key`` (now ``current``)."""

    def _row_key(self, backup_key: Key, record: Record) -> Key:
        """The row's key in the target, its parents' new keys followed."""
        return tuple(record[c] for c in self.key_columns)

    def _more_warnings(self) -> list[str]:
        return []

    def _tracks(self, columns: tuple[str, ...]) -> bool:
        """Whether children can point at these columns by value."""
        return True

    # --- one row --------------------------------------------------------------------------

    def report(self) -> None:
        if self.cascaded:
            self.run.plan.warnings.append(f"{self.info.name}: {self.cascaded} row(s) skipped "
                                          "because a row they refer to was skipped")
        if self.not_new:
            self.run.plan.warnings.append(f"{self.info.name}: {self.not_new} row(s) not in the "
                                          "target were not inserted (insert_new is off)")
        self.run.plan.warnings.extend(self._more_warnings())
        if not self.mapping:
            del self.run.id_mappings[self.info.name]

    def prepare(self, original: Record) -> tuple[Record, Unresolved] | None:
        """The row pointed at its parents' new keys, and its links to rows of the cycle not
        decided yet; None (and counted as skipped) if a row it points at was left out."""
        record = dict(original)
        unresolved = self._follow_parents(original, record)
        if unresolved is None:
            self.cascaded += 1
            self.plan.skip += 1
            self._leave_out(original)
            return None
        return record, unresolved

    def decide(self, backup_key: Key, original: Record, record: Record,
               unresolved: Unresolved) -> None:
        """Insert, update, skip or rename the row, by what it meets in the target."""
        key = self._row_key(backup_key, record)
        renumber = not self.request.maintain_ids and self._can_renumber(key)
        existing = None if renumber else self._fetch(key)
        hits = self._unique_hits(record, key if existing is not None else None)
        if existing is None and not hits:
            if not self.request.insert_new:
                self.not_new += 1
                self.plan.skip += 1
                self._leave_out(original)
                return
            final = self._insert(backup_key, record, key, renumber=renumber,
                                 unresolved=unresolved)
            self.plan.insert += 1
            self._remember(backup_key, original, final, record, unresolved)
            return
        self._resolve(backup_key, original, record, key, existing, hits, renumber, unresolved)

    def _follow_parents(self, original: Record, record: Record) -> Unresolved | None:
        """Point the row at its parents' new keys; None if a parent was left out. Returns
        the links to rows of the current cycle that are not decided yet."""
        unresolved = []
        run = self.run
        for link in self.parent_links:
            old = tuple(original.get(c) for c in link.child_columns)
            if None in old:
                continue  # NULL refers to nothing
            parent, columns = link.parent_table, link.parent_columns
            if old in run.skipped.get(parent, {}).get(columns, ()):
                return None
            new = run.remap.get(parent, {}).get(columns, {}).get(old)
            if new is not None:
                record.update(zip(link.child_columns, new, strict=True))
            elif parent in run.pending and old not in run.done.get(parent, {}).get(columns, ()):
                unresolved.append((link, old))
        return unresolved

    def _resolve(self, backup_key: Key, original: Record, record: Record, key: Key,
                 existing: Record | None, hits: Hits, renumber: bool,
                 unresolved: Unresolved) -> None:
        how = self.request.on_conflict
        conflicts: Conflicts = [("primary_key", key, existing)] if existing is not None else []
        conflicts += [(f"unique:{','.join(cols)}", hit, None) for cols, hit in hits]
        others = {hit for _, hit in hits}
        only = key if existing is not None and not hits else (
            next(iter(others)) if existing is None and len(others) == 1 else None)
        current = existing if existing is not None else (
            self._fetch(only) if only is not None else None)
        if how != "rename" and only is not None and current is not None \
                and not self._changes(record, current, "overwrite"):
            # Already there with this content: nothing to resolve.
            self.plan.skip += 1
            self.plan.duplicates += 1
            self._remember(backup_key, original, only, current, [])
            return
        if how == "fail" and not self.request.dry_run:
            kind, existing_key, _ = conflicts[0]
            raise RestoreConflict(
                f"{self.info.name} row {key_text(backup_key)} conflicts with existing row "
                f"{key_text(existing_key)} ({kind})",
                details={"table": self.info.name, "key": key_text(backup_key),
                         "existing_key": key_text(existing_key), "kind": kind})
        if how == "rename":
            self._rename(backup_key, original, record, key, existing, hits, renumber,
                         conflicts, unresolved)
        elif how in ("overwrite", "merge") and only is not None and current is not None:
            changes = self._changes(record, current, how)
            if changes:
                self._update(backup_key, only, current, changes, unresolved)
                self.plan.update += 1
            else:
                self.plan.skip += 1
            self._note(backup_key, record, conflicts, how)
            self._remember(backup_key, original, only, {**current, **changes}, unresolved)
        else:
            if how == "fail":
                self.run.plan.warnings.append(
                    f"{self.info.name} row {key_text(backup_key)} conflicts with an existing "
                    "row: the restore would fail")
            elif how in ("overwrite", "merge"):
                self.run.plan.warnings.append(
                    f"{self.info.name} row {key_text(backup_key)} meets several existing rows "
                    f"({', '.join(key_text(k) for k in sorted(others | {key}, key=repr))}); "
                    "left as it is")
            self._skip(backup_key, original, record, existing, key, conflicts,
                       "fail" if how == "fail" else "skip")

    def _skip(self, backup_key: Key, original: Record, record: Record, existing: Record | None,
              key: Key, conflicts: Conflicts, resolution: str) -> None:
        self.plan.skip += 1
        self._note(backup_key, record, conflicts, resolution)
        if existing is not None:
            # Same key: the same row, which children of the backup row can hang off.
            self._remember(backup_key, original, key, existing, [])
        else:
            self._leave_out(original)

    def _rename(self, backup_key: Key, original: Record, record: Record, key: Key,
                existing: Record | None, hits: Hits, renumber: bool, conflicts: Conflicts,
                unresolved: Unresolved) -> None:
        new_key = renumber or existing is not None
        # As a new row it also collides with the unique values of the row it copies.
        renamed = self._suffixed(record, self._unique_hits(record, None) if new_key else hits)
        if (new_key and not self._can_renumber(key)) or renamed is None:
            self.run.plan.warnings.append(
                f"{self.info.name} row {key_text(backup_key)}: cannot be given a new "
                f"{'key' if renamed is not None else 'name'}; skipped")
            self._skip(backup_key, original, record, existing, key, conflicts, "skip")
            return
        final = self._insert(backup_key, renamed, key, renumber=new_key, unresolved=unresolved)
        self.plan.insert += 1
        self._note(backup_key, record, conflicts, "rename")
        self._remember(backup_key, original, final, renamed, unresolved)

    # --- bookkeeping --------------------------------------------------------------------

    def _note(self, backup_key: Key, record: Record, conflicts: Conflicts,
              resolution: str) -> None:
        name = self.name_column
        for kind, existing_key, existing in conflicts:
            self.plan.conflicts.append(PlannedConflict(
                self.info.name, key_text(backup_key), key_text(existing_key), kind, resolution,
                backup_name=_name(record, name),
                existing_name=_name(existing, name) if existing is not None else None))

    def _remember(self, backup_key: Key, original: Record, final_key: Key, final: Record,
                  unresolved: Unresolved) -> None:
        """Where the backup row ended up, for its children and for id_mappings."""
        run = self.run
        if final_key != backup_key:
            self.mapping[key_text(backup_key)] = key_text(final_key)
        in_cycle = self.info.name in run.cycle_tables
        for columns in self.referenced:
            old = self._values(backup_key, original, columns)
            new = final_key if columns == self.identity else self._values(
                final_key, final, columns)
            if old != new and None not in old:
                run.remap.setdefault(self.info.name, {}).setdefault(columns, {})[old] = new
            if in_cycle:
                run.done.setdefault(self.info.name, {}).setdefault(columns, set()).add(old)
        for link, old in unresolved:
            run.fixups.append(Fixup(self.info.name, final_key, link, old))

    def _leave_out(self, original: Record) -> None:
        """Remember a row that is not restored, so its children are not either."""
        for columns in self.referenced:
            if self._tracks(columns):
                values = tuple(original.get(c) for c in columns)
                self.run.skipped.setdefault(self.info.name, {}).setdefault(
                    columns, set()).add(values)

    def _values(self, key: Key, record: Record, columns: tuple[str, ...]) -> Key:
        if columns == self.identity:
            return key
        return tuple(record.get(c) for c in columns)

    # --- comparing with the target --------------------------------------------------------

    def _unique_hits(self, record: Record, own_key: Key | None) -> Hits:
        hits = []
        for columns in self.target.unique:
            found = self._holder(columns, record)
            if found is not None and found != own_key:
                hits.append((columns, found))
        return hits

    def _changes(self, record: Record, current: Record, how: str) -> Record:
        """Columns to write: all that differ (overwrite), or those the backup has a value
        for (merge). The key is never rewritten: it is the row's identity."""
        changes = {}
        for column in self.columns:
            if column in self.key_columns:
                continue
            value, now = record.get(column), current.get(column)
            if how == "merge" and value is None:
                continue
            if value != now or type(value) is not type(now):
                changes[column] = value
        return changes

    def _suffixed(self, record: Record, hits: Hits) -> Record | None:
        """The record with the name suffix on a text column of each colliding unique
        constraint (numbered when the suffixed name is taken too); None if one has none."""
        renamed = dict(record)
        for columns, _ in hits:
            text = next((c for c in columns if self._is_text(c, renamed.get(c))), None)
            if text is None:
                return None
            base = renamed[text] + self.request.name_suffix
            for number in itertools.count(1):
                renamed[text] = base if number == 1 else f"{base}_{number}"
                if self._holder(columns, renamed) is None:
                    break
        return renamed


def _name(record: Record | None, column: str | None) -> str | None:
    if record is None or column is None or record.get(column) is None:
        return None
    return value_text(record[column])
