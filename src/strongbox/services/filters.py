"""Seed 000 ``BackupFilters`` turned into what each kind of source understands.

- database sources: projects → rows of ``projects``, sessions → rows of ``sessions`` (each
  with everything hanging off it by foreign key), date_range → rows made in the range,
  min/max_message_count → sessions by their number of messages, include/exclude_patterns
  → table globs;
- file sources: include/exclude_patterns → path globs; the record filters do not apply.
"""

from __future__ import annotations

from typing import Any

from strongbox.services.errors import FieldError, ValidationFailed
from strongbox.sources.sqlite.backup import DatabaseFilters

RECORD_FILTERS = ("projects", "sessions", "date_range", "min_message_count",
                  "max_message_count")
PATTERN_FILTERS = ("include_patterns", "exclude_patterns")


def has_any(filters: dict[str, Any] | None) -> bool:
    """Whether at least one filter is really given (empty lists do not count)."""
    if not filters:
        return False
    return any(filters.get(name) not in (None, [], {}, "")
               for name in RECORD_FILTERS + PATTERN_FILTERS)


def database_filters(filters: dict[str, Any]) -> DatabaseFilters:
    records: dict[str, list[Any]] = {}
    if filters.get("projects"):
        records["projects"] = list(filters["projects"])
    if filters.get("sessions"):
        records["sessions"] = list(filters["sessions"])
    date_range = filters.get("date_range") or {}
    return DatabaseFilters(
        records=records,
        date_start=date_range.get("start"),
        date_end=date_range.get("end"),
        min_children=filters.get("min_message_count"),
        max_children=filters.get("max_message_count"),
        include_tables=tuple(filters.get("include_patterns") or ()),
        exclude_tables=tuple(filters.get("exclude_patterns") or ()),
    )


def file_globs(filters: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(include, exclude) globs for a files source; refuses record filters."""
    wrong = [name for name in RECORD_FILTERS if filters.get(name) not in (None, [], {})]
    if wrong:
        raise ValidationFailed("these filters apply to database sources only", [
            FieldError(f"filters.{name}", "applies to database sources, not file trees",
                       "NOT_APPLICABLE", filters[name]) for name in wrong])
    return list(filters.get("include_patterns") or []), list(filters.get("exclude_patterns")
                                                              or [])


def check_applicable(kind: str, filters: dict[str, Any]) -> None:
    """Reject filters a source of ``kind`` cannot apply, before any job starts."""
    if kind == "files":
        file_globs(filters)
    elif kind == "postgres" and has_any(filters):
        raise ValidationFailed("selective backups of PostgreSQL sources are not available "
                               "yet", [FieldError("filters", "PostgreSQL sources are backed "
                                                  "up whole", "NOT_SUPPORTED")])
