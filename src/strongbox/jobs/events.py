"""In-memory publish/subscribe of job events, from worker threads to any listener."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from strongbox.catalog.types import utcnow

log = logging.getLogger(__name__)

PROGRESS = "progress"
COMPLETED = "completed"
FAILED = "failed"


@dataclass(frozen=True)
class JobEvent:
    type: str  # progress | completed | failed
    job_id: str
    kind: str
    backup_id: str | None = None
    progress: dict[str, Any] = field(default_factory=dict)
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    timestamp: datetime = field(default_factory=utcnow)

    @property
    def final(self) -> bool:
        return self.type != PROGRESS


Listener = Callable[[JobEvent], None]


class EventBus:
    """Listeners are called on the publishing thread and must not block: an asyncio
    consumer hands the event over with ``loop.call_soon_threadsafe``."""

    def __init__(self) -> None:
        self._listeners: dict[str, list[Listener]] = {}
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

    def publish(self, event: JobEvent) -> None:
        with self._lock:
            listeners = list(self._listeners.get(event.job_id, ()))
        for listener in listeners:
            try:
                listener(event)
            except Exception:  # one broken listener must not stop the job
                log.exception("job event listener failed")
