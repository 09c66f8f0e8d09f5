"""Moments written as text in application data."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any


def parse_moment(value: Any) -> datetime | None:
    """An ISO 8601 text as an aware UTC datetime; None for anything else."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def iso_utc(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def date_range(values: Iterable[Any]) -> dict[str, str] | None:
    """Earliest and latest of the values that are ISO 8601 moments, or None if none is."""
    moments = [m for m in map(parse_moment, values) if m is not None]
    if not moments:
        return None
    return {"earliest": iso_utc(min(moments)), "latest": iso_utc(max(moments))}
