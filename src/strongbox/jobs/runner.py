"""Run one job by id: the same code whichever executor calls it.

A job's kind names a :class:`JobHandler` registered with the runner. The runner owns the
job record's life (pending → in_progress → completed | failed | cancelled), turns errors
into the job's ``error`` block, and publishes the final event; the handler does the work
and keeps its own domain records (a backup row, a restore row) in step through
:meth:`JobHandler.failed`. A handler that reports progress in its own shape names a
:class:`JobProgress` subclass as its ``progress_class`` (the restore job does).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Protocol

from strongbox.errors import Cancelled, StrongboxError
from strongbox.jobs.events import COMPLETED, FAILED, STARTED, EventBus, JobEvent
from strongbox.jobs.progress import JobProgress
from strongbox.jobs.store import (
    CANCELLED,
    INTERRUPTED,
    JobStore,
    JobView,
    job_error,
)
from strongbox.jobs.store import COMPLETED as DONE
from strongbox.jobs.store import FAILED as BROKEN
from strongbox.logs import job_context

log = logging.getLogger(__name__)

SHUTDOWN = "shutdown"


class JobHandler(Protocol):
    @property
    def steps(self) -> Sequence[str]:
        """The names of the job's steps, in order (the job status shows them)."""

    def run(self, job: JobView, progress: JobProgress) -> dict[str, Any]:
        """Do the work; return the job's ``result``. Raise to fail."""

    def failed(self, job: JobView, error: dict[str, Any]) -> None:
        """The job failed, was cancelled or interrupted: bring domain records in step."""


class JobRunner:
    def __init__(self, store: JobStore, bus: EventBus, *, interval: float = 0.5) -> None:
        self.store = store
        self.bus = bus
        self.interval = interval
        self.handlers: dict[str, JobHandler] = {}

    def register(self, kind: str, handler: JobHandler) -> None:
        self.handlers[kind] = handler

    def handler(self, kind: str) -> JobHandler:
        try:
            return self.handlers[kind]
        except KeyError:
            raise StrongboxError(f"no handler for jobs of kind {kind!r}") from None

    def new_progress(self, job: JobView) -> JobProgress:
        handler = self.handler(job.kind)
        # A handler may report in its own shape (a JobProgress subclass).
        factory: type[JobProgress] = getattr(handler, "progress_class", JobProgress)
        return factory(job.id, job.kind, self.store, self.bus, steps=handler.steps,
                       interval=self.interval, backup_id=job.backup_id)

    def run(self, job_id: str, progress: JobProgress | None = None) -> JobView | None:
        """Run a pending job to its end. Returns the final record (None if not pending)."""
        job = self.store.start(job_id)
        if job is None:
            return None
        handler = self.handler(job.kind)
        progress = progress or self.new_progress(job)
        progress.flush()
        # Only all-job listeners (notifications) hear this; a job's own stream is unchanged.
        self.bus.publish(JobEvent(STARTED, job.id, job.kind, backup_id=job.backup_id,
                                  tenant=job.tenant, progress=job.progress))
        try:
            progress.check_cancelled()
            with job_context(job.id):  # every log line of the work names its job
                result = handler.run(job, progress)
        except Cancelled:
            if progress.cancel_reason == SHUTDOWN:
                error = job_error(INTERRUPTED, "the server shut down while this job was "
                                  "running; nothing it wrote was committed: start it again")
                return self._fail(job, handler, progress, BROKEN, error)
            return self._fail(job, handler, progress, CANCELLED,
                              job_error("CANCELLED", "the job was cancelled"))
        except StrongboxError as exc:
            return self._fail(job, handler, progress, BROKEN,
                              job_error(exc.code, exc.message, exc.details))
        except Exception as exc:
            log.exception("job %s (%s) failed", job.id, job.kind)
            return self._fail(job, handler, progress, BROKEN,
                              job_error("INTERNAL_ERROR", f"unexpected error: {exc}"))
        progress.finished = True
        final = self.store.finish(job.id, DONE, progress=progress.snapshot(), result=result)
        self.bus.publish(JobEvent(COMPLETED, job.id, job.kind, backup_id=job.backup_id,
                                  tenant=job.tenant, progress=final.progress, result=result))
        return final

    def _fail(self, job: JobView, handler: JobHandler, progress: JobProgress | None,
              status: str, error: dict[str, Any]) -> JobView:
        try:
            handler.failed(job, error)
        except Exception:
            log.exception("job %s: recording the failure failed", job.id)
        final = self.store.finish(job.id, status,
                                  progress=progress.snapshot() if progress else None,
                                  error=error)
        self.bus.publish(JobEvent(FAILED, job.id, job.kind, backup_id=job.backup_id,
                                  tenant=job.tenant, progress=final.progress, error=error))
        return final

    def cancel_pending(self, job_id: str) -> JobView | None:
        """Cancel a job that never started."""
        job = self.store.get(job_id)
        if job is None or job.status != "pending":
            return None
        return self._fail(job, self.handler(job.kind), None, CANCELLED,
                          job_error("CANCELLED", "the job was cancelled before it started"))

    def recover_interrupted(self) -> list[JobView]:
        """After a restart: fail the jobs the previous server left unfinished."""
        jobs = self.store.mark_interrupted()
        for job in jobs:
            handler = self.handlers.get(job.kind)
            if handler is not None and job.error is not None:
                try:
                    handler.failed(job, job.error)
                except Exception:
                    log.exception("job %s: recording the interruption failed", job.id)
        return jobs
