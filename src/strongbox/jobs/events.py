"""In-memory publish/subscribe of job events, from worker threads to any listener.

Two kinds of listener: one that follows a single job (``subscribe``: the WebSocket
channels) gets its stream, ``progress`` then the final ``completed`` or ``failed``; one that
watches every job (``subscribe_all``: notifications) gets those and also ``started``, the
moment a pending job begins to run. ``started`` is kept out of the per-job stream so a
job's channel carries exactly the seed 000 event types it always did.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from strongbox.catalog.types import utcnow

log = logging.getLogger(__name__)

STARTED = "started"
PROGRESS = "progress"
COMPLETED = "completed"
FAILED = "failed"
FINAL_TYPES = (COMPLETED, FAILED)


@dataclass(frozen=True)
class JobEvent:
    type: str  # started | progress | completed | failed
    job_id: str
    kind: str
    backup_id: str | None = None
    tenant: str | None = None
    progress: dict[str, Any] = field(default_factory=dict)
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    timestamp: datetime = field(default_factory=utcnow)

    @property
    def final(self) -> bool:
        return self.type in FINAL_TYPES


Listener = Callable[[JobEvent], None]


class EventBus:
    """Listeners are called on the publishing thread and must not block: an asyncio
    consumer hands the event over with ``loop.call_soon_threadsafe``."""

    def __init__(self) -> None:
        self._listeners: dict[str, list[Listener]] = {}
        self._everything: list[Listener] = []
        self._lock = threading.Lock()

    def subscribe(self, job_id: str, listener: Listener) -> Callable[[], None]:
        with self._lock:
            self._listeners.setdefault(job_id, []).append(listener)

        def unsubscribe() -> None:
            with self._lock:
                listeners = self._listeners.get(job_id, [])
                if listener in listeners:
                    listeners.remove(listener)
                if not listeners:
                    self._listeners.pop(job_id, None)

        return unsubscribe

    def subscribe_all(self, listener: Listener) -> Callable[[], None]:
        """Listen to every job's events, ``started`` included."""
        with self._lock:
            self._everything.append(listener)

        def unsubscribe() -> None:
            with self._lock:
                if listener in self._everything:
                    self._everything.remove(listener)

        return unsubscribe

    def publish(self, event: JobEvent) -> None:
        with self._lock:
            listeners = [] if event.type == STARTED else list(
                self._listeners.get(event.job_id, ()))
            listeners.extend(self._everything)
        for listener in listeners:
            try:
                listener(event)
            except Exception:  # one broken listener must not stop the job
                log.exception("job event listener failed")
