"""When a schedule is due: cron expressions and the frequency form, in a time zone.

A cron expression is read in the schedule's IANA time zone, as wall-clock times ("02:30
every day" means 02:30 on the clock in Europe/Berlin). Two days a year the wall clock
jumps, and the rules are:

* **Spring forward** (a wall time that does not exist, e.g. 02:30 in Berlin on the last
  Sunday of March): the slot runs once, at the first instant after the gap (03:00 local).
  Several slots falling in the gap (an every-15-minutes job) run once together.
* **Fall back** (a wall time that happens twice, e.g. 02:30 on the last Sunday of
  October): a job whose hour field is a fixed list ("30 2 * * *") runs once, at the
  first occurrence; a job whose hour field is ``*`` or ``*/n`` (hourly and the like)
  runs in both occurrences, so it keeps its interval in elapsed time.

These are the rules of Vixie cron, and they hold in UTC trivially (no jumps).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from croniter import CroniterBadDateError, croniter

ALIASES = {"@hourly": "0 * * * *", "@daily": "0 0 * * *", "@midnight": "0 0 * * *",
           "@weekly": "0 0 * * 0", "@monthly": "0 0 1 * *", "@yearly": "0 0 1 1 *",
           "@annually": "0 0 1 1 *"}
FREQUENCIES = ("hourly", "daily", "weekly", "monthly")
WEEKDAYS = ("sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday")
_TIME = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")
# Far enough back that a slot in a repeated hour just behind ``after`` is still seen.
_LOOKBACK = timedelta(hours=3)
_EPOCH = datetime(2000, 1, 1)


class ScheduleSpecError(ValueError):
    """A schedule's timing is not valid; ``field`` names the offending request field."""

    def __init__(self, field: str, message: str, code: str, value: object = None) -> None:
        super().__init__(message)
        self.field, self.message, self.code, self.value = field, message, code, value


def normalize_cron(expression: str, field: str = "cron") -> str:
    """A five-field cron expression (aliases such as ``@daily`` expanded), or an error."""
    text = " ".join(str(expression).split())
    text = ALIASES.get(text.lower(), text)
    if len(text.split(" ")) != 5 or not croniter.is_valid(text):
        raise ScheduleSpecError(field, "not a valid five-field cron expression "
                                "(minute hour day-of-month month day-of-week)",
                                "INVALID_CRON", expression)
    try:  # valid but never due, e.g. "0 0 31 2 *"
        croniter(text, _EPOCH).get_next(datetime)
    except CroniterBadDateError:
        raise ScheduleSpecError(field, "this cron expression is never due", "INVALID_CRON",
                                expression) from None
    return text


@functools.cache
def _known_zones() -> frozenset[str]:
    return frozenset(available_timezones())  # reads the tz database: once is enough


def zone(name: str, field: str = "timezone") -> ZoneInfo:
    """The IANA zone ``name``; refuses anything else (also offsets such as "+02:00")."""
    if not name or (name not in _known_zones() and name != "UTC"):
        raise ScheduleSpecError(field, "not an IANA time zone name (e.g. Europe/Berlin, "
                                "UTC)", "INVALID_VALUE", name)
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ScheduleSpecError(field, "not an IANA time zone name", "INVALID_VALUE",
                                name) from exc


def _weekday(day: object) -> int:
    if isinstance(day, int) and not isinstance(day, bool) and 0 <= day <= 7:
        return day % 7
    text = str(day).strip().lower()
    for number, name in enumerate(WEEKDAYS):
        if text in (name, name[:3]):
            return number
    if text.isdigit() and 0 <= int(text) <= 7:
        return int(text) % 7
    raise ScheduleSpecError("day", "for a weekly schedule, day is a weekday: monday … sunday "
                            "(or 0-6, 0 = sunday)", "INVALID_VALUE", day)


