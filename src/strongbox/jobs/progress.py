"""The progress of a job: the shared :class:`Progress`, persisted and published.

Work advances the progress on every chunk; writing each update to the catalog would cost
more than the work, so updates are stored and published at most every ``interval``
seconds (and always at a step change and at the end).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

from strongbox.jobs.events import PROGRESS, EventBus, JobEvent
from strongbox.jobs.store import JobStore
from strongbox.progress import Progress


class JobProgress(Progress):
    def __init__(self, job_id: str, kind: str, store: JobStore, bus: EventBus, *,
                 steps: Sequence[str], interval: float = 0.5,
                 backup_id: str | None = None) -> None:
        super().__init__()
        self.job_id = job_id
        self.kind = kind
        self.backup_id = backup_id
        self.steps = list(steps) or ["running"]
        self.step_index = 0
        self.expected_bytes: int | None = None
        self.cancel_reason = "cancelled"
        self.finished = False
        self._store = store
        self._bus = bus
        self._interval = interval
        self._bytes_at_step = 0
        self._last = 0.0
        self._flush_lock = threading.Lock()

    # --- what work and handlers call -------------------------------------------------------

    def step(self, name: str) -> None:
        """Enter the named step (one of ``steps``) and report at once."""
        if name in self.steps:
            self.step_index = self.steps.index(name)
        # The percentage within a step counts only that step's work.
        self.expected_bytes = None
        self._bytes_at_step = self.state.bytes_done
        with self._lock:
            self.state.items_total = None
            self.state.bytes_total = None
        self.operation(name)
        self.flush()

    def expect(self, nbytes: int | None) -> None:
        """Roughly how many bytes the current step will process, for the percentage."""
        self.expected_bytes = nbytes

    def cancel(self, reason: str = "cancelled") -> None:
        self.cancel_reason = reason
        super().cancel()

    def changed(self) -> None:
        now = time.monotonic()
        if now - self._last >= self._interval:
            self.flush(now)

    # --- what the job status shows -------------------------------------------------------------

    def percentage(self) -> float:
        if self.finished:
            return 100.0
        total = len(self.steps)
        fraction = self.state.fraction
        if self.expected_bytes:
            done = self.state.bytes_done - self._bytes_at_step
            fraction = min(1.0, done / self.expected_bytes)
        within = fraction or 0.0
        # Never claim 100 before the job has really finished.
        return round(min(99.0, (self.step_index + within) / total * 100), 1)

    def snapshot(self) -> dict[str, Any]:
        """The ``progress`` block of seed 000 ``BackupJobStatus``."""
        state = self.state
        percent = self.percentage()
        elapsed = state.elapsed
        doc: dict[str, Any] = {
            "current_step": self.steps[self.step_index] if not self.finished else "done",
            "total_steps": len(self.steps),
            "completed_steps": len(self.steps) if self.finished else self.step_index,
            "percentage": percent,
            "current_operation": state.operation,
            "documents_processed": state.items_done,
            "bytes_written": state.bytes_done,
            "elapsed_seconds": round(elapsed, 3),
        }
        if state.items_total is not None:
            doc["documents_total"] = state.items_total
        if 0 < percent < 100:
            doc["estimated_remaining_seconds"] = round(elapsed * (100 - percent) / percent, 1)
        return doc

    def flush(self, now: float | None = None) -> None:
        """Store and publish the current progress (skipped if another thread is at it)."""
        if not self._flush_lock.acquire(blocking=False):
            return
        try:
            self._last = now if now is not None else time.monotonic()
            doc = self.snapshot()
            self._store.save_progress(self.job_id, doc)
            self._bus.publish(JobEvent(PROGRESS, self.job_id, self.kind,
                                       backup_id=self.backup_id, progress=doc))
            # A cancel asked through the catalog (another process, or a job this executor
            # does not hold) reaches the work here; the executor's own cancel is immediate.
            if not self.cancelled and self._store.cancel_requested(self.job_id):
                self.cancel()
        finally:
            self._flush_lock.release()
