"""Time as a dependency: the scheduler asks a :class:`Clock` what time it is and waits on
it, so tests drive time by hand (:class:`ManualClock`) instead of sleeping.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware, in UTC."""

    def wait_until(self, moment: datetime, wake: threading.Event) -> bool:
        """Block until this clock reaches ``moment`` or ``wake`` is set.

        Returns True when woken by ``wake`` (the caller clears it). An absolute moment, not
        a duration: time that passes between computing it and starting to wait is not
        waited again."""


class SystemClock:
    """The real time; waiting is an :class:`threading.Event` wait."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def wait_until(self, moment: datetime, wake: threading.Event) -> bool:
        return wake.wait(max(0.0, (moment - self.now()).total_seconds()))


class ManualClock:
    """A clock that only moves when told to (tests).

    ``wait_until`` returns once the clock has been advanced past its deadline or the wake event
    is set; it polls both every few milliseconds of real time, so a waiting thread reacts
    promptly to :meth:`advance` without anyone sleeping for long.
    """

    POLL_SECONDS = 0.005

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("ManualClock needs an aware datetime")
        self._now = start.astimezone(UTC)
        self._changed = threading.Condition()
        self.waits = 0  # how many times someone waited: lets a test see a loop go round

    def now(self) -> datetime:
        with self._changed:
            return self._now

    def set(self, moment: datetime) -> None:
        with self._changed:
            self._now = moment.astimezone(UTC)
            self._changed.notify_all()

    def advance(self, delta: timedelta | float) -> datetime:
        step = delta if isinstance(delta, timedelta) else timedelta(seconds=delta)
        with self._changed:
            self._now += step
            self._changed.notify_all()
            return self._now

    def wait_until(self, moment: datetime, wake: threading.Event) -> bool:
        with self._changed:
            self.waits += 1
            while self._now < moment:
                if wake.is_set():
                    return True
                self._changed.wait(self.POLL_SECONDS)
        return wake.is_set()
