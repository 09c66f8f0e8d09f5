"""Seed 000 ``RestoreTarget.project_id`` / ``project_name`` over the SQLite restore engine.

The seed: ``project_id`` is the "target project (creates new if not specified)",
``project_name`` the "name for new project". Read that way:

* ``project_id`` names a project that exists in the target database. The chosen backup
  projects' content (their sessions, with everything hanging off them) is restored
  *into* it: the backup's project rows themselves are not written, and every row that
  pointed at them points at the target project instead. Several backup projects can be
  folded into one this way.
* ``project_name`` (without ``project_id``) restores one backup project as a *new*
  project with that name: its row is written under a new id (or its own with
  ``maintain_ids`` when that id is free) and its subtree follows it.

Both are done without touching the engine: the engine restores from any reader with
:class:`~strongbox.sources.sqlite.reader.SnapshotReader`'s interface, and
:class:`RetargetedReader` shows it the backup with the project rows left out (or
renamed) and the links to them rewritten. Everything else -- selection closure, conflict
resolution, id remapping, one transaction, dry runs -- is the engine's as usual.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from strongbox.services.errors import FieldError, ValidationFailed
from strongbox.sources.sqlite.foreign_keys import ForeignKey, quote_identifier
from strongbox.sources.sqlite.reader import SnapshotReader, project
from strongbox.sources.sqlite.restore_plan import RowShape, key_text

PROJECTS = "projects"
NAME_COLUMNS = ("name", "title")


class RetargetedReader:
    """A snapshot reader whose ``projects`` rows in ``retarget`` are left out (``into``:
    their children point at the target project's ``values``) or renamed (``name``)."""

    def __init__(self, reader: SnapshotReader, retarget: set[str], *,
                 into: dict[str, Any] | None = None, name: str | None = None) -> None:
        self._reader = reader
        self.retarget = retarget
        self.into = into
        self.name = name
        info = reader.table(PROJECTS)
        self._shape = RowShape(info)
        self._name_column = next((c for c in NAME_COLUMNS if c in info.columns), None)
        self._links = [link for link in reader.links() if link.parent_table == PROJECTS
                       and not link.is_self_reference]
        # For every set of referenced columns: the values the moved projects have there.
        self._moved: dict[tuple[str, ...], set[tuple[Any, ...]]] = {}
        if into is not None:
            for row in reader.rows(PROJECTS):
                if key_text(self._shape.key(row)) in retarget:
                    for link in self._links:
                        self._moved.setdefault(link.parent_columns, set()).add(
                            self._shape.values(row, link.parent_columns))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._reader, name)

    def page_copy(self) -> None:
        return None  # never a page-level full restore: rows are rewritten

    def column_rows(self, name: str, columns: Sequence[str]) -> Iterator[tuple[Any, ...]]:
        # From the rewritten rows, never the snapshot's own (which __getattr__ would give).
        return project(self.rows(name), self._reader.table(name), columns)

    def rows(self, name: str) -> Iterator[tuple[Any, ...]]:
        rows = self._reader.rows(name)
        if name == PROJECTS:
            return self._projects(rows)
        links = [link for link in self._links if link.child_table == name]
        if self.into is not None and links:
            return self._children(name, rows, links)
        return rows

    def _projects(self, rows: Iterator[tuple[Any, ...]]) -> Iterator[tuple[Any, ...]]:
        for row in rows:
            if key_text(self._shape.key(row)) not in self.retarget:
                yield row
            elif self.into is None and self.name is not None and self._name_column:
                changed = list(row)
                changed[self._shape.position[self._name_column]] = self.name
                yield tuple(changed)
            # into: the row is not restored; its children are given the target project

    def _children(self, table: str, rows: Iterator[tuple[Any, ...]],
                  links: list[ForeignKey]) -> Iterator[tuple[Any, ...]]:
        assert self.into is not None
        shape = RowShape(self._reader.table(table))
        for row in rows:
            changed: list[Any] | None = None
            for link in links:
                if shape.values(row, link.child_columns) in self._moved.get(
                        link.parent_columns, ()):
                    changed = changed or list(row)
                    for child, parent in zip(link.child_columns, link.parent_columns,
                                             strict=True):
                        changed[shape.position[child]] = self.into[parent]
            yield tuple(changed) if changed is not None else row


def _target_row(db: str, column: str, value: Any) -> dict[str, Any] | None:
    """The target database's project row whose ``column`` is ``value`` (read-only)."""
    if not Path(db).is_file():
        return None
    conn = sqlite3.connect(f"{Path(db).absolute().as_uri()}?mode=ro", uri=True, timeout=30)
    with contextlib.closing(conn):
        conn.row_factory = sqlite3.Row
        try:
            row = conn.execute(f"SELECT * FROM {quote_identifier(PROJECTS)} WHERE "
                               f"{quote_identifier(column)} = ?", (value,)).fetchone()
        except sqlite3.Error:
            return None
    return None if row is None else dict(row)


