"""The one progress interface.

Long work (backup, restore, check, prune) reports through a :class:`Progress`. The CLI
renders it as a progress bar, the job runner stores it for the API and WebSocket. Work
also polls :meth:`Progress.check_cancelled` between units so cancellation is cooperative
and happens at points where nothing is half-written.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from strongbox.errors import Cancelled


@dataclass
class ProgressState:
    operation: str = ""
    items_done: int = 0
    items_total: int | None = None
    bytes_done: int = 0
    bytes_total: int | None = None
    started: float = field(default_factory=time.monotonic)

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    @property
    def fraction(self) -> float | None:
        if self.bytes_total:
            return min(1.0, self.bytes_done / self.bytes_total)
        if self.items_total:
            return min(1.0, self.items_done / self.items_total)
        return None

    @property
    def eta_seconds(self) -> float | None:
        frac = self.fraction
        if not frac or frac <= 0:
            return None
        return self.elapsed * (1 - frac) / frac


class Progress:
    """Thread-safe progress sink. Subclasses override :meth:`changed` to render or store."""

    def __init__(self) -> None:
        self.state = ProgressState()
        self._lock = threading.Lock()
        self._cancel = threading.Event()

    def start(self, operation: str, *, items_total: int | None = None,
              bytes_total: int | None = None) -> None:
        with self._lock:
            self.state.operation = operation
            self.state.items_total = items_total
            self.state.bytes_total = bytes_total
        self.changed()

    def set_totals(self, *, items_total: int | None = None, bytes_total: int | None = None) -> None:
        with self._lock:
            if items_total is not None:
                self.state.items_total = items_total
            if bytes_total is not None:
                self.state.bytes_total = bytes_total
        self.changed()

    def advance(self, *, items: int = 0, nbytes: int = 0) -> None:
        with self._lock:
            self.state.items_done += items
            self.state.bytes_done += nbytes
        self.changed()

    def operation(self, text: str) -> None:
        with self._lock:
            self.state.operation = text
        self.changed()

    def cancel(self) -> None:
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def check_cancelled(self) -> None:
        if self._cancel.is_set():
            raise Cancelled("operation cancelled")

    def changed(self) -> None:
        """Hook called after every update; the base class records only."""


class NullProgress(Progress):
    """Progress that nobody watches."""