def _month_day(day: object) -> str:
    if str(day).strip().lower() == "last":
        return "L"
    if isinstance(day, int) and not isinstance(day, bool) and 1 <= day <= 31:
        return str(day)
    text = str(day).strip()
    if text.isdigit() and 1 <= int(text) <= 31:
        return str(int(text))
    raise ScheduleSpecError("day", "for a monthly schedule, day is 1-31 or \"last\"",
                            "INVALID_VALUE", day)


def frequency_cron(frequency: str, time: str | None = None, day: object = None) -> str:
    """The cron expression of seed 004's form: hourly (at the minute of ``time``), daily
    (at ``time``), weekly (``day`` a weekday, default monday), monthly (``day`` 1-31 or
    "last", default 1). ``time`` is HH:MM, default 02:00 (hourly: minute 0)."""
    if frequency not in FREQUENCIES:
        raise ScheduleSpecError("frequency", f"frequency is one of {', '.join(FREQUENCIES)}",
                                "INVALID_VALUE", frequency)
    hour, minute = (2, 0) if frequency != "hourly" else (0, 0)
    if time is not None:
        match = _TIME.match(str(time).strip())
        if not match:
            raise ScheduleSpecError("time", "time is HH:MM (24 hours), e.g. 02:00",
                                    "INVALID_FORMAT", time)
        hour, minute = int(match.group(1)), int(match.group(2))
    if frequency == "hourly":
        return f"{minute} * * * *"
    if frequency == "daily":
        return f"{minute} {hour} * * *"
    if frequency == "weekly":
        return f"{minute} {hour} * * {_weekday('monday' if day is None else day)}"
    return f"{minute} {hour} {_month_day(1 if day is None else day)} * *"


@dataclass(frozen=True)
class CronTimes:
    """The instants (UTC) a cron expression names in a time zone."""

    cron: str
    tz: tzinfo

    @property
    def repeats_in_both_folds(self) -> bool:
        """Whether a repeated wall-clock hour runs twice (hour field ``*`` or ``*/n``)."""
        return self.cron.split(" ")[1].startswith("*")

    def next_after(self, after: datetime) -> datetime:
        """The first due instant strictly after ``after`` (aware), in UTC."""
        after = after.astimezone(UTC)
        start = after.astimezone(self.tz).replace(tzinfo=None) - _LOOKBACK
        slots = croniter(self.cron, start)
        best: datetime | None = None
        while True:
            slot: datetime = slots.get_next(datetime)
            instants = self._instants(slot)
            if best is not None and instants[0] > best:
                return best
            for instant in instants:
                if instant > after and (best is None or instant < best):
                    best = instant

    def between(self, start: datetime, end: datetime) -> list[datetime]:
        """Every due instant in (start, end]."""
        found = []
        moment = self.next_after(start)
        while moment <= end:
            found.append(moment)
            moment = self.next_after(moment)
        return found

    def _instants(self, slot: datetime) -> list[datetime]:
        """The UTC instants of a naive wall-clock slot, earliest first."""
        first = slot.replace(tzinfo=self.tz, fold=0).astimezone(UTC)
        second = slot.replace(tzinfo=self.tz, fold=1).astimezone(UTC)
        first_ok = self._wall(first) == slot
        second_ok = self._wall(second) == slot
        if first_ok and second_ok and first != second:  # a repeated hour
            earlier, later = sorted((first, second))
            return [earlier, later] if self.repeats_in_both_folds else [earlier]
        if first_ok or second_ok:
            return [first if first_ok else second]
        return [self._gap_end(min(first, second), max(first, second), slot)]

    def _wall(self, instant: datetime) -> datetime:
        return instant.astimezone(self.tz).replace(tzinfo=None)

    def _gap_end(self, low: datetime, high: datetime, slot: datetime) -> datetime:
        """The first instant whose wall time is past ``slot``: where the skipped hour ends.
        Bisection to the second; transitions sit on whole minutes in every zone."""
        while high - low > timedelta(seconds=1):
            middle = low + (high - low) / 2
            if self._wall(middle) > slot:
                high = middle
            else:
                low = middle
        return high.replace(microsecond=0)