def _fail(field: str, message: str, code: str, value: Any = None) -> ValidationFailed:
    return ValidationFailed("request validation failed", [FieldError(field, message, code,
                                                                     value)])


def plan_project_target(reader: SnapshotReader, target_db: str, *, project_id: str | None,
                        project_name: str | None, selections: dict[str, list[Any]],
                        exclude: dict[str, list[Any]], maintain_ids: bool
                        ) -> dict[str, Any]:
    """Check the request against the backup and the target database; return the job
    parameters :func:`retargeted` needs, and the selections the engine is to use."""
    if project_id is not None and project_name is not None:
        raise _fail("target.project_name", "project_name names a new project; project_id "
                    "restores into an existing one: give one of them", "NOT_APPLICABLE")
    tables = {t.name: t for t in reader.tables()}
    if PROJECTS not in tables:
        raise _fail("target", "the backup has no projects table", "NOT_APPLICABLE")
    shape = RowShape(tables[PROJECTS])
    key_column = tables[PROJECTS].primary_key[0] if len(
        tables[PROJECTS].primary_key) == 1 else None
    if key_column is None:
        raise _fail("target", "the projects table has no one-column key", "NOT_SUPPORTED")
    all_keys = [key_text(shape.key(row)) for row in reader.rows(PROJECTS)]
    excluded = {str(k) for k in exclude.get(PROJECTS, [])}
    named = [str(k) for k in selections.get(PROJECTS, [])]
    unknown = [k for k in named if k not in all_keys]
    if unknown:
        raise _fail("selections.projects", f"not in the backup: {', '.join(unknown[:10])}",
                    "NOT_FOUND", unknown)
    moved = [k for k in (named or all_keys) if k not in excluded]
    if project_id is not None:
        existing = _target_row(target_db, key_column, project_id)
        if existing is None:
            raise _fail("target.project_id", f"project {project_id} is not in the target "
                        "database (leave project_id out to restore as a new project)",
                        "NOT_FOUND", project_id)
        links = [link for link in reader.links() if link.parent_table == PROJECTS
                 and not link.is_self_reference]
        columns = {c for link in links for c in link.parent_columns}
        if not columns <= set(existing):
            raise _fail("target.project_id", "the target's projects table lacks columns the "
                        "backup's links use", "NOT_SUPPORTED", project_id)
        values = {c: existing[c] for c in columns}
        # The moved project rows are not restored: select their children instead.
        chosen = {t: list(v) for t, v in selections.items() if t != PROJECTS}
        moving = set(moved)
        for link in links if named else ():
            child = RowShape(tables[link.child_table])
            moved_values = {shape.values(row, link.parent_columns)
                            for row in reader.rows(PROJECTS)
                            if key_text(shape.key(row)) in moving}
            for row in reader.rows(link.child_table):
                if child.values(row, link.child_columns) in moved_values:
                    key = child.key(row)
                    chosen.setdefault(link.child_table, []).append(
                        key[0] if len(key) == 1 else list(key))
        # The target project's own row in the backup is left out as well: a required
        # parent of the moved rows, it would otherwise be restored over the live one.
        hidden = [*moved, project_id] if project_id in all_keys and \
            project_id not in moved else moved
        return {"retarget": hidden, "into": values, "selections": chosen,
                "project_id": project_id}
    assert project_name is not None
    if len(moved) != 1:
        raise _fail("selections.projects", "project_name creates one new project: choose "
                    "exactly one project of the backup in selections.projects",
                    "AMBIGUOUS", named or None)
    name_column = next((c for c in NAME_COLUMNS if c in tables[PROJECTS].columns), None)
    if name_column is None:
        raise _fail("target.project_name", "the projects table has no name column",
                    "NOT_APPLICABLE")
    if _target_row(target_db, name_column, project_name) is not None:
        raise _fail("target.project_name", f"a project named {project_name!r} exists in "
                    "the target", "ALREADY_EXISTS", project_name)
    if maintain_ids and _target_row(target_db, key_column, moved[0]) is not None:
        raise _fail("options.maintain_ids", f"project {moved[0]} exists in the target: a new "
                    "project needs a new id (maintain_ids false)", "CONFLICT", True)
    return {"retarget": moved, "name": project_name, "selections": dict(selections)}


def retargeted(reader: SnapshotReader, params: dict[str, Any]) -> RetargetedReader:
    """The reader a restore job with ``params["project_target"]`` restores from."""
    return RetargetedReader(reader, set(params["retarget"]), into=params.get("into"),
                            name=params.get("name"))
